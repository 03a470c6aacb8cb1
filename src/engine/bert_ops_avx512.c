/*
 * bert_ops_avx512.c — bert_ops.h's GELU in 512-bit vectors, the same
 * operations as lm_bert_gelu1 lane by lane, and a row's maximum; called
 * only after a CPUID check.
 */
#include <immintrin.h>
#include <math.h>

#include "bert_ops.h"

/* gelu(u) of 16 lanes. */
static inline __m512
gelu16(__m512 u)
{
	__m512		a = _mm512_abs_ps(_mm512_mul_ps(u, _mm512_set1_ps((float) M_SQRT1_2))),
				p = _mm512_set1_ps(BERT_ERF_A6),
				t,
				two_minus_t;
	__mmask16	neg = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_NGE_UQ);

	p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(BERT_ERF_A5));
	p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(BERT_ERF_A4));
	p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(BERT_ERF_A3));
	p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(BERT_ERF_A2));
	p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(BERT_ERF_A1));
	p = _mm512_fmadd_ps(p, a, _mm512_set1_ps(1.0f));
	p = _mm512_mul_ps(p, p);
	p = _mm512_mul_ps(p, p);
	p = _mm512_mul_ps(p, p);
	p = _mm512_mul_ps(p, p);
	t = _mm512_div_ps(_mm512_set1_ps(1.0f), p);
	two_minus_t = _mm512_sub_ps(_mm512_set1_ps(2.0f), t);
	return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), u), _mm512_mask_blend_ps(neg, two_minus_t, t));
}

/* h[i] = gelu(h[i]) for i < n; the tail through masked loads. */
void
lm_bert_gelu_row_avx512(float *h, int n)
{
	int			i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(h + i, gelu16(_mm512_loadu_ps(h + i)));
	if (i < n)
	{
		__mmask16	m = (__mmask16) ((1u << (n - i)) - 1);

		_mm512_mask_storeu_ps(h + i, m, gelu16(_mm512_maskz_loadu_ps(m, h + i)));
	}
}

/* The largest of x[0..n): lane-wise maxima, the tail lanes masked to -inf, then the lanes' maximum. */
float
lm_bert_max_row_avx512(const float *x, int n)
{
	__m512		m = _mm512_set1_ps(-INFINITY);
	int			i = 0;

	for (; i + 16 <= n; i += 16)
		m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
	if (i < n)
		m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), (__mmask16) ((1u << (n - i)) - 1),
												  x + i));
	return _mm512_reduce_max_ps(m);
}

/* x = LayerNorm(x + d) * w + b: 16 double lanes in two registers, the last block masked. */
void
lm_bert_add_norm_row_avx512(float *x, const float *d, const float *w, const float *b, int n, float eps)
{
	__m512d		lo = _mm512_setzero_pd(),
				hi = _mm512_setzero_pd(),
				vmean,
				vinv;
	double		lane[16],
				mean,
				inv;

	for (int i = 0; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);
		__m512		v = _mm512_maskz_loadu_ps(m, x + i);

		if (d)
		{
			v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, d + i));
			_mm512_mask_storeu_ps(x + i, m, v);
		}
		lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
		hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
	}
	_mm512_storeu_pd(lane, lo);
	_mm512_storeu_pd(lane + 8, hi);
	mean = lm_bert_lanes16(lane) / n;
	vmean = _mm512_set1_pd(mean);
	lo = hi = _mm512_setzero_pd();
	for (int i = 0; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);
		__m512		v = _mm512_maskz_loadu_ps(m, x + i);
		__m512d		t0 = _mm512_maskz_sub_pd((__mmask8) m, _mm512_cvtps_pd(_mm512_castps512_ps256(v)), vmean),
					t1 = _mm512_maskz_sub_pd((__mmask8) (m >> 8),
											 _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))),
											 vmean);

		lo = _mm512_add_pd(lo, _mm512_mul_pd(t0, t0));
		hi = _mm512_add_pd(hi, _mm512_mul_pd(t1, t1));
	}
	_mm512_storeu_pd(lane, lo);
	_mm512_storeu_pd(lane + 8, hi);
	inv = 1.0 / sqrt(lm_bert_lanes16(lane) / n + eps);
	vinv = _mm512_set1_pd(inv);
	for (int i = 0; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);
		__m512		v = _mm512_maskz_loadu_ps(m, x + i);
		__m256		y0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), vmean), vinv)),
					y1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))),
																  vmean), vinv));
		__m512		y = _mm512_insertf32x8(_mm512_castps256_ps512(y0), y1, 1);

		y = _mm512_add_ps(_mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, w + i)), _mm512_maskz_loadu_ps(m, b + i));
		_mm512_mask_storeu_ps(x + i, m, y);
	}
}
