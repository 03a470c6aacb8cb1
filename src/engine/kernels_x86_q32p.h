/*
 * kernels_x86_q32p.h — AVX-512 kernel for the block-32 types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0) on batches of activation rows (prompt prefill).
 * Included by kernels_x86.h only, in the AVX-512 build; not a public header.
 *
 * Why a second block-32 kernel.  The canonical order (kernels.h) gives
 * every output 8 integer lanes per block, each converted to float and
 * fma'd with the block's scale product; that float work is as large as
 * the integer work, and in 256-bit registers (tile32) it runs on two ports
 * at 8 lanes.  Here one 512-bit register holds the 8 lanes of TWO weight
 * rows for one activation row, interleaved by lane:
 *
 *     dword 2k = lane k of row r,   dword 2k+1 = lane k of row r+1
 *
 * so one vpdpbusd, one vcvtdq2ps and one vfmadd231ps advance 16 lanes,
 * and the fma's scale vector is the pair (s(r,b), s(r+1,b)) broadcast as
 * one 64-bit load.  Weights of a row pair are interleaved by dword with
 * one vpermt2d (nibbles then split by shift and mask; Q5 fifth bits via
 * a pdep-built byte mask); activation blocks are duplicated by dword
 * (vpermd) to match.  Every output still sees exactly the float
 * operations of the canonical order, block after block: bits equal the
 * scalar path's (test_kernels.c).
 *
 * Tiles: 8 weight rows (4 pairs) x 6 activation rows = 24 accumulators
 * (x 4 for Q4_1/Q5_1, whose min terms need registers too).  Activations
 * are prepared once per panel of 48 rows (q32p_panel: duplicated dwords,
 * the offset term of Q4_0/Q5_0, scales as floats), so a tile's inner loop
 * only loads them; the weights of a row tile are decoded (pairs
 * interleaved, nibbles split, Q5 fifth bits, Q8_0's offset term) and their
 * scales converted once per (row tile, panel) into a scratch of nb * 256
 * bytes that stays in L1, which every batch tile of the panel then loads.
 *
 * Decoding per panel instead of per batch tile took 14-18 % off the
 * kernel (bench_kernels 2048 640 avx512 0.5 q5_0,q8_0,q4_1 480: Q5_0
 * 10.1 -> 8.3 ms); decoding never (the bound of a form repacked once when
 * the model loads) took 0-3 % more, within the noise, so no such form is
 * kept (test/bench/README.md).
 */
#ifndef LM_KERNELS_X86_Q32P_H
#define LM_KERNELS_X86_Q32P_H

#define Q32P_PANEL 48			/* activation rows per panel */
#define Q32P_B 6				/* activation rows per tile at most */
#define Q32P_MAXNB 256			/* most blocks per row (n_cols <= 8192); wider rows take tile32 */

/* Decode blocks blk of weight rows a and b (ws apart: b = a + ws) into one register, dwords interleaved a, b, a, b. */
X86_INLINE __m512i
q32p_decode(lm_type t, const uint8_t *a, size_t ws, int64_t blk)
{
	const uint8_t *b = a + ws;
	size_t		bs = q32_block_bytes(t);
	const uint8_t *pa = a + (size_t) blk * bs,
			   *pb = b + (size_t) blk * bs;

	if (t == LM_TYPE_Q8_0)
	{
		const __m512i idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);

		return _mm512_permutex2var_epi32(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) (pa + 2))), idx,
										 _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) (pb + 2))));
	}
	else
	{
		/* qs offset: after d (Q4_0), d+m (Q4_1), d+qh (Q5_0), d+m+qh (Q5_1) */
		const size_t qo = t == LM_TYPE_Q4_0 ? 2 : t == LM_TYPE_Q4_1 ? 4 : t == LM_TYPE_Q5_0 ? 6 : 8;
		/* dwords 0..7: low nibbles (lanes 0..3 of a and b), 8..15: high nibbles (lanes 4..7) */
		const __m512i idx = _mm512_set_epi32(19, 3, 18, 2, 17, 1, 16, 0, 19, 3, 18, 2, 17, 1, 16, 0);
		__m512i		q = _mm512_permutex2var_epi32(_mm512_castsi128_si512(_mm_loadu_si128((const __m128i *) (pa + qo))), idx,
												  _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *) (pb + qo))));

		q = _mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
		q = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
		if (t == LM_TYPE_Q5_0 || t == LM_TYPE_Q5_1)
		{
			const size_t ho = t == LM_TYPE_Q5_0 ? 2 : 4;
			uint32_t	ha,
						hb;
			__mmask64	hi;

			/* byte 8m+e (e < 4) is element 4m+e of a, byte 8m+4+e the same element of b */
			memcpy(&ha, pa + ho, 4);
			memcpy(&hb, pb + ho, 4);
			hi = _pdep_u64(ha, 0x0F0F0F0F0F0F0F0FULL) | _pdep_u64(hb, 0xF0F0F0F0F0F0F0F0ULL);
			q = _mm512_mask_add_epi8(q, hi, q, _mm512_set1_epi8(0x10));
		}
		return q;
	}
}

/*
 * Rows [r, r+R) (R = 2, 4 or 8) against activation rows [b0, b0+B) of a
 * panel (B <= Q32P_B) over nb blocks.  wq/wi: the rows' pairs as
 * q32p_weights decoded them, [blk][4][64 bytes]; dwt/mwt: weight
 * scales/mins as floats, [blk][8]; dxp/sxp: activation scales/sums,
 * [blk][Q32P_PANEL]; ydp/yip: the panel's activations as q32p_panel made
 * them, [blk][Q32P_PANEL][64 bytes].  Writes Y.
 */
X86_INLINE void
tile32p(lm_type t, const uint8_t *wq, const uint8_t *wi, const uint8_t *ydp, const uint8_t *yip, int64_t nb,
		const float *dwt, const float *mwt, const float *dxp, const float *sxp,
		int64_t r, int b0, float *Y, int64_t y_stride, x86_pf *pf, const int R, const int B)
{
	const int	P = R / 2;
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);
	const int	act_off = (t == LM_TYPE_Q4_0 ? 8 : t == LM_TYPE_Q5_0 ? 16 : 0);
	const int	w_off = (t == LM_TYPE_Q8_0);
	__m512		acc[4][Q32P_B];
	__m256		summ[Q32P_B];	/* _1 types: lane r = min term of (r, b) */
	float		sc[2][Q32P_B][8] __attribute__((aligned(64)));	/* scale products [b][r], double-buffered by block */
	float		out[4][16] __attribute__((aligned(64)));

	_Pragma("GCC unroll 6")
	for (int b = 0; b < B; b++)
	{
		summ[b] = _mm256_setzero_ps();
		_Pragma("GCC unroll 4")
		for (int p = 0; p < P; p++)
			acc[p][b] = _mm512_setzero_ps();
	}
	/* scale products of block blk: sc[b][r] = dw[r] * dx[b] */
#define Q32P_SCALES(blk_, buf_) \
	do { \
		__m256		dw8_ = _mm256_loadu_ps(dwt + (size_t) (blk_) * 8); \
		_Pragma("GCC unroll 6") \
		for (int b = 0; b < B; b++) \
			_mm256_store_ps(sc[buf_][b], _mm256_mul_ps(dw8_, _mm256_set1_ps(dxp[(size_t) (blk_) * Q32P_PANEL + b0 + b]))); \
	} while (0)
	if (nb > 0)
		Q32P_SCALES(0, 0);
	X86_IN_MEMORY(&sc);
	for (int64_t blk = 0; blk < nb; blk++)
	{
		__m512i		y[Q32P_B],
					yinit[Q32P_B];
		const float (*s)[8] = (const float (*)[8]) sc[blk & 1];

		if (blk + 1 < nb)
		{
			Q32P_SCALES(blk + 1, (blk + 1) & 1);
			X86_IN_MEMORY(&sc);
		}
		_Pragma("GCC unroll 6")
		for (int b = 0; b < B; b++)
		{
			size_t		yo = ((size_t) blk * Q32P_PANEL + b0 + b) * 64;

			y[b] = _mm512_load_si512((const void *) (ydp + yo));
			if (act_off)
				yinit[b] = _mm512_load_si512((const void *) (yip + yo));
			if (is1)
				summ[b] = _mm256_fmadd_ps(_mm256_loadu_ps(mwt + (size_t) blk * 8),
										  _mm256_set1_ps(sxp[(size_t) blk * Q32P_PANEL + b0 + b]), summ[b]);
		}
		if (pf != NULL)
			x86_prefetch_slice(pf, blk);
		_Pragma("GCC unroll 4")
		for (int p = 0; p < P; p++)
		{
			size_t		wo = ((size_t) blk * 4 + p) * 64;
			__m512i		q = _mm512_load_si512((const void *) (wq + wo));
			__m512i		winit = _mm512_setzero_si512();

			if (w_off)
				winit = _mm512_load_si512((const void *) (wi + wo));
			_Pragma("GCC unroll 6")
			for (int b = 0; b < B; b++)
			{
				__m512i		lanes;
				__m512		scl = _mm512_castpd_ps(_mm512_set1_pd(*(const double *) &s[b][2 * p]));

				if (w_off)
					lanes = _mm512_dpbusd_epi32(winit, y[b], q);
				else if (act_off)
					lanes = _mm512_dpbusd_epi32(yinit[b], q, y[b]);
				else
					lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y[b]);
				acc[p][b] = _mm512_fmadd_ps(scl, _mm512_cvtepi32_ps(lanes), acc[p][b]);
			}
		}
	}
#undef Q32P_SCALES
	/* lanes back to outputs, each summed in ggml's hsum_float_8 order */
	_Pragma("GCC unroll 6")
	for (int b = 0; b < B; b++)
	{
		float		sm[8];

		_mm256_storeu_ps(sm, summ[b]);
		_Pragma("GCC unroll 4")
		for (int p = 0; p < P; p++)
		{
			_mm512_store_ps(out[p], acc[p][b]);
			for (int h = 0; h < 2; h++)
			{
				const float *l = out[p] + h;	/* lane k at l[2k] */
				float		v = ((l[8] + l[0]) + (l[12] + l[4])) + ((l[10] + l[2]) + (l[14] + l[6]));

				Y[(int64_t) (b0 + b) * y_stride + r + 2 * p + h] = is1 ? v + sm[2 * p + h] : v;
			}
		}
	}
}

/* Call TILE(R, b) for a batch tile of nb_ (1..Q32P_B) rows with the constant R and b that matches. */
#define Q32P_TILE_SWITCH(TILE, R_, nb_) \
	do { \
		switch (nb_) \
		{ \
			case 6: TILE(R_, 6); break; \
			case 5: TILE(R_, 5); break; \
			default: X86_TILE_SWITCH(TILE, R_, nb_); break; \
		} \
	} while (0)

/* Weight scales (and mins) of rows [r, r+R) as floats, [blk][8]. */
X86_INLINE void
q32p_weight_scales(lm_type t, const uint8_t *w, size_t ws, int64_t nb, float *dwt, float *mwt, int R)
{
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);

	for (int i = 0; i < 8; i++)
		for (int64_t blk = 0; blk < nb; blk++)
		{
			/* rows past R get 0: their lanes are computed but never read */
			dwt[blk * 8 + i] = i < R ? h2f(q32_d(t, w + (size_t) i * ws, blk)) : 0.0f;
			if (is1)
				mwt[blk * 8 + i] = i < R ? h2f(q32_m(t, w + (size_t) i * ws, blk)) : 0.0f;
		}
}

/*
 * The R rows from w decoded for the tiles, once per (row tile, panel)
 * instead of once per (row tile, batch tile): wq[blk][p] = pair p's block
 * blk as q32p_decode interleaves it; for Q8_0 (whose weights are the
 * signed operand) wi[blk][p] = the lanes' starting value -128 * (sum of
 * the dword's 4 weights), which cancels the activations' 0x80 flip.
 */
X86_INLINE void
q32p_weights(lm_type t, const uint8_t *w, size_t ws, int64_t nb, int R, uint8_t *wq, uint8_t *wi)
{
	for (int64_t blk = 0; blk < nb; blk++)
		for (int p = 0; p < R / 2; p++)
		{
			size_t		wo = ((size_t) blk * 4 + p) * 64;
			__m512i		q = q32p_decode(t, w + (size_t) (2 * p) * ws, ws, blk);

			_mm512_store_si512((void *) (wq + wo), q);
			if (t == LM_TYPE_Q8_0)
				_mm512_store_si512((void *) (wi + wo),
								   _mm512_sub_epi32(_mm512_setzero_si512(),
													_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char) 0x80), q)));
		}
}

/*
 * The pn activation rows of a panel as the tiles read them, 64 bytes per
 * (block, row) at [blk][Q32P_PANEL]: ydp the 8 dwords of the block each
 * duplicated (dwords 2k and 2k+1 = dword k, matching the interleaved
 * weight pair), bytes flipped by 0x80 for Q8_0 (whose weights are the
 * signed operand there); yip, for Q4_0/Q5_0, the lanes' offset term
 * -off * (sum of the dword's 4 bytes), the integer lanes' starting value.
 * Done once per panel instead of once per (row tile, block).
 */
X86_INLINE void
q32p_panel(lm_type t, const uint8_t *xp, size_t xs, int pn, int64_t nb, uint8_t *ydp, uint8_t *yip)
{
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);
	const int	act_off = (t == LM_TYPE_Q4_0 ? 8 : t == LM_TYPE_Q5_0 ? 16 : 0);
	const size_t xbs = is1 ? sizeof(lm_block_q8_1) : sizeof(lm_block_q8_0);
	const size_t xqo = is1 ? 4 : 2;
	const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);

	for (int b = 0; b < pn; b++)
		for (int64_t blk = 0; blk < nb; blk++)
		{
			const uint8_t *xb = xp + (size_t) b * xs + (size_t) blk * xbs + xqo;
			size_t		yo = ((size_t) blk * Q32P_PANEL + b) * 64;
			__m512i		y = _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) xb)));

			if (t == LM_TYPE_Q8_0)
				y = _mm512_xor_si512(y, _mm512_set1_epi8((char) 0x80));
			_mm512_store_si512((void *) (ydp + yo), y);
			if (act_off)
				_mm512_store_si512((void *) (yip + yo),
								   _mm512_sub_epi32(_mm512_setzero_si512(),
													_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char) act_off), y)));
		}
}

/*
 * Block-32 matrix product for n_batch >= 4 (see the header): panels of
 * activation rows, in each the row tiles of 8 (then 4, 2) rows, in each
 * the batch tiles of 6 (4 for the _1 types; then fewer); an odd last row
 * goes through tile32.  The panel's prepared activations, scales and the
 * decoded row tile take nb * 6.9 KiB of heap; without it the product goes through tile32 (same
 * results).
 */
X86_INLINE void
rows_q32p(lm_type t, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
		  const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);
	const size_t xbs = is1 ? sizeof(lm_block_q8_1) : sizeof(lm_block_q8_0);
	const int64_t nb = n_cols / 32;
	/* the _1 types' min terms take registers: 4 activation rows per tile for them */
	const int	bmax = is1 ? 4 : Q32P_B;
	/* sized by nb (<= Q32P_MAXNB: at most 16 KiB of stack) */
	float		dwt[nb * 8],
				mwt[is1 ? nb * 8 : 1];
	int64_t		r_even = r0 + ((r1 - r0) & ~(int64_t) 1);
	size_t		ybytes = (size_t) nb * Q32P_PANEL * 64,
				fbytes = (size_t) nb * Q32P_PANEL * sizeof(float),
				wbytes = (size_t) nb * 4 * 64;
	uint8_t    *ydp = aligned_alloc(64, 2 * ybytes + 2 * wbytes + 2 * fbytes),
			   *yip = ydp + ybytes,
			   *wq = yip + ybytes,
			   *wi = wq + wbytes;
	float	   *dxp = (float *) (wi + wbytes),
			   *sxp = dxp + (size_t) nb * Q32P_PANEL;

	if (ydp == NULL)
	{
		rows_q32(t, W, ws, n_cols, r0, r1, Xq, xs, n_batch, Y, y_stride);
		return;
	}

	for (int p0 = 0; p0 < n_batch; p0 += Q32P_PANEL)
	{
		const int	pn = n_batch - p0 < Q32P_PANEL ? n_batch - p0 : Q32P_PANEL;
		const uint8_t *xp = (const uint8_t *) Xq + (size_t) p0 * xs;

		/* activation scales (and sums) of the panel as floats */
		for (int b = 0; b < pn; b++)
			for (int64_t blk = 0; blk < nb; blk++)
			{
				const uint8_t *xb = xp + (size_t) b * xs + (size_t) blk * xbs;
				uint16_t	h;

				memcpy(&h, xb, 2);
				dxp[blk * Q32P_PANEL + b] = h2f(h);
				if (is1)
				{
					memcpy(&h, xb + 2, 2);
					sxp[blk * Q32P_PANEL + b] = h2f(h);
				}
			}
		q32p_panel(t, xp, xs, pn, nb, ydp, yip);
		for (int64_t r = r0; r < r_even;)
		{
			const int	R = r_even - r >= 8 ? 8 : r_even - r >= 4 ? 4 : 2;
			const uint8_t *w = (const uint8_t *) W + (size_t) r * ws;
			x86_pf		pf = x86_prefetch_init(w, (size_t) R * ws, nb);

			q32p_weight_scales(t, w, ws, nb, dwt, mwt, R);
			q32p_weights(t, w, ws, nb, R, wq, wi);
			for (int b0 = 0; b0 < pn; b0 += bmax)
			{
				const int	bn = pn - b0 < bmax ? pn - b0 : bmax;
				x86_pf	   *pfp = b0 == 0 ? &pf : NULL;	/* prefetch the next row tile during the first pass */

#define TILEP(R_, B_) tile32p(t, wq, wi, ydp, yip, nb, dwt, mwt, dxp, sxp, r, b0, Y + (size_t) p0 * y_stride, y_stride, pfp, R_, B_)
				if (R == 8)
					Q32P_TILE_SWITCH(TILEP, 8, bn);
				else if (R == 4)
					Q32P_TILE_SWITCH(TILEP, 4, bn);
				else
					Q32P_TILE_SWITCH(TILEP, 2, bn);
#undef TILEP
			}
			r += R;
		}
	}
	free(ydp);
	if (r_even < r1)
		rows_q32(t, W, ws, n_cols, r_even, r1, Xq, xs, n_batch, Y, y_stride);
}

#endif							/* LM_KERNELS_X86_Q32P_H */
