/*
 * model_ops_simd.h — the vector bodies of model_ops.c's softmax, norm,
 * RoPE and GEGLU helpers,
 * compiled once per instruction set by model_ops_avx2.c (8 lanes) and
 * model_ops_avx512.c (16 lanes), which define OPS_VW, OPS_SUFFIX and
 * OPS_FMA (a fused multiply-add on ops_vf) before including it.  Every
 * element is computed with the same operations in the same order as the
 * scalar code in model_ops.c (fmaf where these use OPS_FMA), so all paths
 * give identical floats.
 */
#ifndef LM_MODEL_OPS_SIMD_H
#define LM_MODEL_OPS_SIMD_H

#include <stddef.h>

/* x[i] = lm_op_expf(x[i] - max) for i < n. */
extern void lm_op_exp_sub_avx2(float *x, float max, int n);
extern void lm_op_exp_sub_avx512(float *x, float max, int n);

/* x[i] *= a for i < n. */
extern void lm_op_scale_avx2(float *x, float a, int n);
extern void lm_op_scale_avx512(float *x, float a, int n);

/* lm_op_softmax_sum with the 16-lane trees in vectors (same order, same double total). */
extern double lm_op_softmax_sum_avx2(const float *e, int p0, int n);
extern double lm_op_softmax_sum_avx512(const float *e, int p0, int n);

/* g[i] = (g[i] / (1 + lm_op_expf(-g[i]))) * u[i] for i < n16 (a multiple of 16). */
extern void lm_op_swiglu_avx2(float *g, const float *u, int n16);
extern void lm_op_swiglu_avx512(float *g, const float *u, int n16);

/* RoPE of adjacent pairs (LM_ROPE_NORM) over the first n_rot (a multiple of 16) dimensions of n_heads heads. */
extern void lm_op_rope_norm_avx2(float *vec, int n_heads, int hd, int n_rot, const float *cs);
extern void lm_op_rope_norm_avx512(float *vec, int n_heads, int hd, int n_rot, const float *cs);

/* RoPE of halves (LM_ROPE_NEOX) over the first n_rot (a multiple of 32) dimensions of n_heads heads. */
extern void lm_op_rope_neox_avx2(float *vec, int n_heads, int hd, int n_rot, const float *cs);
extern void lm_op_rope_neox_avx512(float *vec, int n_heads, int hd, int n_rot, const float *cs);

/* out[i] = (x[i] * a) * w[i] for i < n (RMSNorm's scaling). */
extern void lm_op_scale_mul_avx2(float *out, const float *x, float a, const float *w, int n);
extern void lm_op_scale_mul_avx512(float *out, const float *x, float a, const float *w, int n);

/* GEGLU of whole vectors of g, u (see lm_op_geglu_row; tab: the GELU table as floats); returns how many elements it did. */
extern int	lm_op_geglu_avx2(float *g, const float *u, int n, const float *tab);
extern int	lm_op_geglu_avx512(float *g, const float *u, int n, const float *tab);

#endif							/* LM_MODEL_OPS_SIMD_H */

#ifdef OPS_VW

#include <stdint.h>
#include <string.h>

#define OPS_CAT2(a, b) a##b
#define OPS_CAT(a, b) OPS_CAT2(a, b)

/* OPS_VW floats / ints; aligned(4) allows unaligned loads and stores through them. */
typedef float ops_vf __attribute__((vector_size(OPS_VW * 4), aligned(4)));
typedef int32_t ops_vi __attribute__((vector_size(OPS_VW * 4), aligned(4)));
typedef uint32_t ops_vu __attribute__((vector_size(OPS_VW * 4), aligned(4)));

/* 2^e for integer lanes e in [-126, 127] (exact powers of two). */
static inline ops_vf
ops_pow2(ops_vi e)
{
	return (ops_vf) (((ops_vu) e + 127u) << 23);
}

/* The exponential of model_ops.c's lm_op_expf, OPS_VW lanes at a time. */
static inline ops_vf
ops_exp(ops_vf x)
{
	const ops_vf r = (ops_vf) {0} + 0x1.8p23f;
	ops_vf		z = OPS_FMA(x, (ops_vf) {0} + 0x1.715476p+0f, r),
				n = z - r,
				b = OPS_FMA(-n, (ops_vf) {0} + 0x1.7f7d1cp-20f,
							OPS_FMA(-n, (ops_vf) {0} + 0x1.62e4p-1f, x)),
				u = b * b,
				j = OPS_FMA(OPS_FMA(OPS_FMA((ops_vf) {0} + 0x1.0e4020p-7f, b, (ops_vf) {0} + 0x1.573e2ep-5f),
									u,
									OPS_FMA((ops_vf) {0} + 0x1.555e66p-3f, b, (ops_vf) {0} + 0x1.fffdb6p-2f)),
							u,
							OPS_FMA((ops_vf) {0} + 0x1.ffffecp-1f, b, (ops_vf) {0} + 1.0f)),
				res,
				alt;
	ops_vi		ni = __builtin_convertvector(n, ops_vi),
				e1 = ni >> 1,
				big = (ops_vf) ((ops_vu) n & 0x7fffffffu) > 192.0f,
				le0 = n <= 0.0f;

	/* j * 2^n with one rounding: the first product is exact */
	res = (j * ops_pow2(e1)) * ops_pow2(ni - e1);
	alt = (ops_vf) (~le0 & 0x7f800000);
	return (ops_vf) (((ops_vi) res & ~big) | ((ops_vi) alt & big));
}

/* x[i] = exp(x[i] - max), the tail through a zero-padded vector. */
void
OPS_CAT(lm_op_exp_sub_, OPS_SUFFIX) (float *x, float max, int n)
{
	ops_vf		vm = (ops_vf) {0} + max;
	int			i = 0;

	for (; i + OPS_VW <= n; i += OPS_VW)
		*(ops_vf *) (x + i) = ops_exp(*(const ops_vf *) (x + i) - vm);
	if (i < n)
	{
		float		buf[OPS_VW] = {0};
		ops_vf		t;

		memcpy(buf, x + i, sizeof(float) * (n - i));
		t = ops_exp(*(const ops_vf *) buf - vm);
		memcpy(buf, &t, sizeof t);
		memcpy(x + i, buf, sizeof(float) * (n - i));
	}
}

/* Multiply n floats by a. */
void
OPS_CAT(lm_op_scale_, OPS_SUFFIX) (float *x, float a, int n)
{
	ops_vf		va = (ops_vf) {0} + a;
	int			i = 0;

	for (; i + OPS_VW <= n; i += OPS_VW)
		*(ops_vf *) (x + i) = *(const ops_vf *) (x + i) * va;
	for (; i < n; i++)
		x[i] *= a;
}

typedef float ops_v8 __attribute__((vector_size(32), aligned(4)));
typedef float ops_v4 __attribute__((vector_size(16)));

/* Softmax denominator: each 16-position block (aligned to position 0, absent positions 0) as lanes_reduce16, blocks added in double. */
double
OPS_CAT(lm_op_softmax_sum_, OPS_SUFFIX) (const float *e, int p0, int n)
{
	double		sum = 0.0;

	for (int b0 = p0 & ~15; b0 < p0 + n; b0 += 16)
	{
		float		buf[16];
		const float *a = e + (b0 - p0);
		ops_v8		t;
		ops_v4		q;

		if (b0 < p0 || b0 + 16 > p0 + n)
		{
			for (int l = 0; l < 16; l++)
			{
				int			i = b0 + l - p0;

				buf[l] = (i >= 0 && i < n) ? e[i] : 0.0f;
			}
			a = buf;
		}
		/* t[l] = a[8+l] + a[l]; q[l] = t[4+l] + t[l]; (q0 + q2) + (q1 + q3) */
		t = *(const ops_v8 *) (a + 8) + *(const ops_v8 *) a;
		q = __builtin_shufflevector(t, t, 4, 5, 6, 7) + __builtin_shufflevector(t, t, 0, 1, 2, 3);
		sum += (double) ((q[0] + q[2]) + (q[1] + q[3]));
	}
	return sum;
}

/* SwiGLU of the first n16 elements (a multiple of 16, so of OPS_VW). */
void
OPS_CAT(lm_op_swiglu_, OPS_SUFFIX) (float *g, const float *u, int n16)
{
	for (int i = 0; i < n16; i += OPS_VW)
	{
		ops_vf		x = *(const ops_vf *) (g + i);

		*(ops_vf *) (g + i) = (x / (1.0f + ops_exp(-x))) * *(const ops_vf *) (u + i);
	}
}

/*
 * Adjacent-pair RoPE, OPS_VW dimensions at a time (n_rot a multiple of
 * 16): lane 2i gets fma(x0, c, -(x1 * s)) and lane 2i+1 fma(x0, s, x1 * c),
 * as the scalar code, written as fma(x0 in both lanes, cs, (x1 in both
 * lanes) * (s, c) with lane 2i's product negated by its sign bit, as the
 * scalar negation does, NaN included).
 */
void
OPS_CAT(lm_op_rope_norm_, OPS_SUFFIX) (float *vec, int n_heads, int hd, int n_rot, const float *cs)
{
	ops_vi		dup_even,
				dup_odd,
				swap;
	ops_vu		neg_even;

	for (int l = 0; l < OPS_VW; l++)
	{
		dup_even[l] = l & ~1;
		dup_odd[l] = l | 1;
		swap[l] = l ^ 1;
		neg_even[l] = (l & 1) ? 0u : 0x80000000u;
	}
	for (int h = 0; h < n_heads; h++)
	{
		float	   *v = vec + (size_t) h * hd;

		for (int i = 0; i < n_rot; i += OPS_VW)
		{
			ops_vf		x = *(const ops_vf *) (v + i),
						c = *(const ops_vf *) (cs + i),
						p = __builtin_shuffle(x, dup_odd) * __builtin_shuffle(c, swap);

			*(ops_vf *) (v + i) = OPS_FMA(__builtin_shuffle(x, dup_even), c, (ops_vf) ((ops_vu) p ^ neg_even));
		}
	}
}

/*
 * Half-pair (NEOX) RoPE, OPS_VW pairs at a time (n_rot a multiple of 32,
 * so half is a multiple of 16): dimension i gets fma(x0, c, -(x1 * s)) and
 * dimension i + half fma(x0, s, x1 * c), as the scalar code; cos and sin
 * are taken apart from their interleaved pairs.
 */
void
OPS_CAT(lm_op_rope_neox_, OPS_SUFFIX) (float *vec, int n_heads, int hd, int n_rot, const float *cs)
{
	int			half = n_rot / 2;
	ops_vi		even,
				odd;

	for (int l = 0; l < OPS_VW; l++)
	{
		even[l] = 2 * l;
		odd[l] = 2 * l + 1;
	}
	for (int h = 0; h < n_heads; h++)
	{
		float	   *v = vec + (size_t) h * hd;

		for (int i = 0; i < half; i += OPS_VW)
		{
			ops_vf		a = *(const ops_vf *) (cs + 2 * i),
						b = *(const ops_vf *) (cs + 2 * i + OPS_VW),
						c = __builtin_shuffle(a, b, even),
						s = __builtin_shuffle(a, b, odd),
						x0 = *(const ops_vf *) (v + i),
						x1 = *(const ops_vf *) (v + i + half);

			*(ops_vf *) (v + i) = OPS_FMA(x0, c, -(x1 * s));
			*(ops_vf *) (v + i + half) = OPS_FMA(x0, s, x1 * c);
		}
	}
}

/* out[i] = (x[i] * a) * w[i], the tail one by one. */
void
OPS_CAT(lm_op_scale_mul_, OPS_SUFFIX) (float *out, const float *x, float a, const float *w, int n)
{
	ops_vf		va = (ops_vf) {0} + a;
	int			i = 0;

	for (; i + OPS_VW <= n; i += OPS_VW)
		*(ops_vf *) (out + i) = (*(const ops_vf *) (x + i) * va) * *(const ops_vf *) (w + i);
	for (; i < n; i++)
		out[i] = (x[i] * a) * w[i];
}

/*
 * GEGLU of the whole vectors of a row: the gate rounded to fp16 (nearest
 * even, as lm_fp32_to_fp16) indexes the float table (OPS_GELU_LOOKUP), the
 * value times u; gates >= 10 give g * u and gates <= -10 give +0, as the
 * scalar code (NaN compares false both ways and is looked up).
 */
int
OPS_CAT(lm_op_geglu_, OPS_SUFFIX) (float *g, const float *u, int n, const float *tab)
{
	int			i = 0;

	for (; i + OPS_VW <= n; i += OPS_VW)
	{
		ops_vf		x = *(const ops_vf *) (g + i),
					uu = *(const ops_vf *) (u + i),
					lu = OPS_GELU_LOOKUP(x, tab) * uu,
					xu = x * uu;
		ops_vi		ge = x >= 10.0f,
					le = x <= -10.0f,
					r = (((ops_vi) lu & ~ge) | ((ops_vi) xu & ge)) & ~le;

		*(ops_vf *) (g + i) = (ops_vf) r;
	}
	return i;
}

#endif							/* OPS_VW */
