/*
 * gemm_f32_avx2.c — the AVX2 panel kernel of gemm_f32.h: 6 activation
 * rows x 16 weight rows of accumulators (12 registers) per pass, two
 * passes per 32-row panel; per step of k, two weight vectors of 8 and 6
 * broadcast activations, one fma each (the reference's order); the bias,
 * if any, is added to the finished sum.
 */
#include <immintrin.h>

#include "gemm_f32.h"

/* Activation rows per tile. */
#define TB 6

/* T activation rows (T <= TB) against 16 rows (half h of the panel), nr16 of them real. */
static inline __attribute__((always_inline)) void
tile(const float *P, int64_t k, int nr16, const float *X, int64_t xs, float *Y, int64_t ys, const float *bias,
	 const int T)
{
	__m256		a0[TB],
				a1[TB];
	float		buf[16];

#pragma GCC unroll 16
	for (int t = 0; t < T; t++)
		a0[t] = a1[t] = _mm256_setzero_ps();
	for (int64_t i = 0; i < k; i++)
	{
		__m256		w0 = _mm256_loadu_ps(P + (size_t) i * GEMM_F32_PANEL),
					w1 = _mm256_loadu_ps(P + (size_t) i * GEMM_F32_PANEL + 8);

#pragma GCC unroll 16
		for (int t = 0; t < T; t++)
		{
			__m256		x = _mm256_broadcast_ss(X + (size_t) t * xs + i);

			a0[t] = _mm256_fmadd_ps(w0, x, a0[t]);
			a1[t] = _mm256_fmadd_ps(w1, x, a1[t]);
		}
	}
	if (bias)
	{
		float		bb[16] = {0};
		__m256		b0,
					b1;

		for (int j = 0; j < nr16; j++)
			bb[j] = bias[j];
		b0 = _mm256_loadu_ps(bb);
		b1 = _mm256_loadu_ps(bb + 8);
#pragma GCC unroll 16
		for (int t = 0; t < T; t++)
		{
			a0[t] = _mm256_add_ps(a0[t], b0);
			a1[t] = _mm256_add_ps(a1[t], b1);
		}
	}
#pragma GCC unroll 16
	for (int t = 0; t < T; t++)
	{
		if (nr16 >= 16)
		{
			_mm256_storeu_ps(Y + (size_t) t * ys, a0[t]);
			_mm256_storeu_ps(Y + (size_t) t * ys + 8, a1[t]);
		}
		else
		{
			_mm256_storeu_ps(buf, a0[t]);
			_mm256_storeu_ps(buf + 8, a1[t]);
			for (int j = 0; j < nr16; j++)
				Y[(size_t) t * ys + j] = buf[j];
		}
	}
}

/* One packed panel against n activation rows. */
void
lm_gemm_f32_panel_avx2(const float *P, int64_t k, int nr, const float *X, int64_t x_stride, int n,
					   float *Y, int64_t y_stride, const float *bias)
{
	for (int h = 0; h < 2 && h * 16 < nr; h++)
	{
		const float *Ph = P + 16 * h;
		float	   *Yh = Y + 16 * h;
		const float *bh = bias ? bias + 16 * h : NULL;
		int			nr16 = nr - 16 * h < 16 ? nr - 16 * h : 16;
		int			t = 0;

		for (; t + TB <= n; t += TB)
			tile(Ph, k, nr16, X + (size_t) t * x_stride, x_stride, Yh + (size_t) t * y_stride, y_stride, bh, TB);
		switch (n - t)
		{
#define REST(c) case c: tile(Ph, k, nr16, X + (size_t) t * x_stride, x_stride, Yh + (size_t) t * y_stride, y_stride, bh, c); break;
				REST(1) REST(2) REST(3) REST(4) REST(5)
#undef REST
			default:
				break;
		}
	}
}
