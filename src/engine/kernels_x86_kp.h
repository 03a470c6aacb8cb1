/*
 * kernels_x86_kp.h — AVX-512 kernel for Q4_K and Q6_K on batches of
 * activation rows (prompt prefill).  Included by kernels_x86.h only, in the
 * AVX-512 build; not a public header.
 *
 * Why.  The K-quant tiles of kernels_x86_k.h work in 256-bit registers: one
 * (weight row, activation row) pair's 8 integer lanes fill a register, and
 * each weight chunk is decoded (nibbles, Q6_K's high bits, scale vectors)
 * once per 4 activation rows.  Here one 512-bit register holds the 8 lanes
 * of TWO activation rows b, b' for one weight row:
 *
 *     dwords 0..7 = lanes 0..7 of (r, b),   dwords 8..15 = lanes 0..7 of (r, b')
 *
 * The weight chunk is loaded into both halves (the same bytes), the
 * activations of b and b' sit side by side in a panel prepared once per
 * call (kp_act: their 32-byte chunks, scales and block sums paired), so one
 * vpmaddubsw + vpdpwssd advances 16 lanes.  The integer lanes are the exact
 * integers of the 256-bit code (integer sums do not depend on grouping);
 * the float steps per super-block are the same operations on the same
 * values in the same order (d_w * d_x, one fma per lane; Q4_K's mins as a
 * 4-lane fma with dmin_w * (0 - d_x)), so every output has the bits of the
 * scalar path (test_kernels.c).
 *
 * Tiles: 2 weight rows x up to KP_BP activation pairs.  An odd last
 * activation row is paired with a zero row whose outputs are dropped.
 *
 * Weights are decoded once per (row tile, panel) into a scratch that stays
 * in L1 (kp_w4 / kp_w6: nibbles and Q6_K's high bits as bytes, scale
 * vectors, d as floats; 320 / 576 bytes per row and super-block), which
 * the panel's 6 pair tiles then read with broadcast loads; before, each
 * pair tile decoded them again.  bench_kernels 640 2048 avx512 0.5
 * q4_k,q6_k 480: Q4_K 7.4 -> 6.5 ms, Q6_K 8.3 -> 6.0 ms.
 */
#ifndef LM_KERNELS_X86_KP_H
#define LM_KERNELS_X86_KP_H

#define KP_PANEL 48				/* activation rows per panel (even) */
#define KP_BP 4					/* activation pairs per tile at most */

/* One super-block of an activation pair (b, b') as the tiles read it. */
typedef struct kp_act
{
	int8_t		qs[8][64];		/* chunk j: bytes 32j..32j+31 of b, then of b' */
	float		d[16];			/* d of b x 8, of b' x 8 */
	float		nd[8];			/* (0 - d) of b x 4, of b' x 4 */
	int16_t		q8s[16];		/* bsums[2i] + bsums[2i+1], i < 8: of b, of b' */
	int16_t		bsums[32];		/* bsums of b, of b' */
} __attribute__((aligned(64))) kp_act;

/* Fill the pairs of a panel's pn rows (xp: Q8_K rows xs apart): act[pair * nb + blk]. */
X86_INLINE void
kp_panel(const uint8_t *xp, size_t xs, int pn, int64_t nb, kp_act *act)
{
	for (int p = 0; p < (pn + 1) / 2; p++)
		for (int64_t blk = 0; blk < nb; blk++)
		{
			kp_act	   *a = act + (size_t) p * nb + blk;

			for (int h = 0; h < 2; h++)
			{
				int			b = 2 * p + h;

				if (b < pn)
				{
					const lm_block_q8_K *X = (const lm_block_q8_K *) (xp + (size_t) b * xs) + blk;

					for (int j = 0; j < 8; j++)
						memcpy(a->qs[j] + 32 * h, X->qs + 32 * j, 32);
					for (int i = 0; i < 8; i++)
					{
						a->d[8 * h + i] = X->d;
						a->q8s[8 * h + i] = (int16_t) (X->bsums[2 * i] + X->bsums[2 * i + 1]);
					}
					for (int i = 0; i < 4; i++)
						a->nd[4 * h + i] = 0.0f - X->d;
					memcpy(a->bsums + 16 * h, X->bsums, sizeof(X->bsums));
				}
				else
				{
					/* the zero partner of an odd last row */
					for (int j = 0; j < 8; j++)
						memset(a->qs[j] + 32 * h, 0, 32);
					for (int i = 0; i < 8; i++)
					{
						a->d[8 * h + i] = 0.0f;
						a->q8s[8 * h + i] = 0;
					}
					for (int i = 0; i < 4; i++)
						a->nd[4 * h + i] = 0.0f;
					memset(a->bsums + 16 * h, 0, 16 * sizeof(int16_t));
				}
			}
		}
}

/* Write the two outputs of one (row, pair) accumulator: each half summed as x86_hsum8, plus the mins term. */
X86_INLINE void
kp_store(__m512 acc, __m256 accm, int q4, float *Y, int64_t y_stride, int64_t r, int b, int nbr)
{
	float		m[8];

	_mm256_storeu_ps(m, accm);
	for (int h = 0; h < 2 && b + h < nbr; h++)
	{
		float		v = x86_hsum8(h ? _mm512_extractf32x8_ps(acc, 1) : _mm512_castps512_ps256(acc));

		if (q4)
			v += (m[4 * h] + m[4 * h + 2]) + (m[4 * h + 1] + m[4 * h + 3]);
		Y[(int64_t) (b + h) * y_stride + r] = v;
	}
}

/* One Q4_K super-block of one weight row, decoded once per (row tile, panel) for the tiles. */
typedef struct kp_w4
{
	uint8_t		q[8][32];		/* chunk c: low nibbles at 2c, high nibbles at 2c+1 (values 0..15) */
	uint32_t	scp[8];			/* sub-block scale j in both int16 halves (k4_scales) */
	int16_t		mn16[8];		/* sub-block mins */
	float		dw;				/* fp16 d as float */
	float		dmw;			/* fp16 dmin as float */
} __attribute__((aligned(64))) kp_w4;

/* One Q6_K super-block of one weight row, decoded once per (row tile, panel) for the tiles. */
typedef struct kp_w6
{
	uint8_t		q[8][32];		/* half h, group t at 4h+t: the 6-bit values 0..63 */
	int16_t		s[8][16];		/* at 4h+t: int16 j = scale of element pair j of that group */
	int16_t		sc16[16];		/* the 16 scales as int16 (the -32 offset term) */
	float		dw;				/* fp16 d as float */
} __attribute__((aligned(64))) kp_w6;

/* Decode Q4_K super-blocks [0, nb) of row w into d[0..nb). */
X86_INLINE void
kp_decode_q4k(const uint8_t *w, int64_t nb, kp_w4 *d)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);

	for (int64_t blk = 0; blk < nb; blk++)
	{
		const lm_block_q4_K *B = (const lm_block_q4_K *) w + blk;
		kp_w4	   *o = d + blk;
		__m128i		mn;

		o->dw = h2f(B->d);
		o->dmw = h2f(B->dmin);
		mn = k4_scales(B->scales, o->scp);
		_mm_store_si128((__m128i *) o->mn16, mn);
		for (int c = 0; c < 4; c++)
		{
			__m256i		bits = _mm256_loadu_si256((const __m256i *) (B->qs + 32 * c));

			_mm256_store_si256((__m256i *) o->q[2 * c], _mm256_and_si256(bits, m4));
			_mm256_store_si256((__m256i *) o->q[2 * c + 1], _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
		}
	}
}

/* Decode Q6_K super-blocks [0, nb) of row w into d[0..nb). */
X86_INLINE void
kp_decode_q6k(const uint8_t *w, int64_t nb, kp_w6 *d)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	const __m256i m3 = _mm256_set1_epi8(3);
	const __m256i i01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
	const __m256i i23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);

	for (int64_t blk = 0; blk < nb; blk++)
	{
		const lm_block_q6_K *B = (const lm_block_q6_K *) w + blk;
		kp_w6	   *o = d + blk;

		o->dw = h2f(B->d);
		_mm256_store_si256((__m256i *) o->sc16, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) B->scales)));
		for (int h = 0; h < 2; h++)
		{
			__m256i		l1 = _mm256_loadu_si256((const __m256i *) (B->ql + 64 * h));
			__m256i		l2 = _mm256_loadu_si256((const __m256i *) (B->ql + 64 * h + 32));
			__m256i		qh = _mm256_loadu_si256((const __m256i *) (B->qh + 32 * h));
			/* scales of the 8 element groups of 16 (as int16) in both 128-bit lanes */
			__m256i		scw = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *) (B->scales + 8 * h))));
			__m256i		ul = _mm256_unpacklo_epi16(scw, scw),
						uh = _mm256_unpackhi_epi16(scw, scw);

			_mm256_store_si256((__m256i *) o->q[4 * h],
							   _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)));
			_mm256_store_si256((__m256i *) o->q[4 * h + 1],
							   _mm256_or_si256(_mm256_and_si256(l2, m4),
											   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4)));
			_mm256_store_si256((__m256i *) o->q[4 * h + 2],
							   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
											   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4)));
			_mm256_store_si256((__m256i *) o->q[4 * h + 3],
							   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
											   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4)));
			/* int16 j of s[t] = scale of element pair j: word 2t for j < 8, word 2t+1 above */
			_mm256_store_si256((__m256i *) o->s[4 * h], _mm256_permutevar8x32_epi32(ul, i01));
			_mm256_store_si256((__m256i *) o->s[4 * h + 1], _mm256_permutevar8x32_epi32(ul, i23));
			_mm256_store_si256((__m256i *) o->s[4 * h + 2], _mm256_permutevar8x32_epi32(uh, i01));
			_mm256_store_si256((__m256i *) o->s[4 * h + 3], _mm256_permutevar8x32_epi32(uh, i23));
		}
	}
}

/* 32 bytes at p in both 256-bit halves (one broadcast load). */
X86_INLINE __m512i
kp_bcast(const void *p)
{
	return _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *) p));
}

/* R (1 or 2) decoded Q4_K rows (dw[i * nb + blk]) against BP activation pairs from act (stride nb): outputs into Y. */
X86_INLINE void
tile_q4kp(const kp_w4 *dw, const kp_act *act, int64_t nb, int64_t r, int b0, int nbr,
		  float *Y, int64_t y_stride, x86_pf *pf, const int R, const int BP)
{
	__m512		acc[2][KP_BP];
	__m256		accm[2][KP_BP];

	_Pragma("GCC unroll 2")
	for (int i = 0; i < R; i++)
		_Pragma("GCC unroll 4")
		for (int p = 0; p < BP; p++)
		{
			acc[i][p] = _mm512_setzero_ps();
			accm[i][p] = _mm256_setzero_ps();
		}
	for (int64_t blk = 0; blk < nb; blk++)
	{
		__m512i		sumi[2][KP_BP];

		if (pf != NULL)
			x86_prefetch_slice(pf, blk);
		_Pragma("GCC unroll 2")
		for (int i = 0; i < R; i++)
			_Pragma("GCC unroll 4")
			for (int p = 0; p < BP; p++)
				sumi[i][p] = _mm512_setzero_si512();
		_Pragma("GCC unroll 4")
		for (int c = 0; c < 4; c++)
			_Pragma("GCC unroll 2")
			for (int i = 0; i < R; i++)
			{
				const kp_w4 *W = dw + (size_t) i * nb + blk;
				__m512i		lo = kp_bcast(W->q[2 * c]),
							hi = kp_bcast(W->q[2 * c + 1]);
				__m512i		slo = _mm512_set1_epi32((int) W->scp[2 * c]),
							shi = _mm512_set1_epi32((int) W->scp[2 * c + 1]);

				_Pragma("GCC unroll 4")
				for (int p = 0; p < BP; p++)
				{
					const kp_act *a = act + (size_t) p * nb + blk;

					sumi[i][p] = _mm512_dpwssd_epi32(sumi[i][p], _mm512_maddubs_epi16(lo, _mm512_load_si512((const void *) a->qs[2 * c])), slo);
					sumi[i][p] = _mm512_dpwssd_epi32(sumi[i][p], _mm512_maddubs_epi16(hi, _mm512_load_si512((const void *) a->qs[2 * c + 1])), shi);
				}
			}
		_Pragma("GCC unroll 2")
		for (int i = 0; i < R; i++)
			_Pragma("GCC unroll 4")
			for (int p = 0; p < BP; p++)
			{
				const kp_w4 *W = dw + (size_t) i * nb + blk;
				const kp_act *a = act + (size_t) p * nb + blk;
				__m256i		m = _mm256_madd_epi16(_mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *) W->mn16)),
												  _mm256_load_si256((const __m256i *) a->q8s));
				__m256		dmsc = _mm256_mul_ps(_mm256_set1_ps(W->dmw), _mm256_load_ps(a->nd));
				__m512		dsc = _mm512_mul_ps(_mm512_set1_ps(W->dw), _mm512_load_ps(a->d));

				accm[i][p] = _mm256_fmadd_ps(dmsc, _mm256_cvtepi32_ps(m), accm[i][p]);
				acc[i][p] = _mm512_fmadd_ps(dsc, _mm512_cvtepi32_ps(sumi[i][p]), acc[i][p]);
			}
	}
	_Pragma("GCC unroll 2")
	for (int i = 0; i < R; i++)
		_Pragma("GCC unroll 4")
		for (int p = 0; p < BP; p++)
			kp_store(acc[i][p], accm[i][p], 1, Y, y_stride, r + i, b0 + 2 * p, nbr);
}

/* R (1 or 2) decoded Q6_K rows (dw[i * nb + blk]) against BP activation pairs from act (stride nb): outputs into Y. */
X86_INLINE void
tile_q6kp(const kp_w6 *dw, const kp_act *act, int64_t nb, int64_t r, int b0, int nbr,
		  float *Y, int64_t y_stride, x86_pf *pf, const int R, const int BP)
{
	__m512		acc[2][KP_BP];

	_Pragma("GCC unroll 2")
	for (int i = 0; i < R; i++)
		_Pragma("GCC unroll 4")
		for (int p = 0; p < BP; p++)
			acc[i][p] = _mm512_setzero_ps();
	for (int64_t blk = 0; blk < nb; blk++)
	{
		__m512i		sumi[2][KP_BP];

		if (pf != NULL)
			x86_prefetch_slice(pf, blk);
		_Pragma("GCC unroll 2")
		for (int i = 0; i < R; i++)
		{
			__m512i		sc16 = kp_bcast(dw[(size_t) i * nb + blk].sc16);

			/* the -32 offset: lane k loses 32 * (bsums[2k]*sc[2k] + bsums[2k+1]*sc[2k+1]) */
			_Pragma("GCC unroll 4")
			for (int p = 0; p < BP; p++)
			{
				const kp_act *a = act + (size_t) p * nb + blk;

				sumi[i][p] = _mm512_sub_epi32(_mm512_setzero_si512(),
											  _mm512_slli_epi32(_mm512_madd_epi16(_mm512_load_si512((const void *) a->bsums), sc16), 5));
			}
		}
		_Pragma("GCC unroll 2")
		for (int h = 0; h < 2; h++)
			_Pragma("GCC unroll 2")
			for (int i = 0; i < R; i++)
			{
				const kp_w6 *W = dw + (size_t) i * nb + blk;

				_Pragma("GCC unroll 4")
				for (int t = 0; t < 4; t++)
				{
					__m512i		q = kp_bcast(W->q[4 * h + t]),
								s = kp_bcast(W->s[4 * h + t]);

					_Pragma("GCC unroll 4")
					for (int p = 0; p < BP; p++)
					{
						const kp_act *a = act + (size_t) p * nb + blk;

						sumi[i][p] = _mm512_dpwssd_epi32(sumi[i][p],
														 _mm512_maddubs_epi16(q, _mm512_load_si512((const void *) a->qs[4 * h + t])), s);
					}
				}
			}
		_Pragma("GCC unroll 2")
		for (int i = 0; i < R; i++)
			_Pragma("GCC unroll 4")
			for (int p = 0; p < BP; p++)
			{
				const kp_act *a = act + (size_t) p * nb + blk;

				acc[i][p] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dw[(size_t) i * nb + blk].dw), _mm512_load_ps(a->d)),
											_mm512_cvtepi32_ps(sumi[i][p]), acc[i][p]);
			}
	}
	_Pragma("GCC unroll 2")
	for (int i = 0; i < R; i++)
		_Pragma("GCC unroll 4")
		for (int p = 0; p < BP; p++)
			kp_store(acc[i][p], _mm256_setzero_ps(), 0, Y, y_stride, r + i, b0 + 2 * p, nbr);
}

/*
 * Q4_K / Q6_K matrix product for n_batch >= 4 (see the header): panels of
 * activation rows prepared as pairs, in each the row tiles of 2 (the last
 * odd row alone), in each the tiles of up to KP_BP pairs.  Returns false, having done nothing,
 * when the panel's memory cannot be had (the caller then runs the 256-bit
 * tiles, same results).
 */
X86_INLINE bool
rows_kp(lm_type t, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
		const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
	const int64_t nb = n_cols / 256;
	size_t		abytes = sizeof(kp_act) * (KP_PANEL / 2) * (size_t) nb,
				wbytes = 2 * (size_t) nb * (t == LM_TYPE_Q6_K ? sizeof(kp_w6) : sizeof(kp_w4));
	kp_act	   *act = aligned_alloc(64, abytes + wbytes);
	void	   *dw = (uint8_t *) act + abytes;

	if (act == NULL)
		return false;
	for (int p0 = 0; p0 < n_batch; p0 += KP_PANEL)
	{
		const int	pn = n_batch - p0 < KP_PANEL ? n_batch - p0 : KP_PANEL,
					npairs = (pn + 1) / 2;
		float	   *Yp = Y + (size_t) p0 * y_stride;

		kp_panel((const uint8_t *) Xq + (size_t) p0 * xs, xs, pn, nb, act);
		for (int64_t r = r0; r < r1;)
		{
			const int	R = r1 - r >= 2 ? 2 : 1;
			const uint8_t *w = (const uint8_t *) W + (size_t) r * ws;
			x86_pf		pf = x86_prefetch_init(w, (size_t) R * ws, nb);

			/* the row tile decoded once for all the panel's pair tiles */
			for (int i = 0; i < R; i++)
				if (t == LM_TYPE_Q6_K)
					kp_decode_q6k(w + (size_t) i * ws, nb, (kp_w6 *) dw + (size_t) i * nb);
				else
					kp_decode_q4k(w + (size_t) i * ws, nb, (kp_w4 *) dw + (size_t) i * nb);
			for (int q0 = 0; q0 < npairs; q0 += KP_BP)
			{
				const int	np = npairs - q0 < KP_BP ? npairs - q0 : KP_BP;
				x86_pf	   *pfp = q0 == 0 ? &pf : NULL;	/* prefetch the next row tile during the first pass */
				const kp_act *a = act + (size_t) q0 * nb;

#define TILEKP(R_, P_) \
				do { \
					if (t == LM_TYPE_Q6_K) \
						tile_q6kp((const kp_w6 *) dw, a, nb, r, 2 * q0, pn, Yp, y_stride, pfp, R_, P_); \
					else \
						tile_q4kp((const kp_w4 *) dw, a, nb, r, 2 * q0, pn, Yp, y_stride, pfp, R_, P_); \
				} while (0)
				if (R == 2)
					X86_TILE_SWITCH(TILEKP, 2, np);
				else
					X86_TILE_SWITCH(TILEKP, 1, np);
#undef TILEKP
			}
			r += R;
		}
	}
	free(act);
	return true;
}

#endif							/* LM_KERNELS_X86_KP_H */
