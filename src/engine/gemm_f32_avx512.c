/*
 * gemm_f32_avx512.c — the AVX-512 panel kernel of gemm_f32.h: 12
 * activation rows x 32 weight rows of accumulators (24 registers); per
 * step of k, two weight vectors and 12 broadcast activations, one fma each
 * into its accumulator (the reference's order); the bias, if any, is
 * added to the finished sum.
 */
#include <immintrin.h>

#include "gemm_f32.h"

/* Activation rows per tile. */
#define TB 12

/* T activation rows (T <= TB, a constant after inlining) against one packed panel of nr rows. */
static inline __attribute__((always_inline)) void
tile(const float *P, int64_t k, int nr, const float *X, int64_t xs, float *Y, int64_t ys, const float *bias,
	 const int T)
{
	__m512		a0[TB],
				a1[TB];
	__mmask16	m0 = nr >= 16 ? 0xFFFF : (__mmask16) ((1u << nr) - 1),
				m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16) ((1u << (nr - 16)) - 1);

#pragma GCC unroll 16
	for (int t = 0; t < T; t++)
		a0[t] = a1[t] = _mm512_setzero_ps();
	for (int64_t i = 0; i < k; i++)
	{
		__m512		w0 = _mm512_loadu_ps(P + (size_t) i * GEMM_F32_PANEL),
					w1 = _mm512_loadu_ps(P + (size_t) i * GEMM_F32_PANEL + 16);

#pragma GCC unroll 16
		for (int t = 0; t < T; t++)
		{
			__m512		x = _mm512_set1_ps(X[(size_t) t * xs + i]);

			a0[t] = _mm512_fmadd_ps(w0, x, a0[t]);
			a1[t] = _mm512_fmadd_ps(w1, x, a1[t]);
		}
	}
	if (bias)
	{
		__m512		b0 = _mm512_maskz_loadu_ps(m0, bias),
					b1 = _mm512_maskz_loadu_ps(m1, bias + 16);

#pragma GCC unroll 16
		for (int t = 0; t < T; t++)
		{
			a0[t] = _mm512_add_ps(a0[t], b0);
			a1[t] = _mm512_add_ps(a1[t], b1);
		}
	}
#pragma GCC unroll 16
	for (int t = 0; t < T; t++)
	{
		_mm512_mask_storeu_ps(Y + (size_t) t * ys, m0, a0[t]);
		_mm512_mask_storeu_ps(Y + (size_t) t * ys + 16, m1, a1[t]);
	}
}

/* One packed panel against n activation rows. */
void
lm_gemm_f32_panel_avx512(const float *P, int64_t k, int nr, const float *X, int64_t x_stride, int n,
						 float *Y, int64_t y_stride, const float *bias)
{
	int			t = 0;

	for (; t + TB <= n; t += TB)
		tile(P, k, nr, X + (size_t) t * x_stride, x_stride, Y + (size_t) t * y_stride, y_stride, bias, TB);
	switch (n - t)
	{
#define REST(c) case c: tile(P, k, nr, X + (size_t) t * x_stride, x_stride, Y + (size_t) t * y_stride, y_stride, bias, c); break;
			REST(1) REST(2) REST(3) REST(4) REST(5) REST(6) REST(7) REST(8) REST(9) REST(10) REST(11)
#undef REST
		default:
			break;
	}
}

/* Pack 32 rows of W k-major: one gather of 16 rows' column i per half panel. */
void
lm_gemm_f32_pack_avx512(const float *W, int64_t w_stride, int64_t k, float *P)
{
	__m512i		idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
										 _mm512_set1_epi32((int) w_stride));
	const float *W16 = W + (size_t) 16 * w_stride;

	for (int64_t i = 0; i < k; i++)
	{
		_mm512_storeu_ps(P + (size_t) i * GEMM_F32_PANEL, _mm512_i32gather_ps(idx, W + i, 4));
		_mm512_storeu_ps(P + (size_t) i * GEMM_F32_PANEL + 16, _mm512_i32gather_ps(idx, W16 + i, 4));
	}
}
