/*
 * bert_ops_avx2.c — bert_ops.h's GELU in 256-bit vectors, the same
 * operations as lm_bert_gelu1 lane by lane; called only after a CPUID check.
 */
#include <immintrin.h>
#include <math.h>

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

/* x = LayerNorm(x + d) * w + b: 16 double lanes in four registers over whole blocks, the last block element by element. */
void
lm_bert_add_norm_row_avx2(float *x, const float *d, const float *w, const float *b, int n, float eps)
{
	__m256d		acc[4],
				vmean,
				vinv;
	double		lane[16],
				mean,
				inv;
	int			n_full = n & ~15,
				n16 = (n + 15) & ~15;

	if (d)
		for (int i = 0; i < n; i++)
			x[i] = x[i] + d[i];
	for (int l = 0; l < 4; l++)
		acc[l] = _mm256_setzero_pd();
	for (int i = 0; i < n_full; i += 16)
		for (int l = 0; l < 4; l++)
			acc[l] = _mm256_add_pd(acc[l], _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * l)));
	for (int l = 0; l < 4; l++)
		_mm256_storeu_pd(lane + 4 * l, acc[l]);
	for (int i = n_full; i < n16; i++)
		lane[i & 15] += i < n ? (double) x[i] : 0.0;
	mean = lm_bert_lanes16(lane) / n;
	vmean = _mm256_set1_pd(mean);
	for (int l = 0; l < 4; l++)
		acc[l] = _mm256_setzero_pd();
	for (int i = 0; i < n_full; i += 16)
		for (int l = 0; l < 4; l++)
		{
			__m256d		t = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * l)), vmean);

			acc[l] = _mm256_add_pd(acc[l], _mm256_mul_pd(t, t));
		}
	for (int l = 0; l < 4; l++)
		_mm256_storeu_pd(lane + 4 * l, acc[l]);
	for (int i = n_full; i < n16; i++)
	{
		double		t = i < n ? x[i] - mean : 0.0;

		lane[i & 15] += t * t;
	}
	inv = 1.0 / sqrt(lm_bert_lanes16(lane) / n + eps);
	vinv = _mm256_set1_pd(inv);
	for (int i = 0; i + 4 <= n; i += 4)
	{
		__m128		y = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), vmean), vinv));

		_mm_storeu_ps(x + i, _mm_add_ps(_mm_mul_ps(y, _mm_loadu_ps(w + i)), _mm_loadu_ps(b + i)));
	}
	for (int i = n & ~3; i < n; i++)
		x[i] = (float) ((x[i] - mean) * inv) * w[i] + b[i];
}
