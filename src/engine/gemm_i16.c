/*
 * gemm_i16.c — the 13-bit integer matrix product (gemm_i16.h): weight
 * quantization and packing (once, at model load), the scalar reference of
 * the activation quantization and of the panel product, and the dispatch
 * to the AVX2 / AVX-512 bodies.
 */
#include "gemm_i16.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* Quantize one value with multiplier inv (rint, then clamped to the 13-bit range). */
static inline int16_t
quant1(float x, float inv)
{
	float		q = rintf(x * inv);

	if (q > GEMM_I16_QMAX)
		q = GEMM_I16_QMAX;
	if (q < -GEMM_I16_QMAX)
		q = -GEMM_I16_QMAX;
	return (int16_t) q;
}

/* The multiplier that maps amax to QMAX (0 for an all-zero row). */
static inline float
quant_inv(float amax)
{
	return amax > 0.0f ? (float) GEMM_I16_QMAX / amax : 0.0f;
}

/* Quantize and pack W row by row, each row with its own scale. */
bool
lm_gemm_i16_weight_make(const float *W, int64_t n_rows, int64_t k, lm_gemm_i16_weight *q)
{
	int64_t		np = (n_rows + GEMM_I16_PANEL - 1) / GEMM_I16_PANEL,
				kp = GEMM_I16_KPAD(k);

	q->n_rows = n_rows;
	q->k = k;
	q->panels = calloc((size_t) np * GEMM_I16_PANEL * kp, sizeof(int16_t));
	q->scale = calloc(n_rows > 0 ? n_rows : 1, sizeof(float));
	if (!q->panels || !q->scale)
	{
		lm_gemm_i16_weight_free(q);
		return false;
	}
	for (int64_t r = 0; r < n_rows; r++)
	{
		const float *w = W + (size_t) r * k;
		int16_t    *P = q->panels + (size_t) (r / GEMM_I16_PANEL) * GEMM_I16_PANEL * kp;
		int			j = (int) (r % GEMM_I16_PANEL);
		float		amax = 0.0f,
					inv;

		for (int64_t i = 0; i < k; i++)
			amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
		inv = quant_inv(amax);
		q->scale[r] = amax / (float) GEMM_I16_QMAX;
		for (int64_t i = 0; i < k; i++)
			P[((size_t) (i / 2) * GEMM_I16_PANEL + j) * 2 + (i % 2)] = quant1(w[i], inv);
	}
	return true;
}

/* Free a quantized matrix. */
void
lm_gemm_i16_weight_free(lm_gemm_i16_weight *q)
{
	free(q->panels);
	free(q->scale);
	q->panels = NULL;
	q->scale = NULL;
}

/* Quantize activation rows [t0, t1), each with its own scale. */
void
lm_gemm_i16_quantize_rows(const float *X, int64_t x_stride, int64_t k, int t0, int t1,
						  int16_t *Q, int64_t q_stride, float *scale)
{
	lm_isa		isa = lm_kernels_isa();

	for (int t = t0; t < t1; t++)
	{
		const float *x = X + (size_t) t * x_stride;
		int16_t    *q = Q + (size_t) t * q_stride;
		float		amax = 0.0f,
					inv;

		if (isa >= LM_ISA_AVX512)
			amax = lm_gemm_i16_amax_avx512(x, k);
		else if (isa >= LM_ISA_AVX2)
			amax = lm_gemm_i16_amax_avx2(x, k);
		else
			for (int64_t i = 0; i < k; i++)
				amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
		inv = quant_inv(amax);
		scale[t] = amax / (float) GEMM_I16_QMAX;
		if (isa >= LM_ISA_AVX512)
			lm_gemm_i16_quantize_row_avx512(x, k, inv, q);
		else if (isa >= LM_ISA_AVX2)
			lm_gemm_i16_quantize_row_avx2(x, k, inv, q);
		else
			for (int64_t i = 0; i < k; i++)
				q[i] = quant1(x[i], inv);
		if (k % 2)
			q[k] = 0;
	}
}

/* The reference: exact int32 block sums added in float in order, then scaled, then the bias. */
static void
panel_scalar(const int16_t *P, int64_t k, int nr, const float *w_scale, const int16_t *Q, int64_t q_stride,
			 const float *x_scale, int n, float *Y, int64_t y_stride, const float *bias)
{
	int64_t		kp = GEMM_I16_KPAD(k);

	for (int t = 0; t < n; t++)
	{
		const int16_t *x = Q + (size_t) t * q_stride;

		for (int j = 0; j < nr; j++)
		{
			float		acc = 0.0f,
						y;

			for (int64_t b0 = 0; b0 < kp; b0 += GEMM_I16_BLOCK)
			{
				int64_t		b1 = b0 + GEMM_I16_BLOCK < kp ? b0 + GEMM_I16_BLOCK : kp;
				int32_t		s = 0;

				for (int64_t i = b0; i < b1; i++)
					s += (int32_t) P[((size_t) (i / 2) * GEMM_I16_PANEL + j) * 2 + (i % 2)] * x[i];
				acc += (float) s;
			}
			y = (acc * w_scale[j]) * x_scale[t];
			Y[(size_t) t * y_stride + j] = bias ? y + bias[j] : y;
		}
	}
}

/* Weight rows [r0, r1) against n activation rows, panel by panel, on the selected path. */
void
lm_gemm_i16_rows(const lm_gemm_i16_weight *w, int64_t r0, int64_t r1, const int16_t *Q, int64_t q_stride,
				 const float *x_scale, int n, float *Y, int64_t y_stride, const float *bias)
{
	lm_isa		isa = lm_kernels_isa();
	int64_t		kp = GEMM_I16_KPAD(w->k);

	for (int64_t r = r0; r < r1; r += GEMM_I16_PANEL)
	{
		int			nr = (int) (r1 - r < GEMM_I16_PANEL ? r1 - r : GEMM_I16_PANEL);
		const int16_t *P = w->panels + (size_t) (r / GEMM_I16_PANEL) * GEMM_I16_PANEL * kp;
		const float *b = bias ? bias + r : NULL;

		if (isa >= LM_ISA_AVX512)
			lm_gemm_i16_panel_avx512(P, w->k, nr, w->scale + r, Q, q_stride, x_scale, n, Y + r, y_stride, b);
		else if (isa >= LM_ISA_AVX2)
			lm_gemm_i16_panel_avx2(P, w->k, nr, w->scale + r, Q, q_stride, x_scale, n, Y + r, y_stride, b);
		else
			panel_scalar(P, w->k, nr, w->scale + r, Q, q_stride, x_scale, n, Y + r, y_stride, b);
	}
}
