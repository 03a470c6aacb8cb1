/*
 * kernels_x86_q32.h — tiled x86 kernels for the block-32 types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
 * Included by kernels_x86.h only (which defines LM_X86_VNNI and the
 * helpers); not a public header.
 */
#ifndef LM_KERNELS_X86_Q32_H
#define LM_KERNELS_X86_Q32_H

/* ---------------- block-32 types (x Q8_0 / Q8_1), tiled ---------------- */

/*
 * A tile is R weight rows x B activation rows (R, B <= 4); each of the R*B
 * outputs keeps its own 8-lane accumulator and sees exactly the float
 * operations of the canonical order, block by block, so tiling changes
 * speed, not bits.  Each weight block is decoded once per tile, each
 * activation block loaded once per tile, and the R*B scale products of a
 * block are formed together and read back as memory broadcasts.
 *
 * Integer lanes (exact, so any formulation will do):
 *   Q4_0/Q5_0: unsigned q (0..15 / 0..31) times y, plus -8 (-16) times the
 *     lane sums of y, which are formed once per activation block;
 *   Q4_1/Q5_1: unsigned q times y;
 *   Q8_0 with VNNI: (y xor 0x80) = y+128 unsigned times the signed
 *     weights, plus -128 times the weights' lane sums, formed once per
 *     weight block; without VNNI vpmaddubsw would saturate on that, so the
 *     sign trick (|w| times y with w's sign) is used instead.
 */

/* Bytes of one weight block of type t. */
X86_INLINE size_t
q32_block_bytes(lm_type t)
{
	switch (t)
	{
		case LM_TYPE_Q4_0:
			return sizeof(lm_block_q4_0);
		case LM_TYPE_Q5_0:
			return sizeof(lm_block_q5_0);
		case LM_TYPE_Q8_0:
			return sizeof(lm_block_q8_0);
		case LM_TYPE_Q4_1:
			return sizeof(lm_block_q4_1);
		default:
			return sizeof(lm_block_q5_1);
	}
}

/* 32 nibbles of a Q5 block with 0x10 added where the matching bit of the 32-bit word at qh is set. */
X86_INLINE __m256i
q5_decode(const uint8_t *qs, const uint8_t *qh)
{
#if LM_X86_VNNI
	uint32_t	h;

	/* AVX-512: the bits as a byte mask, one masked add (nibbles < 16, so add = or) */
	memcpy(&h, qh, 4);
	return _mm256_mask_add_epi8(nibbles32(qs), (__mmask32) h, nibbles32(qs), _mm256_set1_epi8(0x10));
#else
	return _mm256_or_si256(nibbles32(qs), bits32_to_0x10(qh));
#endif
}

/* Decode weight block blk of a row into 32 bytes (unsigned q, or signed Q8_0 values). */
X86_INLINE __m256i
q32_decode(lm_type t, const uint8_t *row, int64_t blk)
{
	switch (t)
	{
		case LM_TYPE_Q4_0:
			return nibbles32(((const lm_block_q4_0 *) row + blk)->qs);
		case LM_TYPE_Q5_0:
			{
				const lm_block_q5_0 *B = (const lm_block_q5_0 *) row + blk;

				return q5_decode(B->qs, B->qh);
			}
		case LM_TYPE_Q8_0:
			return _mm256_loadu_si256((const __m256i *) ((const lm_block_q8_0 *) row + blk)->qs);
		case LM_TYPE_Q4_1:
			return nibbles32(((const lm_block_q4_1 *) row + blk)->qs);
		default:				/* LM_TYPE_Q5_1 */
			{
				const lm_block_q5_1 *B = (const lm_block_q5_1 *) row + blk;

				return q5_decode(B->qs, B->qh);
			}
	}
}

/* fp16 scale d of weight block blk (all block-32 layouts start with it). */
X86_INLINE uint16_t
q32_d(lm_type t, const uint8_t *row, int64_t blk)
{
	uint16_t	d;

	memcpy(&d, row + (size_t) blk * q32_block_bytes(t), 2);
	return d;
}

/* fp16 min m of weight block blk (_1 types: right after d). */
X86_INLINE uint16_t
q32_m(lm_type t, const uint8_t *row, int64_t blk)
{
	uint16_t	m;

	memcpy(&m, row + (size_t) blk * q32_block_bytes(t) + 2, 2);
	return m;
}

/* acc + lane sums of u*s (u unsigned, s signed bytes), 4 bytes per int32 lane. */
X86_INLINE __m256i
dot_us_acc(__m256i acc, __m256i u, __m256i s)
{
#if LM_X86_VNNI
	return _mm256_dpbusd_epi32(acc, u, s);
#else
	return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* Four fp16 values as floats (lanes 0..3). */
X86_INLINE __m128
h4(uint16_t a, uint16_t b, uint16_t c, uint16_t d)
{
	uint64_t	v = (uint64_t) a | ((uint64_t) b << 16) | ((uint64_t) c << 32) | ((uint64_t) d << 48);

	return _mm_cvtph_ps(_mm_cvtsi64_si128((long long) v));
}

/* Keep the compiler from replacing reads of *p by register shuffles (they are cheaper as broadcast loads). */
#define X86_IN_MEMORY(p) __asm__ volatile("" : "+m"(*(p)))

/* Scale products fp32(d_w[r]) * fp32(d_x[b]) of block blk into sc[r][b] (sc[0][r] when B = 1), the weight mins into mw[r], the activation sums into *sx4. */
X86_INLINE void
tile32_scales(lm_type t, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, int64_t blk,
			  float sc[4][4], float mw[4], __m128 *sx4, const int R, const int B)
{
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);
	const size_t xbs = is1 ? sizeof(lm_block_q8_1) : sizeof(lm_block_q8_0);
	uint16_t	dxh[4] = {0, 0, 0, 0},
				sxh[4] = {0, 0, 0, 0},
				dwh[4] = {0, 0, 0, 0},
				mwh[4] = {0, 0, 0, 0};
	__m128		dx4,
				dw4;

	_Pragma("GCC unroll 4")
	for (int b = 0; b < B; b++)
	{
		const uint8_t *xb = x + (size_t) b * xs + (size_t) blk * xbs;

		memcpy(&dxh[b], xb, 2);
		if (is1)
			memcpy(&sxh[b], xb + 2, 2);
	}
	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
	{
		dwh[r] = q32_d(t, w + (size_t) r * ws, blk);
		if (is1)
			mwh[r] = q32_m(t, w + (size_t) r * ws, blk);
	}
	dx4 = h4(dxh[0], dxh[1], dxh[2], dxh[3]);
	dw4 = h4(dwh[0], dwh[1], dwh[2], dwh[3]);
	if (is1)
	{
		*sx4 = h4(sxh[0], sxh[1], sxh[2], sxh[3]);
		_mm_store_ps(mw, h4(mwh[0], mwh[1], mwh[2], mwh[3]));
	}
	if (B == 1)
	{
		/* one activation row: the R products in one multiply, sc[0][r] = d_w[r] * d_x */
		_mm_store_ps(sc[0], _mm_mul_ps(dw4, _mm_shuffle_ps(dx4, dx4, 0x00)));
		return;
	}
	_mm_store_ps(sc[0], _mm_mul_ps(_mm_shuffle_ps(dw4, dw4, 0x00), dx4));
	if (R > 1)
	{
		_mm_store_ps(sc[1], _mm_mul_ps(_mm_shuffle_ps(dw4, dw4, 0x55), dx4));
		_mm_store_ps(sc[2], _mm_mul_ps(_mm_shuffle_ps(dw4, dw4, 0xAA), dx4));
		_mm_store_ps(sc[3], _mm_mul_ps(_mm_shuffle_ps(dw4, dw4, 0xFF), dx4));
	}
}

/* R weight rows (w, ws bytes apart) x B activation rows (x, xs apart) over nb blocks; out[r*B+b]. */
X86_INLINE void
tile32(lm_type t, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, int64_t nb,
	   float *out, const int R, const int B)
{
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);
	const int	act_off = (t == LM_TYPE_Q4_0 ? 8 : t == LM_TYPE_Q5_0 ? 16 : 0);
	const int	w_off = (LM_X86_VNNI && t == LM_TYPE_Q8_0);
	const size_t xbs = is1 ? sizeof(lm_block_q8_1) : sizeof(lm_block_q8_0);
	__m256		acc[4][4];
	__m128		summ[4];		/* _1 types: lane b = min term of (r, b) */
	float		scb[2][4][4] __attribute__((aligned(64)));	/* scale products, double-buffered by block */
	float		mwb[2][4] __attribute__((aligned(16)));	/* weight mins, likewise */
	__m128		sx4b[2] = {_mm_setzero_ps(), _mm_setzero_ps()};	/* activation sums, likewise */
	x86_pf		pf = x86_prefetch_init(w, (size_t) R * ws, nb);	/* weights of a later tile */

	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
	{
		summ[r] = _mm_setzero_ps();
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
			acc[r][b] = _mm256_setzero_ps();
	}
	if (nb > 0)
		tile32_scales(t, w, ws, x, xs, 0, scb[0], mwb[0], &sx4b[0], R, B);
	X86_IN_MEMORY(&scb);
	X86_IN_MEMORY(&mwb);
	for (int64_t blk = 0; blk < nb; blk++)
	{
		__m256i		y[4],
					yinit[4];
		float		(*sc)[4] = scb[blk & 1];
		float	   *mw = mwb[blk & 1];
		__m128		sx4 = sx4b[blk & 1];

		/* scales of the next block now, so that their stores are long done when read */
		if (blk + 1 < nb)
		{
			tile32_scales(t, w, ws, x, xs, blk + 1, scb[(blk + 1) & 1], mwb[(blk + 1) & 1], &sx4b[(blk + 1) & 1], R, B);
			X86_IN_MEMORY(&scb);
			X86_IN_MEMORY(&mwb);
		}
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
		{
			const uint8_t *xb = x + (size_t) b * xs + (size_t) blk * xbs;

			if (is1)
			{
				const lm_block_q8_1 *X = (const lm_block_q8_1 *) xb;

				y[b] = _mm256_loadu_si256((const __m256i *) X->qs);
			}
			else
			{
				const lm_block_q8_0 *X = (const lm_block_q8_0 *) xb;

				y[b] = _mm256_loadu_si256((const __m256i *) X->qs);
				if (w_off)
					y[b] = _mm256_xor_si256(y[b], _mm256_set1_epi8((char) 0x80));
				if (act_off)
					yinit[b] = _mm256_sub_epi32(_mm256_setzero_si256(),
												dot_us_acc(_mm256_setzero_si256(), _mm256_set1_epi8(act_off), y[b]));
			}
		}
		x86_prefetch_slice(&pf, blk);
		_Pragma("GCC unroll 4")
		for (int r = 0; r < R; r++)
		{
			__m256i		q = q32_decode(t, w + (size_t) r * ws, blk);
			__m256i		winit = _mm256_setzero_si256();

			if (w_off)
				winit = _mm256_sub_epi32(winit, dot_us_acc(winit, _mm256_set1_epi8((char) 0x80), q));
			if (is1)
				summ[r] = _mm_fmadd_ps(_mm_set1_ps(mw[r]), sx4, summ[r]);
			_Pragma("GCC unroll 4")
			for (int b = 0; b < B; b++)
			{
				__m256i		lanes;

				if (w_off)
					lanes = dot_us_acc(winit, y[b], q);
				else if (act_off)
					lanes = dot_us_acc(yinit[b], q, y[b]);
				else if (is1)
					lanes = dot_us_acc(_mm256_setzero_si256(), q, y[b]);
				else
					lanes = dot_ss(q, y[b]);
				acc[r][b] = _mm256_fmadd_ps(_mm256_set1_ps(B == 1 ? sc[0][r] : sc[r][b]), _mm256_cvtepi32_ps(lanes), acc[r][b]);
			}
		}
	}
	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
	{
		float		sm[4];

		_mm_storeu_ps(sm, summ[r]);
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
			out[r * B + b] = is1 ? x86_hsum8(acc[r][b]) + sm[b] : x86_hsum8(acc[r][b]);
	}
}

/* Block-32 matrix product. */
X86_INLINE void
rows_q32(lm_type t, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
		 const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
#define TILE32(R_, B_) tile32(t, w, ws, x, xs, n_cols / 32, out, R_, B_)
	X86_ROWS_LOOP(Q32_R, Q32_B, TILE32);
#undef TILE32
}

#endif							/* LM_KERNELS_X86_Q32_H */
