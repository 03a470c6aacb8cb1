/*
 * kernels_x86_k.h — tiled x86 kernels for the K-quants (Q4_K, Q5_K, Q6_K).
 * Included by kernels_x86.h only (which defines LM_X86_VNNI and the
 * helpers); not a public header.
 */
#ifndef LM_KERNELS_X86_K_H
#define LM_KERNELS_X86_K_H

/* ---------------- K-quants (x Q8_K), tiled ---------------- */

/*
 * Tiles of R weight rows x B activation rows as for block-32.  Integer
 * lanes: vpmaddubsw (unsigned q times y, pairs; no saturation since q < 64)
 * then vpdpwssd (VNNI) or vpmaddwd + add with the sub-block scale in every
 * int16, which accumulates sc * (4-element sum) into lane k exactly as the
 * canonical order defines it.  Q6_K keeps q unsigned and subtracts
 * 32 * sum(sc * bsums) per lane.  The float steps per super-block are those
 * of kernels.h: one 8-lane fma with d_x * d_w, and the mins (Q4_K: a 4-lane
 * fma; Q5_K: a scalar fmaf).
 */

/* acc + sc16 * (pairwise sums of u*s): u unsigned < 64, s signed bytes, sc16 int16 per pair. */
X86_INLINE __m256i
dot_us_sc_acc(__m256i acc, __m256i u, __m256i s, __m256i sc16)
{
#if LM_X86_VNNI
	return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, s), sc16);
#else
	return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16));
#endif
}

/* Unpack the 6-bit scales and mins of a Q4_K/Q5_K super-block: scp[i] = sc[i] in both int16 halves; mins as 8 int16. */
X86_INLINE __m128i
k4_scales(const uint8_t *q, uint32_t scp[8])
{
	uint32_t	w0,
				w1,
				w2,
				sc_lo,
				sc_hi,
				mn_lo,
				mn_hi;
	__m128i		sc16;

	memcpy(&w0, q, 4);
	memcpy(&w1, q + 4, 4);
	memcpy(&w2, q + 8, 4);
	sc_lo = w0 & 0x3f3f3f3fu;
	mn_lo = w1 & 0x3f3f3f3fu;
	sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
	mn_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
	sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) ((uint64_t) sc_lo | ((uint64_t) sc_hi << 32))));
	_mm_storeu_si128((__m128i *) scp, _mm_unpacklo_epi16(sc16, sc16));
	_mm_storeu_si128((__m128i *) (scp + 4), _mm_unpackhi_epi16(sc16, sc16));
	return _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) ((uint64_t) mn_lo | ((uint64_t) mn_hi << 32))));
}

/* Bits k of every byte of hb moved to bit 4 (Q5_K fifth bits of element group k). */
X86_INLINE __m256i
k5_bit(__m256i hb, const int k)
{
	__m256i		v = _mm256_and_si256(hb, _mm256_set1_epi8((char) (1 << k)));

	if (k < 4)
		return _mm256_slli_epi16(v, 4 - k);
	if (k > 4)
		return _mm256_srli_epi16(v, k - 4);
	return v;
}

/* Horizontal sum of 4 int32. */
X86_INLINE int
hsum4_i32(__m128i v)
{
	v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
	v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x55));
	return _mm_cvtsi128_si32(v);
}

/* R Q4_K (five=0) or Q5_K (five=1) weight rows x B Q8_K rows over nb super-blocks; out[r*B+b]. */
X86_INLINE void
tilek45(int five, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, int64_t nb,
		float *out, const int R, const int B)
{
	const size_t wbs = five ? sizeof(lm_block_q5_K) : sizeof(lm_block_q4_K);
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m256		acc[4][4];
	__m128		accm[4][4];		/* Q4_K mins, 4 lanes */
	float		summs[4][4];	/* Q5_K mins */

	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
		{
			acc[r][b] = _mm256_setzero_ps();
			accm[r][b] = _mm_setzero_ps();
			summs[r][b] = 0.0f;
		}
	x86_pf		pf = x86_prefetch_init(w, (size_t) R * ws, nb);	/* weights of a later tile */

	for (int64_t blk = 0; blk < nb; blk++)
	{
		const lm_block_q8_K *X[4];
		uint32_t	scp[4][8] __attribute__((aligned(32)));
		float		dsc[4][4] __attribute__((aligned(16))),
					dmsc[4][4] __attribute__((aligned(16)));
		__m128i		mn16[4],
					q8s[4];
		__m256i		sumi[4][4];
		float		xd[4] = {0, 0, 0, 0};
		__m128		xd4;

		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
		{
			__m256i		s8;

			X[b] = (const lm_block_q8_K *) (x + (size_t) b * xs) + blk;
			xd[b] = X[b]->d;
			/* q8s[i] = bsums[2i] + bsums[2i+1] as 8 int16 */
			s8 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) X[b]->bsums), _mm256_set1_epi16(1));
			q8s[b] = _mm_packs_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
		}
		xd4 = _mm_loadu_ps(xd);
		x86_prefetch_slice(&pf, blk);
		_Pragma("GCC unroll 4")
		for (int r = 0; r < R; r++)
		{
			const uint8_t *wb = w + (size_t) r * ws + (size_t) blk * wbs;
			uint16_t	dh,
						dmh;

			memcpy(&dh, wb, 2);
			memcpy(&dmh, wb + 2, 2);
			mn16[r] = k4_scales(wb + 4, scp[r]);
			_mm_store_ps(dsc[r], _mm_mul_ps(_mm_set1_ps(h2f(dh)), xd4));
			_mm_store_ps(dmsc[r], _mm_mul_ps(_mm_set1_ps(h2f(dmh)), _mm_sub_ps(_mm_setzero_ps(), xd4)));
			_Pragma("GCC unroll 4")
			for (int b = 0; b < B; b++)
				sumi[r][b] = _mm256_setzero_si256();
		}
		X86_IN_MEMORY(&scp);
		X86_IN_MEMORY(&dsc);
		X86_IN_MEMORY(&dmsc);
		_Pragma("GCC unroll 4")
		for (int c = 0; c < 4; c++)
		{
			_Pragma("GCC unroll 4")
			for (int r = 0; r < R; r++)
			{
				const uint8_t *wb = w + (size_t) r * ws + (size_t) blk * wbs;
				const uint8_t *qs = five ? ((const lm_block_q5_K *) wb)->qs : ((const lm_block_q4_K *) wb)->qs;
				__m256i		bits = _mm256_loadu_si256((const __m256i *) (qs + 32 * c));
				__m256i		lo = _mm256_and_si256(bits, m4);
				__m256i		hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);

				if (five)
				{
					__m256i		hb = _mm256_loadu_si256((const __m256i *) ((const lm_block_q5_K *) wb)->qh);

					lo = _mm256_or_si256(lo, k5_bit(hb, 2 * c));
					hi = _mm256_or_si256(hi, k5_bit(hb, 2 * c + 1));
				}
				_Pragma("GCC unroll 4")
				for (int b = 0; b < B; b++)
				{
					const int8_t *y = X[b]->qs + 64 * c;

					sumi[r][b] = dot_us_sc_acc(sumi[r][b], lo, _mm256_loadu_si256((const __m256i *) y),
											   _mm256_set1_epi32((int) scp[r][2 * c]));
					sumi[r][b] = dot_us_sc_acc(sumi[r][b], hi, _mm256_loadu_si256((const __m256i *) (y + 32)),
											   _mm256_set1_epi32((int) scp[r][2 * c + 1]));
				}
			}
		}
		_Pragma("GCC unroll 4")
		for (int r = 0; r < R; r++)
			_Pragma("GCC unroll 4")
			for (int b = 0; b < B; b++)
			{
				__m128i		m = _mm_madd_epi16(mn16[r], q8s[b]);

				if (five)
					summs[r][b] = fmaf(dmsc[r][b], (float) hsum4_i32(m), summs[r][b]);
				else
					accm[r][b] = _mm_fmadd_ps(_mm_set1_ps(dmsc[r][b]), _mm_cvtepi32_ps(m), accm[r][b]);
				acc[r][b] = _mm256_fmadd_ps(_mm256_set1_ps(dsc[r][b]), _mm256_cvtepi32_ps(sumi[r][b]), acc[r][b]);
			}
	}
	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
		{
			if (five)
				out[r * B + b] = x86_hsum8(acc[r][b]) + summs[r][b];
			else
			{
				float		m[4];

				_mm_storeu_ps(m, accm[r][b]);
				out[r * B + b] = x86_hsum8(acc[r][b]) + ((m[0] + m[2]) + (m[1] + m[3]));
			}
		}
}

/* R Q6_K weight rows x B Q8_K rows over nb super-blocks; out[r*B+b]. */
X86_INLINE void
tileq6k(const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, int64_t nb,
		float *out, const int R, const int B)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	const __m256i m3 = _mm256_set1_epi8(3);
	__m256		acc[4][4];

	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
			acc[r][b] = _mm256_setzero_ps();
	x86_pf		pf = x86_prefetch_init(w, (size_t) R * ws, nb);	/* weights of a later tile */

	for (int64_t blk = 0; blk < nb; blk++)
	{
		const lm_block_q8_K *X[4];
		float		dsc[4][4] __attribute__((aligned(16)));
		__m256i		sumi[4][4];
		float		xd[4] = {0, 0, 0, 0};
		__m128		xd4;

		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
		{
			X[b] = (const lm_block_q8_K *) (x + (size_t) b * xs) + blk;
			xd[b] = X[b]->d;
		}
		xd4 = _mm_loadu_ps(xd);
		x86_prefetch_slice(&pf, blk);
		_Pragma("GCC unroll 4")
		for (int r = 0; r < R; r++)
		{
			const lm_block_q6_K *Bw = (const lm_block_q6_K *) (w + (size_t) r * ws) + blk;
			__m256i		sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) Bw->scales));

			_mm_store_ps(dsc[r], _mm_mul_ps(_mm_set1_ps(h2f(Bw->d)), xd4));
			/* the -32 offset: lane k loses 32 * (bsums[2k]*sc[2k] + bsums[2k+1]*sc[2k+1]) */
			_Pragma("GCC unroll 4")
			for (int b = 0; b < B; b++)
				sumi[r][b] = _mm256_sub_epi32(_mm256_setzero_si256(),
											  _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) X[b]->bsums), sc16), 5));
		}
		X86_IN_MEMORY(&dsc);
		_Pragma("GCC unroll 2")
		for (int h = 0; h < 2; h++)
		{
			_Pragma("GCC unroll 4")
			for (int r = 0; r < R; r++)
			{
				const lm_block_q6_K *Bw = (const lm_block_q6_K *) (w + (size_t) r * ws) + blk;
				__m256i		l1 = _mm256_loadu_si256((const __m256i *) (Bw->ql + 64 * h));
				__m256i		l2 = _mm256_loadu_si256((const __m256i *) (Bw->ql + 64 * h + 32));
				__m256i		qh = _mm256_loadu_si256((const __m256i *) (Bw->qh + 32 * h));
				/* per 32-element group t: scale sc[8h+2t] for elements 0..15, sc[8h+2t+1] for 16..31 */
				__m256i		scw = _mm256_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *) (Bw->scales + 8 * h)));
				__m256i		q[4],
							s[4];

				q[0] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
				q[1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
									   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
				q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
									   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
				q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
									   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
				/* int16 j of s[t] = scale of element pair j: word 2t for j < 8, word 2t+1 above */
				s[0] = _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi16(scw, scw), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
				s[1] = _mm256_permutevar8x32_epi32(_mm256_unpacklo_epi16(scw, scw), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
				s[2] = _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi16(scw, scw), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
				s[3] = _mm256_permutevar8x32_epi32(_mm256_unpackhi_epi16(scw, scw), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
				_Pragma("GCC unroll 4")
				for (int b = 0; b < B; b++)
				{
					const int8_t *y = X[b]->qs + 128 * h;

					_Pragma("GCC unroll 4")
					for (int t = 0; t < 4; t++)
						sumi[r][b] = dot_us_sc_acc(sumi[r][b], q[t], _mm256_loadu_si256((const __m256i *) (y + 32 * t)), s[t]);
				}
			}
		}
		_Pragma("GCC unroll 4")
		for (int r = 0; r < R; r++)
			_Pragma("GCC unroll 4")
			for (int b = 0; b < B; b++)
				acc[r][b] = _mm256_fmadd_ps(_mm256_set1_ps(dsc[r][b]), _mm256_cvtepi32_ps(sumi[r][b]), acc[r][b]);
	}
	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
			out[r * B + b] = x86_hsum8(acc[r][b]);
}

/* K-quant matrix product. */
X86_INLINE void
rows_k(lm_type t, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
	   const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
#define TILEK(R_, B_) \
	do { \
		if (t == LM_TYPE_Q6_K) \
			tileq6k(w, ws, x, xs, n_cols / 256, out, R_, B_); \
		else \
			tilek45(t == LM_TYPE_Q5_K, w, ws, x, xs, n_cols / 256, out, R_, B_); \
	} while (0)
	/* one activation row: more rows in flight (Q6_K's decode needs the registers, so not for it) */
	if (n_batch == 1 && t != LM_TYPE_Q6_K)
		X86_ROWS_LOOP(QK_R1, 1, TILEK);
	else
		X86_ROWS_LOOP(QK_R, QK_B, TILEK);
#undef TILEK
}

#endif							/* LM_KERNELS_X86_K_H */
