/*
 * bert_ops.c — the scalar paths of bert_ops.h and their dispatch to the
 * AVX2 / AVX-512 bodies.
 */
#include "bert_ops.h"

#include "kernels.h"

/* h[i] = gelu(h[i] + b[i]) for i < n. */
void
lm_bert_gelu_row(float *h, const float *b, int n)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa >= LM_ISA_AVX512)
		lm_bert_gelu_row_avx512(h, b, n);
	else if (isa >= LM_ISA_AVX2)
		lm_bert_gelu_row_avx2(h, b, n);
	else
		for (int i = 0; i < n; i++)
			h[i] = lm_bert_gelu1(h[i], b[i]);
}
