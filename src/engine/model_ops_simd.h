/*
 * model_ops_simd.h — the vector bodies of model_ops.c's attention helpers,
 * compiled once per instruction set by model_ops_avx2.c (8 lanes) and
 * model_ops_avx512.c (16 lanes), which define OPS_VW and OPS_SUFFIX before
 * including it.  Every element is computed with the same operations in the
 * same order as the scalar code in model_ops.c (a product rounded, then a
 * sum rounded; positions in order), so all paths give identical floats.
 */
#ifndef LM_MODEL_OPS_SIMD_H
#define LM_MODEL_OPS_SIMD_H

#include <stddef.h>

/* out[d] = sum_j w[j] * v[j*stride + d] for d < hdv, j = 0..n-1 in order. */
extern void lm_op_wsum_avx2(float *out, const float *w, const float *v, size_t stride, int n, int hdv);
extern void lm_op_wsum_avx512(float *out, const float *w, const float *v, size_t stride, int n, int hdv);

/* x[i] *= a for i < n. */
extern void lm_op_scale_avx2(float *x, float a, int n);
extern void lm_op_scale_avx512(float *x, float a, int n);

#endif							/* LM_MODEL_OPS_SIMD_H */

#ifdef OPS_VW

#define OPS_CAT2(a, b) a##b
#define OPS_CAT(a, b) OPS_CAT2(a, b)

/* OPS_VW floats; aligned(4) allows unaligned loads and stores through it. */
typedef float ops_vf __attribute__((vector_size(OPS_VW * 4), aligned(4)));

/* Columns d .. d + NV*OPS_VW - 1 of the weighted sum, held in NV registers over all positions. */
#define OPS_WSUM_CHUNK(NV) \
	for (; d + (NV) * OPS_VW <= hdv; d += (NV) * OPS_VW) \
	{ \
		ops_vf		acc[NV]; \
		_Pragma("GCC unroll 16") \
		for (int r = 0; r < (NV); r++) \
			acc[r] = (ops_vf) {0}; \
		for (int j = 0; j < n; j++) \
		{ \
			const float *vp = v + (size_t) j * stride + d; \
			ops_vf		a = (ops_vf) {0} + w[j]; \
			_Pragma("GCC unroll 16") \
			for (int r = 0; r < (NV); r++) \
				acc[r] = acc[r] + a * *(const ops_vf *) (vp + r * OPS_VW); \
		} \
		_Pragma("GCC unroll 16") \
		for (int r = 0; r < (NV); r++) \
			*(ops_vf *) (out + d + r * OPS_VW) = acc[r]; \
	}

/* Weighted sum of n value rows, position order, product then sum per element. */
void
OPS_CAT(lm_op_wsum_, OPS_SUFFIX) (float *out, const float *w, const float *v, size_t stride, int n, int hdv)
{
	int			d = 0;

	OPS_WSUM_CHUNK(OPS_NV_MAX);
	OPS_WSUM_CHUNK(4);
	OPS_WSUM_CHUNK(1);
	for (; d < hdv; d++)
	{
		float		s = 0.0f;

		for (int j = 0; j < n; j++)
			s += w[j] * v[(size_t) j * stride + d];
		out[d] = s;
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

#endif							/* OPS_VW */
