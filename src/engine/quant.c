/*
 * quant.c — fp16/bf16 conversion, scalar reference dequantizers and the
 * activation quantizers (Q8_0, Q8_1, Q8_K) for the block layouts in quant.h.
 *
 * Everything here is plain C and bit-exact by construction: the conversions
 * work on bit patterns, the dequantizers follow ggml's reference formulas, and
 * the activation quantizers copy the rounding ggml's x86 build uses (round
 * half to even via rintf in the default rounding mode).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

/* Bits of a float. */
static inline uint32_t
f32_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Float from bits. */
static inline float
f32_from_bits(uint32_t u)
{
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* fp16 bits to float, exact (subnormals, inf and NaN payloads kept). */
float
lm_fp16_to_fp32(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	e = (h >> 10) & 0x1f;
	uint32_t	m = h & 0x3ff;

	if (e == 0)
	{
		float		v = (float) m * 0x1p-24f;	/* exact: m < 2^10 */

		return f32_from_bits(f32_bits(v) | sign);
	}
	if (e == 31)
		return f32_from_bits(sign | 0x7f800000u | (m << 13));
	return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

/* float to fp16 bits, round to nearest even; overflow gives inf, NaN stays quiet NaN. */
uint16_t
lm_fp32_to_fp16(float f)
{
	uint32_t	x = f32_bits(f);
	uint16_t	sign = (uint16_t) ((x >> 16) & 0x8000);
	uint32_t	ax = x & 0x7fffffffu;

	if (ax > 0x7f800000u)		/* NaN: quiet it, keep the top payload bits */
		return sign | 0x7e00 | (uint16_t) ((ax >> 13) & 0x3ff);
	if (ax >= 0x477ff000u)		/* >= 65520 rounds to infinity */
		return sign | 0x7c00;
	if (ax >= 0x38800000u)		/* normal fp16 range: >= 2^-14 */
		return sign | (uint16_t) ((ax - 0x38000000u + 0xfffu + ((ax >> 13) & 1)) >> 13);

	/* fp16 subnormal or zero: round ax * 2^24 to an integer, ties to even */
	{
		uint32_t	e = ax >> 23;
		uint32_t	m = (ax & 0x7fffffu) | 0x800000u;
		uint32_t	shift = 126 - e;	/* >= 14 here */
		uint32_t	r,
					rem,
					half;

		if (e == 0 || shift > 24)
			return sign;
		r = m >> shift;
		rem = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return sign | (uint16_t) r;
	}
}

/* bf16 bits to float, exact. */
float
lm_bf16_to_fp32(uint16_t h)
{
	return f32_from_bits((uint32_t) h << 16);
}

/* float to bf16 bits the way ggml does: nearest even, NaN forced quiet. */
uint16_t
lm_fp32_to_bf16(float f)
{
	uint32_t	u = f32_bits(f);

	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 64);
	return (uint16_t) ((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* Convert n fp16 values to float. */
void
lm_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = lm_fp16_to_fp32(src[i]);
}

/* Convert n floats to fp16 (nearest even). */
void
lm_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = lm_fp32_to_fp16(src[i]);
}

/* Scale (d * sc) and min (dmin * m) of sub-block j (0..7) of a Q4_K/Q5_K super-block with 6-bit scales q. */
static inline void
k4_scale_min(int j, const uint8_t *q, float d, float dmin, float *dl, float *ml)
{
	int			sc,
				m;

	if (j < 4)
	{
		sc = q[j] & 63;
		m = q[j + 4] & 63;
	}
	else
	{
		sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
	*dl = d * (float) sc;
	*ml = dmin * (float) m;
}

/* Dequantize Q4_0 blocks. */
static void
deq_q4_0(const lm_block_q4_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += 32)
	{
		float		d = lm_fp16_to_fp32(b[i].d);

		for (int j = 0; j < 16; j++)
		{
			y[j] = (float) ((b[i].qs[j] & 0xF) - 8) * d;
			y[j + 16] = (float) ((b[i].qs[j] >> 4) - 8) * d;
		}
	}
}

/* Dequantize Q4_1 blocks. */
static void
deq_q4_1(const lm_block_q4_1 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += 32)
	{
		float		d = lm_fp16_to_fp32(b[i].d);
		float		m = lm_fp16_to_fp32(b[i].m);

		for (int j = 0; j < 16; j++)
		{
			y[j] = fmaf((float) (b[i].qs[j] & 0xF), d, m);
			y[j + 16] = fmaf((float) (b[i].qs[j] >> 4), d, m);
		}
	}
}

/* The 5th bits of a Q5 block as one little-endian word. */
static inline uint32_t
q5_high_bits(const uint8_t qh[4])
{
	return (uint32_t) qh[0] | ((uint32_t) qh[1] << 8) | ((uint32_t) qh[2] << 16) | ((uint32_t) qh[3] << 24);
}

/* Dequantize Q5_0 blocks. */
static void
deq_q5_0(const lm_block_q5_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += 32)
	{
		float		d = lm_fp16_to_fp32(b[i].d);
		uint32_t	qh = q5_high_bits(b[i].qh);

		for (int j = 0; j < 16; j++)
		{
			int			x0 = (b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
			int			x1 = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);

			y[j] = (float) (x0 - 16) * d;
			y[j + 16] = (float) (x1 - 16) * d;
		}
	}
}

/* Dequantize Q5_1 blocks. */
static void
deq_q5_1(const lm_block_q5_1 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += 32)
	{
		float		d = lm_fp16_to_fp32(b[i].d);
		float		m = lm_fp16_to_fp32(b[i].m);
		uint32_t	qh = q5_high_bits(b[i].qh);

		for (int j = 0; j < 16; j++)
		{
			int			x0 = (b[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
			int			x1 = (b[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);

			y[j] = fmaf((float) x0, d, m);
			y[j + 16] = fmaf((float) x1, d, m);
		}
	}
}

/* Dequantize Q8_0 blocks. */
static void
deq_q8_0(const lm_block_q8_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += 32)
	{
		float		d = lm_fp16_to_fp32(b[i].d);

		for (int j = 0; j < 32; j++)
			y[j] = (float) b[i].qs[j] * d;
	}
}

/* Dequantize Q8_1 blocks (s is redundant and ignored). */
static void
deq_q8_1(const lm_block_q8_1 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += 32)
	{
		float		d = lm_fp16_to_fp32(b[i].d);

		for (int j = 0; j < 32; j++)
			y[j] = (float) b[i].qs[j] * d;
	}
}

/* Dequantize Q4_K super-blocks. */
static void
deq_q4_K(const lm_block_q4_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		d = lm_fp16_to_fp32(b[i].d);
		float		dmin = lm_fp16_to_fp32(b[i].dmin);
		const uint8_t *q = b[i].qs;

		for (int j = 0; j < 4; j++, q += 32)
		{
			float		d1,
						m1,
						d2,
						m2;

			k4_scale_min(2 * j, b[i].scales, d, dmin, &d1, &m1);
			k4_scale_min(2 * j + 1, b[i].scales, d, dmin, &d2, &m2);
			for (int l = 0; l < 32; l++)
				*y++ = fmaf(d1, (float) (q[l] & 0xF), -m1);
			for (int l = 0; l < 32; l++)
				*y++ = fmaf(d2, (float) (q[l] >> 4), -m2);
		}
	}
}

/* Dequantize Q5_K super-blocks. */
static void
deq_q5_K(const lm_block_q5_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		d = lm_fp16_to_fp32(b[i].d);
		float		dmin = lm_fp16_to_fp32(b[i].dmin);
		const uint8_t *ql = b[i].qs;
		const uint8_t *qh = b[i].qh;

		for (int j = 0; j < 4; j++, ql += 32)
		{
			float		d1,
						m1,
						d2,
						m2;

			k4_scale_min(2 * j, b[i].scales, d, dmin, &d1, &m1);
			k4_scale_min(2 * j + 1, b[i].scales, d, dmin, &d2, &m2);
			for (int l = 0; l < 32; l++)
				*y++ = fmaf(d1, (float) ((ql[l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4)), -m1);
			for (int l = 0; l < 32; l++)
				*y++ = fmaf(d2, (float) ((ql[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)), -m2);
		}
	}
}

/* Dequantize Q6_K super-blocks. */
static void
deq_q6_K(const lm_block_q6_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		d = lm_fp16_to_fp32(b[i].d);
		const uint8_t *ql = b[i].ql;
		const uint8_t *qh = b[i].qh;
		const int8_t *sc = b[i].scales;

		for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8)
		{
			for (int l = 0; l < 32; l++)
			{
				int			is = l / 16;
				int			q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
				int			q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
				int			q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				int			q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;

				y[l] = d * (float) sc[is + 0] * (float) q1;
				y[l + 32] = d * (float) sc[is + 2] * (float) q2;
				y[l + 64] = d * (float) sc[is + 4] * (float) q3;
				y[l + 96] = d * (float) sc[is + 6] * (float) q4;
			}
		}
	}
}

/* Dequantize Q8_K super-blocks. */
static void
deq_q8_K(const lm_block_q8_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += LM_QK_K)
		for (int j = 0; j < LM_QK_K; j++)
			y[j] = b[i].d * (float) b[i].qs[j];
}

/* Scalar reference dequantizer for every type with kernels (and the activation formats). */
bool
lm_dequantize_row(lm_type t, const void *src, float *dst, int64_t n)
{
	const lm_type_traits *tr = lm_type_traits_get((uint32_t) t);
	int64_t		nb;

	if (tr == NULL || n < 0 || n % tr->block_size != 0)
		return false;
	nb = n / tr->block_size;
	switch (t)
	{
		case LM_TYPE_F32:
			memmove(dst, src, (size_t) n * sizeof(float));
			return true;
		case LM_TYPE_F16:
			lm_fp16_to_fp32_row(src, dst, n);
			return true;
		case LM_TYPE_BF16:
			for (int64_t i = 0; i < n; i++)
				dst[i] = lm_bf16_to_fp32(((const uint16_t *) src)[i]);
			return true;
		case LM_TYPE_Q4_0:
			deq_q4_0(src, dst, nb);
			return true;
		case LM_TYPE_Q4_1:
			deq_q4_1(src, dst, nb);
			return true;
		case LM_TYPE_Q5_0:
			deq_q5_0(src, dst, nb);
			return true;
		case LM_TYPE_Q5_1:
			deq_q5_1(src, dst, nb);
			return true;
		case LM_TYPE_Q8_0:
			deq_q8_0(src, dst, nb);
			return true;
		case LM_TYPE_Q8_1:
			deq_q8_1(src, dst, nb);
			return true;
		case LM_TYPE_Q4_K:
			deq_q4_K(src, dst, nb);
			return true;
		case LM_TYPE_Q5_K:
			deq_q5_K(src, dst, nb);
			return true;
		case LM_TYPE_Q6_K:
			deq_q6_K(src, dst, nb);
			return true;
		case LM_TYPE_Q8_K:
			deq_q8_K(src, dst, nb);
			return true;
		default:
			return false;
	}
}

/* Round half to even and saturate to int8 like cvtps_epi32 + packs (NaN -> -128). */
static inline int8_t
round_sat_i8(float v)
{
	float		r = rintf(v);

	if (!(r >= -128.0f))		/* also catches NaN, as x86 gives INT_MIN */
		return -128;
	if (r > 127.0f)
		return 127;
	return (int8_t) r;
}

/* Largest |x| of a block of 32 (what _mm256_max_ps on |x| yields for finite input). */
static inline float
block_amax(const float *x)
{
	float		amax = 0.0f;

	for (int j = 0; j < 32; j++)
	{
		float		a = fabsf(x[j]);

		if (a > amax)
			amax = a;
	}
	return amax;
}

/* Quantize to Q8_0 the way ggml's AVX path does. */
void
lm_quantize_row_q8_0(const float *x, lm_block_q8_0 *y, int64_t n)
{
	for (int64_t i = 0; i < n / 32; i++, x += 32)
	{
		float		amax = block_amax(x);
		float		d = amax / 127.0f;
		float		id = amax != 0.0f ? 127.0f / amax : 0.0f;

		y[i].d = lm_fp32_to_fp16(d);
		for (int j = 0; j < 32; j++)
			y[i].qs[j] = round_sat_i8(x[j] * id);
	}
}

/* Quantize to Q8_1 the way ggml's AVX2 path does (s = fp16(d * sum q)). */
void
lm_quantize_row_q8_1(const float *x, lm_block_q8_1 *y, int64_t n)
{
	for (int64_t i = 0; i < n / 32; i++, x += 32)
	{
		float		amax = block_amax(x);
		float		d = amax / 127.0f;
		float		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		int			sum = 0;

		y[i].d = lm_fp32_to_fp16(d);
		for (int j = 0; j < 32; j++)
		{
			y[i].qs[j] = round_sat_i8(x[j] * id);
			sum += y[i].qs[j];
		}
		y[i].s = lm_fp32_to_fp16(d * (float) sum);
	}
}

/* Quantize to Q8_K as ggml's reference does (x86 uses the reference). */
void
lm_quantize_row_q8_K(const float *x, lm_block_q8_K *y, int64_t n)
{
	for (int64_t i = 0; i < n / LM_QK_K; i++, x += LM_QK_K)
	{
		float		max = 0.0f;
		float		amax = 0.0f;
		float		iscale;

		for (int j = 0; j < LM_QK_K; j++)
		{
			float		ax = fabsf(x[j]);

			if (ax > amax)
			{
				amax = ax;
				max = x[j];
			}
		}
		if (amax == 0.0f)
		{
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		iscale = -127.0f / max;
		for (int j = 0; j < LM_QK_K; j++)
		{
			float		v = rintf(iscale * x[j]);

			y[i].qs[j] = (int8_t) (v > 127.0f ? 127 : v);
		}
		for (int j = 0; j < 16; j++)
		{
			int			sum = 0;

			for (int l = 0; l < 16; l++)
				sum += y[i].qs[16 * j + l];
			y[i].bsums[j] = (int16_t) sum;
		}
		y[i].d = 1.0f / iscale;
	}
}
