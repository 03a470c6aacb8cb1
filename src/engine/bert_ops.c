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
