/*
 * gemm_i16_avx2.c — the AVX2 bodies of gemm_i16.h: a tile of 4 activation
 * rows x 16 weight rows (half a panel) keeps 8 int32 accumulators over
 * one block (vpmaddwd multiplies the broadcast activation pair by the pair
 * of 8 rows and adds both products, exactly: |q| <= 4095); the block's
 * sums are added to the float sums in the output, and after the last
 * block come the two scales and the bias, as the scalar reference does.  Also a row's amax and its quantization.
 * Called only after a CPUID check.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "gemm_i16.h"

/* Activation rows per tile. */
#define TB 4

/* Lane mask of the first n (0..8) of 8 int32 lanes. */
static inline __m256i
lanes8(int n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/*
 * Pairs [b0, b1) (one block) of T activation rows (T <= TB, a constant
 * after inlining) against rows [16h, 16h + 16) of one panel of nr rows:
 * the block's exact sums added to the float sums kept in Y (stored by the
 * first block), and after the last block the scales and the bias.
 */
static inline __attribute__((always_inline)) void
tile(const int16_t *P, int64_t b0, int64_t b1, bool first, bool last, int nr, int h, const float *w_scale,
	 const int16_t *Q, int64_t qs, const float *x_scale, float *Y, int64_t ys, const float *bias, const int T)
{
	int			n0 = nr - 16 * h > 8 ? 8 : nr - 16 * h,
				n1 = nr - 16 * h - 8 > 8 ? 8 : nr - 16 * h - 8 < 0 ? 0 : nr - 16 * h - 8;
	__m256i		m0 = lanes8(n0),
				m1 = lanes8(n1),
				a0[TB],
				a1[TB];
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				c0 = _mm256_setzero_ps(),
				c1 = _mm256_setzero_ps();

#pragma GCC unroll 8
	for (int t = 0; t < T; t++)
		a0[t] = a1[t] = _mm256_setzero_si256();
	for (int64_t kk = b0; kk < b1; kk++)
	{
		const int16_t *p = P + (size_t) kk * 2 * GEMM_I16_PANEL + 32 * h;
		__m256i		w0 = _mm256_loadu_si256((const __m256i *) p),
					w1 = _mm256_loadu_si256((const __m256i *) (p + 16));

#pragma GCC unroll 8
		for (int t = 0; t < T; t++)
		{
			int32_t		pair;
			__m256i		x;

			memcpy(&pair, Q + (size_t) t * qs + 2 * kk, sizeof(pair));
			x = _mm256_set1_epi32(pair);
			a0[t] = _mm256_add_epi32(a0[t], _mm256_madd_epi16(x, w0));
			a1[t] = _mm256_add_epi32(a1[t], _mm256_madd_epi16(x, w1));
		}
	}
	if (last)
	{
		s0 = _mm256_maskload_ps(w_scale + 16 * h, m0);
		s1 = _mm256_maskload_ps(w_scale + 16 * h + 8, m1);
		if (bias)
		{
			c0 = _mm256_maskload_ps(bias + 16 * h, m0);
			c1 = _mm256_maskload_ps(bias + 16 * h + 8, m1);
		}
	}
#pragma GCC unroll 8
	for (int t = 0; t < T; t++)
	{
		float	   *y = Y + (size_t) t * ys + 16 * h;
		__m256		f0 = _mm256_cvtepi32_ps(a0[t]),
					f1 = _mm256_cvtepi32_ps(a1[t]);

		if (!first)
		{
			f0 = _mm256_add_ps(_mm256_maskload_ps(y, m0), f0);
			f1 = _mm256_add_ps(_mm256_maskload_ps(y + 8, m1), f1);
		}
		if (last)
		{
			__m256		xs = _mm256_set1_ps(x_scale[t]);

			f0 = _mm256_mul_ps(_mm256_mul_ps(f0, s0), xs);
			f1 = _mm256_mul_ps(_mm256_mul_ps(f1, s1), xs);
			if (bias)
			{
				f0 = _mm256_add_ps(f0, c0);
				f1 = _mm256_add_ps(f1, c1);
			}
		}
		_mm256_maskstore_ps(y, m0, f0);
		_mm256_maskstore_ps(y + 8, m1, f1);
	}
}

/* One panel against n activation rows, block by block and half a panel at a time, the float sums kept in Y. */
void
lm_gemm_i16_panel_avx2(const int16_t *P, int64_t k, int nr, const float *w_scale, const int16_t *Q,
					   int64_t q_stride, const float *x_scale, int n, float *Y, int64_t y_stride,
					   const float *bias)
{
	int64_t		kp2 = GEMM_I16_KPAD(k) / 2;

	for (int64_t b0 = 0; b0 < kp2; b0 += GEMM_I16_BLOCK / 2)
	{
		int64_t		b1 = b0 + GEMM_I16_BLOCK / 2 < kp2 ? b0 + GEMM_I16_BLOCK / 2 : kp2;
		bool		first = b0 == 0,
					last = b1 == kp2;

		for (int h = 0; h < 2 && 16 * h < nr; h++)
		{
			int			t = 0;

			for (; t + TB <= n; t += TB)
				tile(P, b0, b1, first, last, nr, h, w_scale, Q + (size_t) t * q_stride, q_stride, x_scale + t,
					 Y + (size_t) t * y_stride, y_stride, bias, TB);
			switch (n - t)
			{
#define REST(c) case c: tile(P, b0, b1, first, last, nr, h, w_scale, Q + (size_t) t * q_stride, q_stride, \
							 x_scale + t, Y + (size_t) t * y_stride, y_stride, bias, c); break;
					REST(1) REST(2) REST(3)
#undef REST
				default:
					break;
			}
		}
	}
}

/* max |x[i]| over i < k (exact). */
float
lm_gemm_i16_amax_avx2(const float *x, int64_t k)
{
	__m256		m = _mm256_setzero_ps(),
				abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
	float		lane[8],
				r = 0.0f;
	int64_t		i = 0;

	for (; i + 8 <= k; i += 8)
		m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs));
	if (i < k)
		m = _mm256_max_ps(m, _mm256_and_ps(_mm256_maskload_ps(x + i, lanes8((int) (k - i))), abs));
	_mm256_storeu_ps(lane, m);
	for (int l = 0; l < 8; l++)
		r = lane[l] > r ? lane[l] : r;
	return r;
}

/* q[i] = clamp(rint(x[i] * inv)) for i < k. */
void
lm_gemm_i16_quantize_row_avx2(const float *x, int64_t k, float inv, int16_t *q)
{
	__m256		vinv = _mm256_set1_ps(inv);
	__m256i		hi = _mm256_set1_epi32(GEMM_I16_QMAX),
				lo = _mm256_set1_epi32(-GEMM_I16_QMAX);
	int64_t		i = 0;

	for (; i + 8 <= k; i += 8)
	{
		__m256i		v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
		__m128i		p;

		v = _mm256_max_epi32(_mm256_min_epi32(v, hi), lo);
		p = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
		_mm_storeu_si128((__m128i *) (q + i), p);
	}
	for (; i < k; i++)
	{
		int			v = _mm_cvtss_si32(_mm_set_ss(x[i] * inv));

		q[i] = (int16_t) (v > GEMM_I16_QMAX ? GEMM_I16_QMAX : v < -GEMM_I16_QMAX ? -GEMM_I16_QMAX : v);
	}
}
