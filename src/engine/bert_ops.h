/*
 * bert_ops.h — the bert encoder's element-wise operations, vectorised
 * with the same floats on every kernel path (scalar, AVX2, AVX-512).
 *
 * GELU (the exact erf form, 0.5 u (1 + erf(u / sqrt 2))) takes erf from
 * Abramowitz & Stegun 7.1.28: for a = |x|,
 *     erfc(a) ~ t = 1 / (1 + a1 a + a2 a^2 + ... + a6 a^6)^16
 * (|erf error| < 3e-7), so 1 + erf(x) is 2 - t for x >= 0 and t itself for
 * x < 0 (no cancellation on the negative side).  The polynomial is a
 * Horner chain of fmas, the 16th power four squarings, then one division:
 * every path computes exactly these operations in this order.
 *
 * LayerNorm sums in double over 16 lanes (lane l takes elements l, l + 16,
 * l + 32, ... in order; a last partial block adds 0.0 to its empty
 * lanes), the lanes then added 0, 1, ..., 15: once for the mean, once for
 * the squared deviations; each output is (float) ((x - mean) * inv) * w + b
 * with inv = 1 / sqrt(var + eps) in double.
 */
#ifndef LM_BERT_OPS_H
#define LM_BERT_OPS_H

#include <math.h>

/* Abramowitz & Stegun 7.1.28's coefficients a1..a6. */
#define BERT_ERF_A1 0.0705230784f
#define BERT_ERF_A2 0.0422820123f
#define BERT_ERF_A3 0.0092705272f
#define BERT_ERF_A4 0.0001520143f
#define BERT_ERF_A5 0.0002765672f
#define BERT_ERF_A6 0.0000430638f

/* gelu(u) for one element, the reference every vector path matches. */
static inline float
lm_bert_gelu1(float u)
{
	float		a = fabsf(u * (float) M_SQRT1_2),
				p = fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(BERT_ERF_A6, a, BERT_ERF_A5), a, BERT_ERF_A4), a, BERT_ERF_A3),
									a, BERT_ERF_A2), a, BERT_ERF_A1), a, 1.0f),
				t;

	p = p * p;
	p = p * p;
	p = p * p;
	p = p * p;
	t = 1.0f / p;
	return (0.5f * u) * (u >= 0.0f ? 2.0f - t : t);
}

/* h[i] = gelu(h[i]) for i < n, vectorised where the CPU allows. */
extern void lm_bert_gelu_row(float *h, int n);

/* The largest of x[0..n) (n >= 1; exact, so the same on every path). */
extern float lm_bert_max_row(const float *x, int n);

/* x = LayerNorm(x + d) * w + b for one row of n floats (d may be NULL: x alone). */
extern void lm_bert_add_norm_row(float *x, const float *d, const float *w, const float *b, int n, float eps);

/* Sum of 16 double lanes, lane 0 first. */
static inline double
lm_bert_lanes16(const double *lane)
{
	double		s = 0.0;

	for (int l = 0; l < 16; l++)
		s += lane[l];
	return s;
}

/* Per-ISA bodies (bert_ops_avx2.c, bert_ops_avx512.c). */
extern void lm_bert_add_norm_row_avx2(float *x, const float *d, const float *w, const float *b, int n, float eps);
extern void lm_bert_add_norm_row_avx512(float *x, const float *d, const float *w, const float *b, int n, float eps);
extern void lm_bert_gelu_row_avx2(float *h, int n);
extern void lm_bert_gelu_row_avx512(float *h, int n);
extern float lm_bert_max_row_avx512(const float *x, int n);

#endif							/* LM_BERT_OPS_H */
