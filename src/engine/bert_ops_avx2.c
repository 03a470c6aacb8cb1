/*
 * bert_ops_avx2.c — bert_ops.h's GELU in 256-bit vectors, the same
 * operations as lm_bert_gelu1 lane by lane; called only after a CPUID check.
 */
#include <immintrin.h>

#include "bert_ops.h"

/* gelu(u) of 8 lanes. */
static inline __m256
gelu8(__m256 u)
{
	__m256		a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_mul_ps(u, _mm256_set1_ps((float) M_SQRT1_2))),
				p = _mm256_set1_ps(BERT_ERF_A6),
				t,
				two_minus_t;
	__m256		neg = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_NGE_UQ);

	p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(BERT_ERF_A5));
	p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(BERT_ERF_A4));
	p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(BERT_ERF_A3));
	p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(BERT_ERF_A2));
	p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(BERT_ERF_A1));
	p = _mm256_fmadd_ps(p, a, _mm256_set1_ps(1.0f));
	p = _mm256_mul_ps(p, p);
	p = _mm256_mul_ps(p, p);
	p = _mm256_mul_ps(p, p);
	p = _mm256_mul_ps(p, p);
	t = _mm256_div_ps(_mm256_set1_ps(1.0f), p);
	two_minus_t = _mm256_sub_ps(_mm256_set1_ps(2.0f), t);
	return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), u), _mm256_blendv_ps(two_minus_t, t, neg));
}

/* h[i] = gelu(h[i]) for i < n; the tail element by element (the same operations). */
void
lm_bert_gelu_row_avx2(float *h, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(h + i, gelu8(_mm256_loadu_ps(h + i)));
	for (; i < n; i++)
		h[i] = lm_bert_gelu1(h[i]);
}
