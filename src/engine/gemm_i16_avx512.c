/*
 * gemm_i16_avx512.c — the AVX-512 VNNI bodies of gemm_i16.h: a tile of 12
 * activation rows x 32 weight rows keeps 24 int32 accumulators (one
 * vpdpwssd each per pair of inner elements: a weight vector holds the pair
 * of all 32 rows, the activation pair is broadcast) over one block; the
 * block's sums are added to the float sums in the output, and after the
 * last block come the two scales and the bias, as the scalar reference
 * does.  Also a row's amax and its
 * quantization.  Called only after a CPUID check.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "gemm_i16.h"

/* Activation rows per tile. */
#define TB 12

/*
 * acc += the pairwise products of x and w (vpdpwssd), in place: GCC 12's
 * builtin copies the accumulator to a fresh register around every use.
 */
static inline __attribute__((always_inline)) __m512i
dpwssd(__m512i acc, __m512i x, __m512i w)
{
	__asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
	return acc;
}

/*
 * Pairs [b0, b1) (one block) of T activation rows (T <= TB, a constant
 * after inlining) against one panel of nr rows: the block's exact sums
 * added to the float sums kept in Y (stored by the first block), and after
 * the last block the scales and the bias.
 */
static inline __attribute__((always_inline)) void
tile(const int16_t *P, int64_t b0, int64_t b1, bool first, bool last, int nr, const float *w_scale,
	 const int16_t *Q, int64_t qs, const float *x_scale, float *Y, int64_t ys, const float *bias, const int T)
{
	__m512i		a0[TB],
				a1[TB];
	__mmask16	m0 = nr >= 16 ? 0xFFFF : (__mmask16) ((1u << nr) - 1),
				m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16) ((1u << (nr - 16)) - 1);
	__m512		s0 = _mm512_setzero_ps(),
				s1 = _mm512_setzero_ps(),
				c0 = _mm512_setzero_ps(),
				c1 = _mm512_setzero_ps();

#pragma GCC unroll 16
	for (int t = 0; t < T; t++)
		a0[t] = a1[t] = _mm512_setzero_si512();
	for (int64_t kk = b0; kk < b1; kk++)
	{
		__m512i		w0 = _mm512_loadu_si512(P + (size_t) kk * 2 * GEMM_I16_PANEL),
					w1 = _mm512_loadu_si512(P + (size_t) kk * 2 * GEMM_I16_PANEL + GEMM_I16_PANEL);

#pragma GCC unroll 16
		for (int t = 0; t < T; t++)
		{
			int32_t		pair;
			__m512i		x;

			memcpy(&pair, Q + (size_t) t * qs + 2 * kk, sizeof(pair));
			x = _mm512_set1_epi32(pair);
			a0[t] = dpwssd(a0[t], x, w0);
			a1[t] = dpwssd(a1[t], x, w1);
		}
	}
	if (last)
	{
		s0 = _mm512_maskz_loadu_ps(m0, w_scale);
		s1 = _mm512_maskz_loadu_ps(m1, w_scale + 16);
		if (bias)
		{
			c0 = _mm512_maskz_loadu_ps(m0, bias);
			c1 = _mm512_maskz_loadu_ps(m1, bias + 16);
		}
	}
#pragma GCC unroll 16
	for (int t = 0; t < T; t++)
	{
		float	   *y = Y + (size_t) t * ys;
		__m512		f0 = _mm512_cvtepi32_ps(a0[t]),
					f1 = _mm512_cvtepi32_ps(a1[t]);

		if (!first)
		{
			f0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, y), f0);
			f1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, y + 16), f1);
		}
		if (last)
		{
			__m512		xs = _mm512_set1_ps(x_scale[t]);

			f0 = _mm512_mul_ps(_mm512_mul_ps(f0, s0), xs);
			f1 = _mm512_mul_ps(_mm512_mul_ps(f1, s1), xs);
			if (bias)
			{
				f0 = _mm512_add_ps(f0, c0);
				f1 = _mm512_add_ps(f1, c1);
			}
		}
		_mm512_mask_storeu_ps(y, m0, f0);
		_mm512_mask_storeu_ps(y + 16, m1, f1);
	}
}

/*
 * One panel against n activation rows, block by block (the block's 8 KiB
 * of the panel stay in L1 while every activation row passes), the float
 * sums between blocks kept in Y.
 */
void
lm_gemm_i16_panel_avx512(const int16_t *P, int64_t k, int nr, const float *w_scale, const int16_t *Q,
						 int64_t q_stride, const float *x_scale, int n, float *Y, int64_t y_stride,
						 const float *bias)
{
	int64_t		kp2 = GEMM_I16_KPAD(k) / 2;

	for (int64_t b0 = 0; b0 < kp2; b0 += GEMM_I16_BLOCK / 2)
	{
		int64_t		b1 = b0 + GEMM_I16_BLOCK / 2 < kp2 ? b0 + GEMM_I16_BLOCK / 2 : kp2;
		bool		first = b0 == 0,
					last = b1 == kp2;
		int			t = 0;
		/* the next block of the panels (they lie one after another): fetched a few lines per tile */
		const char *next = (const char *) (P + (size_t) b1 * 2 * GEMM_I16_PANEL);
		int			lines = (int) ((b1 - b0) * 2 * GEMM_I16_PANEL * sizeof(int16_t) / 64),
					per = (lines + n / TB) / (n / TB + 1),
					done = 0;

		for (; t + TB <= n; t += TB)
		{
			for (int i = 0; i < per && done < lines; i++, done++)
				_mm_prefetch(next + (size_t) done * 64, _MM_HINT_T0);
			tile(P, b0, b1, first, last, nr, w_scale, Q + (size_t) t * q_stride, q_stride, x_scale + t,
				 Y + (size_t) t * y_stride, y_stride, bias, TB);
		}
		for (; done < lines; done++)
			_mm_prefetch(next + (size_t) done * 64, _MM_HINT_T0);
		switch (n - t)
		{
#define REST(c) case c: tile(P, b0, b1, first, last, nr, w_scale, Q + (size_t) t * q_stride, q_stride, \
							 x_scale + t, Y + (size_t) t * y_stride, y_stride, bias, c); break;
				REST(1) REST(2) REST(3) REST(4) REST(5) REST(6) REST(7) REST(8) REST(9) REST(10) REST(11)
#undef REST
			default:
				break;
		}
	}
}

/* max |x[i]| over i < k (exact: the same on every path for finite x). */
float
lm_gemm_i16_amax_avx512(const float *x, int64_t k)
{
	__m512		m = _mm512_setzero_ps();
	int64_t		i = 0;

	for (; i + 16 <= k; i += 16)
		m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
	if (i < k)
		m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16) ((1u << (k - i)) - 1), x + i)));
	return _mm512_reduce_max_ps(m);
}

/* q[i] = clamp(rint(x[i] * inv)) for i < k (the rounding mode's nearest-even, as rintf). */
void
lm_gemm_i16_quantize_row_avx512(const float *x, int64_t k, float inv, int16_t *q)
{
	__m512		vinv = _mm512_set1_ps(inv);
	__m512i		hi = _mm512_set1_epi32(GEMM_I16_QMAX),
				lo = _mm512_set1_epi32(-GEMM_I16_QMAX);

	for (int64_t i = 0; i < k; i += 16)
	{
		__mmask16	m = k - i >= 16 ? 0xFFFF : (__mmask16) ((1u << (k - i)) - 1);
		__m512i		v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vinv));

		v = _mm512_max_epi32(_mm512_min_epi32(v, hi), lo);
		_mm256_mask_storeu_epi16(q + i, m, _mm512_cvtepi32_epi16(v));
	}
}
