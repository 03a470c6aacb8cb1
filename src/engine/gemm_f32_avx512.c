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

/* Transpose 16 rows of 16 floats: o[c] gets column c of r[0..15] (unpacks, then 128-bit lane shuffles). */
static inline void
transpose16(const __m512 r[16], __m512 o[16])
{
	__m512		t[16],
				u[16];

	for (int i = 0; i < 8; i++)
	{
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	/* u[4g + m], 128-bit lane L: column 4L + m of rows 4g .. 4g + 3 */
	for (int g = 0; g < 4; g++)
	{
		__m512d		t0 = _mm512_castps_pd(t[4 * g]),
					t1 = _mm512_castps_pd(t[4 * g + 1]),
					t2 = _mm512_castps_pd(t[4 * g + 2]),
					t3 = _mm512_castps_pd(t[4 * g + 3]);

		u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
		u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
		u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
		u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
	}
	for (int m = 0; m < 4; m++)
	{
		__m512		v = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88),
					w = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88),
					v2 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd),
					w2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);

		o[m] = _mm512_shuffle_f32x4(v, w, 0x88);
		o[8 + m] = _mm512_shuffle_f32x4(v, w, 0xdd);
		o[4 + m] = _mm512_shuffle_f32x4(v2, w2, 0x88);
		o[12 + m] = _mm512_shuffle_f32x4(v2, w2, 0xdd);
	}
}

/* Pack 32 rows of W k-major: 16 x 16 blocks transposed in registers, the last k % 16 columns by gathers. */
void
lm_gemm_f32_pack_avx512(const float *W, int64_t w_stride, int64_t k, float *P)
{
	__m512i		idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
										 _mm512_set1_epi32((int) w_stride));
	const float *W16 = W + (size_t) 16 * w_stride;
	int64_t		i = 0;

	for (; i + 16 <= k; i += 16)
		for (int h = 0; h < 2; h++)
		{
			__m512		r[16],
						o[16];

#pragma GCC unroll 16
			for (int j = 0; j < 16; j++)
				r[j] = _mm512_loadu_ps(W + (size_t) (16 * h + j) * w_stride + i);
			transpose16(r, o);
#pragma GCC unroll 16
			for (int c = 0; c < 16; c++)
				_mm512_storeu_ps(P + (size_t) (i + c) * GEMM_F32_PANEL + 16 * h, o[c]);
		}
	for (; i < k; i++)
	{
		_mm512_storeu_ps(P + (size_t) i * GEMM_F32_PANEL, _mm512_i32gather_ps(idx, W + i, 4));
		_mm512_storeu_ps(P + (size_t) i * GEMM_F32_PANEL + 16, _mm512_i32gather_ps(idx, W16 + i, 4));
	}
}
