/*
 * gemm_f32.c — the outer-product F32 matrix product (gemm_f32.h): panel
 * packing, the scalar reference, and the dispatch to the AVX2 / AVX-512
 * panel kernels.
 */
#include "gemm_f32.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

/* Pack rows [r, r + nr) of W k-major, element by element. */
static void
pack_scalar(const float *W, int64_t w_stride, int64_t k, int64_t r, int nr, float *P)
{
	for (int j = 0; j < nr; j++)
	{
		const float *w = W + (size_t) (r + j) * w_stride;

		for (int64_t i = 0; i < k; i++)
			P[(size_t) i * GEMM_F32_PANEL + j] = w[i];
	}
}

/* Pack rows [r, r + nr) of W (row stride w_stride) k-major: P[i * 32 + j] = W[(r + j) * w_stride + i], zero beyond nr. */
void
lm_gemm_f32_pack(const float *W, int64_t w_stride, int64_t k, int64_t r, int nr, float *P)
{
	if (nr < GEMM_F32_PANEL)
		memset(P, 0, sizeof(float) * GEMM_F32_SCRATCH(k));
	if (nr == GEMM_F32_PANEL && lm_kernels_isa() >= LM_ISA_AVX512 &&
		w_stride * (GEMM_F32_PANEL - 1) + k < INT32_MAX)
		lm_gemm_f32_pack_avx512(W + (size_t) r * w_stride, w_stride, k, P);
	else
		pack_scalar(W, w_stride, k, r, nr, P);
}

/* The reference: every output by fmaf over i in order, from zero, then + bias. */
static void
panel_scalar(const float *P, int64_t k, int nr, const float *X, int64_t x_stride, int n,
			 float *Y, int64_t y_stride, const float *bias)
{
	for (int t = 0; t < n; t++)
	{
		const float *x = X + (size_t) t * x_stride;

		for (int j = 0; j < nr; j++)
		{
			float		a = 0.0f;

			for (int64_t i = 0; i < k; i++)
				a = fmaf(P[(size_t) i * GEMM_F32_PANEL + j], x[i], a);
			Y[(size_t) t * y_stride + j] = bias ? a + bias[j] : a;
		}
	}
}

/* One packed panel of nr rows against n activation rows, on the selected kernel path. */
void
lm_gemm_f32_panel(const float *P, int64_t k, int nr, const float *X, int64_t x_stride, int n,
				  float *Y, int64_t y_stride, const float *bias)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa >= LM_ISA_AVX512)
		lm_gemm_f32_panel_avx512(P, k, nr, X, x_stride, n, Y, y_stride, bias);
	else if (isa >= LM_ISA_AVX2)
		lm_gemm_f32_panel_avx2(P, k, nr, X, x_stride, n, Y, y_stride, bias);
	else
		panel_scalar(P, k, nr, X, x_stride, n, Y, y_stride, bias);
}

/* Y = W X^T for rows [r0, r1), panel by panel. */
void
lm_gemm_f32_rows(const float *W, int64_t k, int64_t r0, int64_t r1, const float *X, int64_t x_stride,
				 int n, float *Y, int64_t y_stride, const float *bias, float *scratch)
{
	for (int64_t r = r0; r < r1; r += GEMM_F32_PANEL)
	{
		int			nr = (int) (r1 - r < GEMM_F32_PANEL ? r1 - r : GEMM_F32_PANEL);

		lm_gemm_f32_pack(W, k, k, r, nr, scratch);
		lm_gemm_f32_panel(scratch, k, nr, X, x_stride, n, Y + r, y_stride, bias ? bias + r : NULL);
	}
}
