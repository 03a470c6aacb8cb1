/*
 * kernels_x86.h — the x86 SIMD kernel bodies, included by kernels_avx2.c
 * (LM_X86_VNNI 0) and kernels_avx512.c (LM_X86_VNNI 1, 256-bit VNNI for the
 * integer dots, 512-bit registers for F32/F16).  Not a public header.
 *
 * Each kernel follows the canonical order documented in kernels.h and
 * implemented in scalar form in kernels.c; only the integer parts (which are
 * exact) differ between the two instantiations.  A weight row is decoded
 * once per block and dotted with up to 4 activation rows (one accumulator
 * set per activation row), so every (row, batch-row) result goes through the
 * same float operations whatever the batch size.
 */
#ifndef LM_KERNELS_X86_H
#define LM_KERNELS_X86_H

#include "kernels_impl.h"
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define X86_INLINE static inline __attribute__((always_inline))

/* fp16 bits to float with F16C (exact). */
X86_INLINE float
h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* Sum 8 lanes as ggml's hsum_float_8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
X86_INLINE float
x86_hsum8(__m256 x)
{
	__m128		r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));

	r = _mm_add_ps(r, _mm_movehl_ps(r, r));
	r = _mm_add_ss(r, _mm_movehdup_ps(r));
	return _mm_cvtss_f32(r);
}

/* int32 lanes: lane k = sum of u[i]*s[i] over bytes 4k..4k+3 (u unsigned, s signed). */
X86_INLINE __m256i
dot_us(__m256i u, __m256i s)
{
#if LM_X86_VNNI
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* As dot_us for two signed operands (|a| times b with a's sign). */
X86_INLINE __m256i
dot_ss(__m256i a, __m256i b)
{
	return dot_us(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* dot_us with every lane multiplied by the per-lane int32 scale in sc (|u|<64, |sc|<128). */
X86_INLINE __m256i
dot_us_scaled(__m256i u, __m256i s, __m256i sc32)
{
#if LM_X86_VNNI
	return _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s), sc32);
#else
	/* int16 pair lanes 2k, 2k+1 belong to int32 lane k: give them lane k's scale */
	__m256i		sc16 = _mm256_or_si256(_mm256_and_si256(sc32, _mm256_set1_epi32(0xffff)),
									   _mm256_slli_epi32(sc32, 16));

	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16);
#endif
}

/* 32 nibbles of 16 bytes as bytes 0..15: low nibbles first, then high. */
X86_INLINE __m256i
nibbles32(const uint8_t *p)
{
	__m128i		t = _mm_loadu_si128((const __m128i *) p);
	__m256i		b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);

	return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Byte i = 0x10 if bit i of the 32-bit little-endian word at p is set, else 0. */
X86_INLINE __m256i
bits32_to_0x10(const uint8_t *p)
{
	uint32_t	w;
	__m256i		v,
				sel;

	memcpy(&w, p, 4);
	v = _mm256_set1_epi32((int) w);
	/* byte i takes source byte i/8 */
	v = _mm256_shuffle_epi8(v, _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
												0x0101010101010101LL, 0x0000000000000000LL));
	sel = _mm256_set1_epi64x(0x8040201008040201LL);
	v = _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ---------------- F32 / F16 / BF16 ---------------- */

/* Load 8 fp16 as floats. */
X86_INLINE __m256
ld_f16(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
}

/* Load 8 bf16 as floats. */
X86_INLINE __m256
ld_bf16(const uint16_t *p)
{
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p)), 16));
}

/* Fold emulated 4x16 accumulators (a[2j] lanes 0..7, a[2j+1] lanes 8..15) and reduce as _mm512_reduce_add_ps. */
X86_INLINE float
fold4x16(__m256 a[8])
{
	__m256		lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
	__m256		hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));

	return x86_hsum8(_mm256_add_ps(hi, lo));
}

/* Canonical F32 dot. */
static float
x86_dot_f32(const float *x, const float *y, int64_t n)
{
	int64_t		np = n & ~(int64_t) 63;
	float		s;

#if LM_X86_VNNI
	__m512		a0 = _mm512_setzero_ps(),
				a1 = _mm512_setzero_ps(),
				a2 = _mm512_setzero_ps(),
				a3 = _mm512_setzero_ps();

	for (int64_t i = 0; i < np; i += 64)
	{
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
	}
	a0 = _mm512_add_ps(a0, a2);
	a1 = _mm512_add_ps(a1, a3);
	s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#else
	__m256		a[8];

	for (int j = 0; j < 8; j++)
		a[j] = _mm256_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 8; j++)
			a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), _mm256_loadu_ps(y + i + 8 * j), a[j]);
	s = fold4x16(a);
#endif
	for (int64_t i = np; i < n; i++)
		s = fmaf(x[i], y[i], s);
	return s;
}

/* Canonical F16 dot (both fp16). */
static float
x86_dot_f16(const uint16_t *x, const uint16_t *y, int64_t n)
{
	int64_t		np = n & ~(int64_t) 63;
	double		s;

#if LM_X86_VNNI
	__m512		a[4];

	for (int j = 0; j < 4; j++)
		a[j] = _mm512_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 4; j++)
			a[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (x + i + 16 * j))),
								   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (y + i + 16 * j))), a[j]);
	a[0] = _mm512_add_ps(a[0], a[2]);
	a[1] = _mm512_add_ps(a[1], a[3]);
	s = (double) _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]));
#else
	__m256		a[8];

	for (int j = 0; j < 8; j++)
		a[j] = _mm256_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 8; j++)
			a[j] = _mm256_fmadd_ps(ld_f16(x + i + 8 * j), ld_f16(y + i + 8 * j), a[j]);
	s = (double) fold4x16(a);
#endif
	for (int64_t i = np; i < n; i++)
		s += (double) (h2f(x[i]) * h2f(y[i]));
	return (float) s;
}

/* Canonical BF16 dot (both bf16): 2x16 lanes over steps of 32. */
static float
x86_dot_bf16(const uint16_t *x, const uint16_t *y, int64_t n)
{
	int64_t		np = n & ~(int64_t) 31;
	__m256		a[4];
	double		s;

	for (int j = 0; j < 4; j++)
		a[j] = _mm256_setzero_ps();
	for (int64_t i = 0; i < np; i += 32)
		for (int j = 0; j < 4; j++)
			a[j] = _mm256_fmadd_ps(ld_bf16(x + i + 8 * j), ld_bf16(y + i + 8 * j), a[j]);
	s = (double) x86_hsum8(_mm256_add_ps(a[1], a[0]));
	s += (double) x86_hsum8(_mm256_add_ps(a[3], a[2]));
	for (int64_t i = np; i < n; i++)
	{
		float		xf,
					yf;
		uint32_t	xb = (uint32_t) x[i] << 16,
					yb = (uint32_t) y[i] << 16;

		memcpy(&xf, &xb, 4);
		memcpy(&yf, &yb, 4);
		s += (double) (xf * yf);
	}
	return (float) s;
}

/* Float-type matrix product: rows outer, batch inner. */
X86_INLINE void
rows_float(int kind, const void *W, size_t w_row_bytes, int64_t n_cols, int64_t r0, int64_t r1,
		   const void *Xq, size_t xq_row_bytes, int n_batch, float *Y, int64_t y_stride)
{
	for (int64_t r = r0; r < r1; r++)
	{
		const void *w = (const char *) W + (size_t) r * w_row_bytes;

		for (int b = 0; b < n_batch; b++)
		{
			const void *x = (const char *) Xq + (size_t) b * xq_row_bytes;
			float		v;

			if (kind == 0)
				v = x86_dot_f32(w, x, n_cols);
			else if (kind == 1)
				v = x86_dot_f16(w, x, n_cols);
			else
				v = x86_dot_bf16(w, x, n_cols);
			Y[(int64_t) b * y_stride + r] = v;
		}
	}
}

/* F32 weights. */
static void
rows_f32(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys)
{
	rows_float(0, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
}

/* F16 weights. */
static void
rows_f16(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys)
{
	rows_float(1, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
}

/* BF16 weights. */
static void
rows_bf16(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys)
{
	rows_float(2, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
}

/* ---------------- block-32 types (x Q8_0 / Q8_1) ---------------- */

/* One weight row of a 32-block type against NX activation rows. */
X86_INLINE void
dot32_n(lm_type t, const uint8_t *w, const uint8_t *x, size_t xs, int64_t nb, float *out, const int NX)
{
	__m256		acc[4];
	float		summs[4] = {0, 0, 0, 0};
	const int	is1 = (t == LM_TYPE_Q4_1 || t == LM_TYPE_Q5_1);
	const size_t xbs = is1 ? sizeof(lm_block_q8_1) : sizeof(lm_block_q8_0);

	for (int j = 0; j < NX; j++)
		acc[j] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++)
	{
		__m256i		q;
		float		dw,
					mw = 0.0f;
		int			sgn = 1;

		switch (t)
		{
			case LM_TYPE_Q4_0:
				{
					const lm_block_q4_0 *B = (const lm_block_q4_0 *) w + b;

					dw = h2f(B->d);
					q = _mm256_sub_epi8(nibbles32(B->qs), _mm256_set1_epi8(8));
					break;
				}
			case LM_TYPE_Q5_0:
				{
					const lm_block_q5_0 *B = (const lm_block_q5_0 *) w + b;

					dw = h2f(B->d);
					q = _mm256_or_si256(nibbles32(B->qs), bits32_to_0x10(B->qh));
					q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
					break;
				}
			case LM_TYPE_Q8_0:
				{
					const lm_block_q8_0 *B = (const lm_block_q8_0 *) w + b;

					dw = h2f(B->d);
					q = _mm256_loadu_si256((const __m256i *) B->qs);
					break;
				}
			case LM_TYPE_Q4_1:
				{
					const lm_block_q4_1 *B = (const lm_block_q4_1 *) w + b;

					dw = h2f(B->d);
					mw = h2f(B->m);
					q = nibbles32(B->qs);
					sgn = 0;
					break;
				}
			default:			/* LM_TYPE_Q5_1 */
				{
					const lm_block_q5_1 *B = (const lm_block_q5_1 *) w + b;

					dw = h2f(B->d);
					mw = h2f(B->m);
					q = _mm256_or_si256(nibbles32(B->qs), bits32_to_0x10(B->qh));
					sgn = 0;
					break;
				}
		}
		for (int j = 0; j < NX; j++)
		{
			const uint8_t *xb = x + (size_t) j * xs + (size_t) b * xbs;
			float		dx;
			__m256i		y,
						lanes;

			if (is1)
			{
				const lm_block_q8_1 *X = (const lm_block_q8_1 *) xb;

				dx = h2f(X->d);
				summs[j] = fmaf(mw, h2f(X->s), summs[j]);
				y = _mm256_loadu_si256((const __m256i *) X->qs);
			}
			else
			{
				const lm_block_q8_0 *X = (const lm_block_q8_0 *) xb;

				dx = h2f(X->d);
				y = _mm256_loadu_si256((const __m256i *) X->qs);
			}
			lanes = sgn ? dot_ss(q, y) : dot_us(q, y);
			acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(lanes), acc[j]);
		}
	}
	for (int j = 0; j < NX; j++)
		out[j] = is1 ? x86_hsum8(acc[j]) + summs[j] : x86_hsum8(acc[j]);
}

/* ---------------- K-quants (x Q8_K) ---------------- */

/* Unpack the 8 scales and 8 mins of a Q4_K/Q5_K super-block. */
X86_INLINE void
k4_unpack(const uint8_t *q, int sc[8], int mn[8])
{
	for (int j = 0; j < 4; j++)
	{
		sc[j] = q[j] & 63;
		mn[j] = q[j + 4] & 63;
		sc[j + 4] = (q[j + 8] & 0xF) | ((q[j] >> 6) << 4);
		mn[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
	}
}

/* One Q4_K/Q5_K weight row against NX Q8_K rows. */
X86_INLINE void
dotk45_n(int five, const uint8_t *w, const uint8_t *x, size_t xs, int64_t nb, float *out, const int NX)
{
	__m256		acc[4];
	float		accm[4][4] = {{0}};
	float		summs[4] = {0, 0, 0, 0};
	const __m256i m4 = _mm256_set1_epi8(0x0F);

	for (int j = 0; j < NX; j++)
		acc[j] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++)
	{
		const uint8_t *qs;
		const uint8_t *scales;
		uint16_t	wd,
					wdmin;
		__m256i		hb = _mm256_setzero_si256();
		int			sc[8],
					mn[8];
		__m256i		sumi[4];

		if (five)
		{
			const lm_block_q5_K *B = (const lm_block_q5_K *) w + b;

			qs = B->qs;
			scales = B->scales;
			wd = B->d;
			wdmin = B->dmin;
			hb = _mm256_loadu_si256((const __m256i *) B->qh);
		}
		else
		{
			const lm_block_q4_K *B = (const lm_block_q4_K *) w + b;

			qs = B->qs;
			scales = B->scales;
			wd = B->d;
			wdmin = B->dmin;
		}
		k4_unpack(scales, sc, mn);
		for (int j = 0; j < NX; j++)
			sumi[j] = _mm256_setzero_si256();
		for (int c = 0; c < 4; c++)
		{
			__m256i		bits = _mm256_loadu_si256((const __m256i *) (qs + 32 * c));
			__m256i		lo = _mm256_and_si256(bits, m4);
			__m256i		hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			__m256i		sl = _mm256_set1_epi32(sc[2 * c]);
			__m256i		sh = _mm256_set1_epi32(sc[2 * c + 1]);

			if (five)
			{
				const __m256i one = _mm256_set1_epi8(1);

				lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
				hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
			}
			for (int j = 0; j < NX; j++)
			{
				const lm_block_q8_K *X = (const lm_block_q8_K *) (x + (size_t) j * xs) + b;
				__m256i		yl = _mm256_loadu_si256((const __m256i *) (X->qs + 64 * c));
				__m256i		yh = _mm256_loadu_si256((const __m256i *) (X->qs + 64 * c + 32));

				sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(dot_us_scaled(lo, yl, sl),
																	 dot_us_scaled(hi, yh, sh)));
			}
		}
		for (int j = 0; j < NX; j++)
		{
			const lm_block_q8_K *X = (const lm_block_q8_K *) (x + (size_t) j * xs) + b;
			float		d = X->d * h2f(wd);
			float		dmin = -X->d * h2f(wdmin);
			const int16_t *bs = X->bsums;

			if (five)
			{
				int			msum = 0;

				for (int i = 0; i < 8; i++)
					msum += mn[i] * (bs[2 * i] + bs[2 * i + 1]);
				summs[j] = fmaf(dmin, (float) msum, summs[j]);
			}
			else
			{
				for (int i = 0; i < 4; i++)
					accm[j][i] = fmaf(dmin, (float) (mn[2 * i] * (bs[4 * i] + bs[4 * i + 1]) +
													 mn[2 * i + 1] * (bs[4 * i + 2] + bs[4 * i + 3])), accm[j][i]);
			}
			acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
		}
	}
	for (int j = 0; j < NX; j++)
	{
		if (five)
			out[j] = x86_hsum8(acc[j]) + summs[j];
		else
			out[j] = x86_hsum8(acc[j]) + ((accm[j][0] + accm[j][2]) + (accm[j][1] + accm[j][3]));
	}
}

/* One Q6_K weight row against NX Q8_K rows. */
X86_INLINE void
dotq6k_n(const uint8_t *w, const uint8_t *x, size_t xs, int64_t nb, float *out, const int NX)
{
	__m256		acc[4];
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	const __m256i m3 = _mm256_set1_epi8(3);

	for (int j = 0; j < NX; j++)
		acc[j] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++)
	{
		const lm_block_q6_K *B = (const lm_block_q6_K *) w + b;
		const int8_t *sc = B->scales;
		__m256i		sumi[4];
		__m256i		sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) sc));

		for (int j = 0; j < NX; j++)
			sumi[j] = _mm256_setzero_si256();
		for (int h = 0; h < 2; h++)
		{
			__m256i		l1 = _mm256_loadu_si256((const __m256i *) (B->ql + 64 * h));
			__m256i		l2 = _mm256_loadu_si256((const __m256i *) (B->ql + 64 * h + 32));
			__m256i		qh = _mm256_loadu_si256((const __m256i *) (B->qh + 32 * h));
			__m256i		q[4],
						s[4];

			q[0] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
			q[1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
								   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
								   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
								   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
			for (int t = 0; t < 4; t++)
			{
				int			a = sc[8 * h + 2 * t],
							c = sc[8 * h + 2 * t + 1];

				s[t] = _mm256_setr_epi32(a, a, a, a, c, c, c, c);
			}
			for (int j = 0; j < NX; j++)
			{
				const int8_t *xq = ((const lm_block_q8_K *) (x + (size_t) j * xs) + b)->qs + 128 * h;

				for (int t = 0; t < 4; t++)
					sumi[j] = _mm256_add_epi32(sumi[j],
											   dot_us_scaled(q[t], _mm256_loadu_si256((const __m256i *) (xq + 32 * t)), s[t]));
			}
		}
		for (int j = 0; j < NX; j++)
		{
			const lm_block_q8_K *X = (const lm_block_q8_K *) (x + (size_t) j * xs) + b;
			__m256i		bs = _mm256_loadu_si256((const __m256i *) X->bsums);
			__m256i		sub = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
			float		d = X->d * h2f(B->d);

			sumi[j] = _mm256_sub_epi32(sumi[j], sub);
			acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
		}
	}
	for (int j = 0; j < NX; j++)
		out[j] = x86_hsum8(acc[j]);
}

/* Dot one weight row with NX (1..4) activation rows, dispatching on type with constant NX. */
X86_INLINE void
dot_rows_nx(lm_type t, const uint8_t *w, const uint8_t *x, size_t xs, int64_t n, float *out, const int NX)
{
	switch (t)
	{
		case LM_TYPE_Q4_K:
			dotk45_n(0, w, x, xs, n / 256, out, NX);
			break;
		case LM_TYPE_Q5_K:
			dotk45_n(1, w, x, xs, n / 256, out, NX);
			break;
		case LM_TYPE_Q6_K:
			dotq6k_n(w, x, xs, n / 256, out, NX);
			break;
		default:
			dot32_n(t, w, x, xs, n / 32, out, NX);
			break;
	}
}

/* Quantized matrix product: rows outer, batch in tiles of up to 4 sharing each weight decode. */
X86_INLINE void
rows_quant(lm_type t, const void *W, size_t w_row_bytes, int64_t n_cols, int64_t r0, int64_t r1,
		   const void *Xq, size_t xq_row_bytes, int n_batch, float *Y, int64_t y_stride)
{
	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *w = (const uint8_t *) W + (size_t) r * w_row_bytes;

		for (int b0 = 0; b0 < n_batch; b0 += 4)
		{
			const uint8_t *x = (const uint8_t *) Xq + (size_t) b0 * xq_row_bytes;
			int			nx = n_batch - b0 < 4 ? n_batch - b0 : 4;
			float		out[4];

			switch (nx)
			{
				case 4:
					dot_rows_nx(t, w, x, xq_row_bytes, n_cols, out, 4);
					break;
				case 3:
					dot_rows_nx(t, w, x, xq_row_bytes, n_cols, out, 3);
					break;
				case 2:
					dot_rows_nx(t, w, x, xq_row_bytes, n_cols, out, 2);
					break;
				default:
					dot_rows_nx(t, w, x, xq_row_bytes, n_cols, out, 1);
					break;
			}
			for (int j = 0; j < nx; j++)
				Y[(int64_t) (b0 + j) * y_stride + r] = out[j];
		}
	}
}

/* Define the rows function of one quantized type. */
#define X86_ROWS_FN(name, T) \
static void \
name(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys) \
{ \
	rows_quant(T, W, wb, n, r0, r1, X, xb, nbt, Y, ys); \
}

X86_ROWS_FN(rows_q4_0, LM_TYPE_Q4_0)
X86_ROWS_FN(rows_q4_1, LM_TYPE_Q4_1)
X86_ROWS_FN(rows_q5_0, LM_TYPE_Q5_0)
X86_ROWS_FN(rows_q5_1, LM_TYPE_Q5_1)
X86_ROWS_FN(rows_q8_0, LM_TYPE_Q8_0)
X86_ROWS_FN(rows_q4_K, LM_TYPE_Q4_K)
X86_ROWS_FN(rows_q5_K, LM_TYPE_Q5_K)
X86_ROWS_FN(rows_q6_K, LM_TYPE_Q6_K)

/* Fill a kernel table with this file's kernels. */
static void
x86_fill(lm_kernel_table *t)
{
	t->rows[LM_TYPE_F32] = rows_f32;
	t->rows[LM_TYPE_F16] = rows_f16;
	t->rows[LM_TYPE_BF16] = rows_bf16;
	t->rows[LM_TYPE_Q4_0] = rows_q4_0;
	t->rows[LM_TYPE_Q4_1] = rows_q4_1;
	t->rows[LM_TYPE_Q5_0] = rows_q5_0;
	t->rows[LM_TYPE_Q5_1] = rows_q5_1;
	t->rows[LM_TYPE_Q8_0] = rows_q8_0;
	t->rows[LM_TYPE_Q4_K] = rows_q4_K;
	t->rows[LM_TYPE_Q5_K] = rows_q5_K;
	t->rows[LM_TYPE_Q6_K] = rows_q6_K;
	t->dot_f32 = x86_dot_f32;
}

#endif							/* LM_KERNELS_X86_H */
