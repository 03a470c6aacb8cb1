/*
 * quant_avx512.c — activation quantization (Q8_0, Q8_1, Q8_K) in AVX-512,
 * called through lm_act_quantize_row only after a CPUID check.
 *
 * Same bytes as quant.c's scalar functions, which define the result: the
 * maximum of |x| is exact in any order, x * (127 / amax) is the same float
 * multiply, vcvtps2dq rounds half to even under the default rounding mode
 * as rintf does, and the saturating narrowing (vpmovsdb) is round_sat_i8's
 * clamp.  Blocks where an infinite product can occur (a NaN in the block,
 * an inverse scale that overflows for subnormal maxima, and for Q8_K an
 * infinity, where the scalar code's float-to-int8 cast has no vector
 * equivalent) go through the scalar function, so every input gives the
 * scalar bytes.
 */
#include "kernels_impl.h"
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* Largest |x| of 16*nv floats, or -1 when one is NaN. */
static inline float
amax_or_nan(const float *x, int nv)
{
	__m512		m = _mm512_setzero_ps();
	__mmask16	nan = 0;

	for (int v = 0; v < nv; v++)
	{
		__m512		a = _mm512_loadu_ps(x + 16 * v);

		nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
		m = _mm512_max_ps(m, _mm512_abs_ps(a));
	}
	return nan ? -1.0f : _mm512_reduce_max_ps(m);
}

/* 16 floats times id, rounded half to even, as int32 lanes. */
static inline __m512i
round16(const float *x, float id)
{
	return _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(id)));
}

/* The int32 lanes clamped to int8's range (what the saturating narrowing stores). */
static inline __m512i
clamp_i8(__m512i v)
{
	return _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-128));
}

/* Quantize one 32-block: scale into *d (float), quants into qs; returns their sum (for Q8_1), or INT32_MIN when the scalar code must do the block (a NaN, or 127 / amax overflowing). */
static inline int32_t
block32_q8(const float *x, float *d_out, int8_t *qs)
{
	float		amax = amax_or_nan(x, 2),
				d,
				id;
	__m512i		q0,
				q1;

	if (amax < 0.0f)
		return INT32_MIN;
	d = amax / 127.0f;
	id = amax != 0.0f ? 127.0f / amax : 0.0f;
	if (id > 3.4028235e38f)
		return INT32_MIN;		/* +inf * id: the scalar code stores 127, vcvtps2dq gives INT_MIN */
	*d_out = d;
	q0 = round16(x, id);
	q1 = round16(x + 16, id);
	_mm_storeu_si128((__m128i *) qs, _mm512_cvtsepi32_epi8(q0));
	_mm_storeu_si128((__m128i *) (qs + 16), _mm512_cvtsepi32_epi8(q1));
	return _mm512_reduce_add_epi32(_mm512_add_epi32(clamp_i8(q0), clamp_i8(q1)));
}

/* Q8_0 activations, bytes of lm_quantize_row_q8_0. */
void
lm_quantize_row_q8_0_avx512(const float *x, lm_block_q8_0 *y, int64_t n)
{
	for (int64_t i = 0; i < n / 32; i++, x += 32)
	{
		float		d;

		if (block32_q8(x, &d, y[i].qs) == INT32_MIN)
			lm_quantize_row_q8_0(x, &y[i], 32);
		else
			y[i].d = lm_fp32_to_fp16(d);
	}
}

/* Q8_1 activations, bytes of lm_quantize_row_q8_1. */
void
lm_quantize_row_q8_1_avx512(const float *x, lm_block_q8_1 *y, int64_t n)
{
	for (int64_t i = 0; i < n / 32; i++, x += 32)
	{
		float		d;
		int32_t		sum = block32_q8(x, &d, y[i].qs);

		if (sum == INT32_MIN)
		{
			lm_quantize_row_q8_1(x, &y[i], 32);
			continue;
		}
		y[i].d = lm_fp32_to_fp16(d);
		y[i].s = lm_fp32_to_fp16(d * (float) sum);
	}
}

/* Q8_K activations, bytes of lm_quantize_row_q8_K. */
void
lm_quantize_row_q8_K_avx512(const float *x, lm_block_q8_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K)
	{
		float		amax = amax_or_nan(x, LM_QK_K / 16),
					max = 0.0f,
					iscale;

		if (amax < 0.0f || amax > 3.4028235e38f)
		{
			lm_quantize_row_q8_K(x, &y[i], LM_QK_K);
			continue;
		}
		if (amax == 0.0f)
		{
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		/* the first element of largest magnitude, as the scalar scan keeps */
		for (int v = 0; v < LM_QK_K / 16; v++)
		{
			__mmask16	hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)),
												 _mm512_set1_ps(amax), _CMP_EQ_OQ);

			if (hit)
			{
				max = x[16 * v + __builtin_ctz(hit)];
				break;
			}
		}
		iscale = -127.0f / max;
		if (!(fabsf(iscale) <= 3.4028235e38f))
		{
			lm_quantize_row_q8_K(x, &y[i], LM_QK_K);
			continue;
		}
		for (int v = 0; v < LM_QK_K / 16; v++)
		{
			__m512i		q = round16(x + 16 * v, iscale);

			_mm_storeu_si128((__m128i *) (y[i].qs + 16 * v), _mm512_cvtsepi32_epi8(q));
			y[i].bsums[v] = (int16_t) _mm512_reduce_add_epi32(clamp_i8(q));
		}
		y[i].d = 1.0f / iscale;
	}
}
