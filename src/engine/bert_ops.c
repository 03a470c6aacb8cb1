/*
 * bert_ops.c — the scalar paths of bert_ops.h and their dispatch to the
 * AVX2 / AVX-512 bodies.
 */
#include "bert_ops.h"

#include "kernels.h"

/* h[i] = gelu(h[i]) for i < n. */
void
lm_bert_gelu_row(float *h, int n)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa >= LM_ISA_AVX512)
		lm_bert_gelu_row_avx512(h, n);
	else if (isa >= LM_ISA_AVX2)
		lm_bert_gelu_row_avx2(h, n);
	else
		for (int i = 0; i < n; i++)
			h[i] = lm_bert_gelu1(h[i]);
}

/* The largest of x[0..n). */
float
lm_bert_max_row(const float *x, int n)
{
	float		max = x[0];

	if (lm_kernels_isa() >= LM_ISA_AVX512)
		return lm_bert_max_row_avx512(x, n);
	for (int i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	return max;
}

/* x = LayerNorm(x + d) * w + b, the 16-lane double sums of bert_ops.h. */
void
lm_bert_add_norm_row(float *x, const float *d, const float *w, const float *b, int n, float eps)
{
	lm_isa		isa = lm_kernels_isa();
	double		lane[16] = {0},
				mean,
				inv;
	int			n16 = (n + 15) & ~15;

	if (isa >= LM_ISA_AVX512)
	{
		lm_bert_add_norm_row_avx512(x, d, w, b, n, eps);
		return;
	}
	if (isa >= LM_ISA_AVX2)
	{
		lm_bert_add_norm_row_avx2(x, d, w, b, n, eps);
		return;
	}
	if (d)
		for (int i = 0; i < n; i++)
			x[i] = x[i] + d[i];
	for (int i = 0; i < n16; i++)
		lane[i & 15] += i < n ? (double) x[i] : 0.0;
	mean = lm_bert_lanes16(lane) / n;
	for (int i = 0; i < n16; i++)
	{
		double		t = i < n ? x[i] - mean : 0.0;

		lane[i & 15] = (i < 16 ? 0.0 : lane[i & 15]) + t * t;
	}
	inv = 1.0 / sqrt(lm_bert_lanes16(lane) / n + eps);
	for (int i = 0; i < n; i++)
		x[i] = (float) ((x[i] - mean) * inv) * w[i] + b[i];
}
