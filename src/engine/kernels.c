/*
 * kernels.c — CPU detection, dispatch, activation quantization and the
 * portable scalar kernels.
 *
 * The scalar kernels here ARE the specification of each type's reduction
 * order (see kernels.h): they emulate the SIMD lanes with small arrays and
 * use fmaf wherever the SIMD code uses an FMA, so that the AVX2 and AVX-512
 * paths (kernels_avx2.c, kernels_avx512.c) can be checked against them bit
 * for bit.  The engine is built with -ffp-contract=off, so the compiler never
 * fuses on its own.  They are slow (fmaf is a libm call without -mfma) and
 * only run on CPUs without AVX2 or when LMGEN_ISA=scalar.
 */
#include "kernels.h"
#include "kernels_impl.h"
#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Sum 8 lanes the way ggml's hsum_float_8 does. */
static inline float
hsum8(const float a[8])
{
	float		q0 = a[4] + a[0],
				q1 = a[5] + a[1],
				q2 = a[6] + a[2],
				q3 = a[7] + a[3];

	return (q0 + q2) + (q1 + q3);
}

/* Sum 16 lanes the way GCC's _mm512_reduce_add_ps does. */
static inline float
reduce16(const float a[16])
{
	float		t[8];

	for (int i = 0; i < 8; i++)
		t[i] = a[8 + i] + a[i];
	return hsum8(t);
}

/* Sum 4x16 lanes (overwriting acc): pairwise combine ((0 + 2) + (1 + 3)), then reduce16. */
static inline float
reduce4x16(float acc[4][16])
{
	for (int l = 0; l < 16; l++)
	{
		acc[0][l] = acc[0][l] + acc[2][l];
		acc[1][l] = acc[1][l] + acc[3][l];
		acc[0][l] = acc[0][l] + acc[1][l];
	}
	return reduce16(acc[0]);
}

/* Canonical F32 dot: 4x16 fma lanes, pairwise combine, reduce16, fmaf tail. */
static float
dot_f32_scalar(const float *x, const float *y, int64_t n)
{
	float		acc[4][16] = {{0}};
	int64_t		np = n & ~(int64_t) 63;
	float		s;

	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 16; l++)
				acc[j][l] = fmaf(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
	s = reduce4x16(acc);
	for (int64_t i = np; i < n; i++)
		s = fmaf(x[i], y[i], s);
	return s;
}

/* Canonical F16 dot (both operands fp16): as F32, tail summed in double. */
static float
dot_f16_scalar(const uint16_t *x, const uint16_t *y, int64_t n)
{
	float		acc[4][16] = {{0}};
	int64_t		np = n & ~(int64_t) 63;
	double		s;

	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 16; l++)
				acc[j][l] = fmaf(lm_fp16_to_fp32(x[i + 16 * j + l]),
								 lm_fp16_to_fp32(y[i + 16 * j + l]), acc[j][l]);
	s = (double) reduce4x16(acc);
	for (int64_t i = np; i < n; i++)
		s += (double) (lm_fp16_to_fp32(x[i]) * lm_fp16_to_fp32(y[i]));
	return (float) s;
}

/* Canonical BF16 dot: 2x16 fma lanes over steps of 32, reduced in double, tail in double. */
static float
dot_bf16_scalar(const uint16_t *x, const uint16_t *y, int64_t n)
{
	float		acc[2][16] = {{0}};
	int64_t		np = n & ~(int64_t) 31;
	double		s;

	for (int64_t i = 0; i < np; i += 32)
		for (int j = 0; j < 2; j++)
			for (int l = 0; l < 16; l++)
				acc[j][l] = fmaf(lm_bf16_to_fp32(x[i + 16 * j + l]),
								 lm_bf16_to_fp32(y[i + 16 * j + l]), acc[j][l]);
	s = (double) reduce16(acc[0]);
	s += (double) reduce16(acc[1]);
	for (int64_t i = np; i < n; i++)
		s += (double) (lm_bf16_to_fp32(x[i]) * lm_bf16_to_fp32(y[i]));
	return (float) s;
}

/* Add lane sums of a 32-element int8 block product into acc: lane k = elements 4k..4k+3. */
static inline void
block32_lanes(const int8_t *w, const int8_t *x, float d, float acc[8])
{
	for (int k = 0; k < 8; k++)
	{
		int			s = 0;

		for (int e = 4 * k; e < 4 * k + 4; e++)
			s += (int) w[e] * (int) x[e];
		acc[k] = fmaf(d, (float) s, acc[k]);
	}
}

/* Unpack a Q4_0/Q4_1 nibble block into 32 values (offset subtracted). */
static inline void
unpack_nibbles(const uint8_t qs[16], int offset, int8_t w[32])
{
	for (int j = 0; j < 16; j++)
	{
		w[j] = (int8_t) ((qs[j] & 0xF) - offset);
		w[j + 16] = (int8_t) ((qs[j] >> 4) - offset);
	}
}

/* Unpack a Q5_0/Q5_1 block into 32 values (offset subtracted). */
static inline void
unpack_q5(const uint8_t qs[16], const uint8_t qh[4], int offset, int8_t w[32])
{
	uint32_t	h = (uint32_t) qh[0] | ((uint32_t) qh[1] << 8) | ((uint32_t) qh[2] << 16) | ((uint32_t) qh[3] << 24);

	for (int j = 0; j < 16; j++)
	{
		w[j] = (int8_t) (((qs[j] & 0xF) | (((h >> j) & 1) << 4)) - offset);
		w[j + 16] = (int8_t) (((qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4)) - offset);
	}
}

/* Q4_0 x Q8_0 row dot. */
static float
dot_q4_0_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q4_0 *w = vw;
	const lm_block_q8_0 *x = vx;
	float		acc[8] = {0};
	int8_t		q[32];

	for (int64_t b = 0; b < n / 32; b++)
	{
		unpack_nibbles(w[b].qs, 8, q);
		block32_lanes(q, x[b].qs, lm_fp16_to_fp32(w[b].d) * lm_fp16_to_fp32(x[b].d), acc);
	}
	return hsum8(acc);
}

/* Q5_0 x Q8_0 row dot. */
static float
dot_q5_0_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q5_0 *w = vw;
	const lm_block_q8_0 *x = vx;
	float		acc[8] = {0};
	int8_t		q[32];

	for (int64_t b = 0; b < n / 32; b++)
	{
		unpack_q5(w[b].qs, w[b].qh, 16, q);
		block32_lanes(q, x[b].qs, lm_fp16_to_fp32(w[b].d) * lm_fp16_to_fp32(x[b].d), acc);
	}
	return hsum8(acc);
}

/* Q8_0 x Q8_0 row dot. */
static float
dot_q8_0_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q8_0 *w = vw;
	const lm_block_q8_0 *x = vx;
	float		acc[8] = {0};

	for (int64_t b = 0; b < n / 32; b++)
		block32_lanes(w[b].qs, x[b].qs, lm_fp16_to_fp32(w[b].d) * lm_fp16_to_fp32(x[b].d), acc);
	return hsum8(acc);
}

/* Q4_1 x Q8_1 row dot. */
static float
dot_q4_1_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q4_1 *w = vw;
	const lm_block_q8_1 *x = vx;
	float		acc[8] = {0};
	float		summs = 0.0f;
	int8_t		q[32];

	for (int64_t b = 0; b < n / 32; b++)
	{
		summs = fmaf(lm_fp16_to_fp32(w[b].m), lm_fp16_to_fp32(x[b].s), summs);
		unpack_nibbles(w[b].qs, 0, q);
		block32_lanes(q, x[b].qs, lm_fp16_to_fp32(w[b].d) * lm_fp16_to_fp32(x[b].d), acc);
	}
	return hsum8(acc) + summs;
}

/* Q5_1 x Q8_1 row dot. */
static float
dot_q5_1_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q5_1 *w = vw;
	const lm_block_q8_1 *x = vx;
	float		acc[8] = {0};
	float		summs = 0.0f;
	int8_t		q[32];

	for (int64_t b = 0; b < n / 32; b++)
	{
		summs = fmaf(lm_fp16_to_fp32(w[b].m), lm_fp16_to_fp32(x[b].s), summs);
		unpack_q5(w[b].qs, w[b].qh, 0, q);
		block32_lanes(q, x[b].qs, lm_fp16_to_fp32(w[b].d) * lm_fp16_to_fp32(x[b].d), acc);
	}
	return hsum8(acc) + summs;
}

/* Unpack the 8 scales and 8 mins of a Q4_K/Q5_K super-block. */
static inline void
unpack_k4_scales(const uint8_t q[12], int sc[8], int mn[8])
{
	for (int j = 0; j < 8; j++)
	{
		if (j < 4)
		{
			sc[j] = q[j] & 63;
			mn[j] = q[j + 4] & 63;
		}
		else
		{
			sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
			mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
		}
	}
}

/* Integer lanes of a K super-block: lane k += sc[sub] * sum of q*x over elements 4k..4k+3 of each 32-sub-block. */
static inline void
k_lanes(const uint8_t *q, const int8_t *x, const int sc[8], int32_t lanes[8])
{
	for (int k = 0; k < 8; k++)
		lanes[k] = 0;
	for (int sub = 0; sub < 8; sub++)
		for (int k = 0; k < 8; k++)
		{
			int			s = 0;

			for (int e = 4 * k; e < 4 * k + 4; e++)
				s += (int) q[sub * 32 + e] * (int) x[sub * 32 + e];
			lanes[k] += sc[sub] * s;
		}
}

/* Q4_K x Q8_K row dot (ggml AVX2 order: 8-lane main part, 4-lane mins). */
static float
dot_q4_K_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q4_K *w = vw;
	const lm_block_q8_K *x = vx;
	float		acc[8] = {0};
	float		accm[4] = {0};
	uint8_t		q[256];

	for (int64_t b = 0; b < n / 256; b++)
	{
		float		d = x[b].d * lm_fp16_to_fp32(w[b].d);
		float		dmin = -x[b].d * lm_fp16_to_fp32(w[b].dmin);
		int			sc[8],
					mn[8],
					q8s[8];
		int32_t		lanes[8];

		unpack_k4_scales(w[b].scales, sc, mn);
		for (int i = 0; i < 8; i++)
			q8s[i] = x[b].bsums[2 * i] + x[b].bsums[2 * i + 1];
		for (int j = 0; j < 4; j++)
			accm[j] = fmaf(dmin, (float) (mn[2 * j] * q8s[2 * j] + mn[2 * j + 1] * q8s[2 * j + 1]), accm[j]);
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++)
			{
				q[64 * j + l] = w[b].qs[32 * j + l] & 0xF;
				q[64 * j + 32 + l] = w[b].qs[32 * j + l] >> 4;
			}
		k_lanes(q, x[b].qs, sc, lanes);
		for (int k = 0; k < 8; k++)
			acc[k] = fmaf(d, (float) lanes[k], acc[k]);
	}
	return hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
}

/* Q5_K x Q8_K row dot (ggml AVX2 order: 8-lane main part, scalar fmaf mins). */
static float
dot_q5_K_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q5_K *w = vw;
	const lm_block_q8_K *x = vx;
	float		acc[8] = {0};
	float		summs = 0.0f;
	uint8_t		q[256];

	for (int64_t b = 0; b < n / 256; b++)
	{
		float		d = x[b].d * lm_fp16_to_fp32(w[b].d);
		float		dmin = -x[b].d * lm_fp16_to_fp32(w[b].dmin);
		int			sc[8],
					mn[8],
					msum = 0;
		int32_t		lanes[8];

		unpack_k4_scales(w[b].scales, sc, mn);
		for (int i = 0; i < 8; i++)
			msum += mn[i] * (x[b].bsums[2 * i] + x[b].bsums[2 * i + 1]);
		summs = fmaf(dmin, (float) msum, summs);
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++)
			{
				int			h = w[b].qh[l];

				q[64 * j + l] = (uint8_t) ((w[b].qs[32 * j + l] & 0xF) | (((h >> (2 * j)) & 1) << 4));
				q[64 * j + 32 + l] = (uint8_t) ((w[b].qs[32 * j + l] >> 4) | (((h >> (2 * j + 1)) & 1) << 4));
			}
		k_lanes(q, x[b].qs, sc, lanes);
		for (int k = 0; k < 8; k++)
			acc[k] = fmaf(d, (float) lanes[k], acc[k]);
	}
	return hsum8(acc) + summs;
}

/* Q6_K x Q8_K row dot (ggml AVX2 order: unsigned q, minus 32*scale*bsums per lane). */
static float
dot_q6_K_scalar(const void *vw, const void *vx, int64_t n)
{
	const lm_block_q6_K *w = vw;
	const lm_block_q8_K *x = vx;
	float		acc[8] = {0};

	for (int64_t b = 0; b < n / 256; b++)
	{
		float		d = x[b].d * lm_fp16_to_fp32(w[b].d);
		const int8_t *sc = w[b].scales;
		int32_t		lanes[8] = {0};

		for (int j = 0; j < 2; j++)
		{
			const uint8_t *ql = w[b].ql + 64 * j;
			const uint8_t *qh = w[b].qh + 32 * j;

			for (int t = 0; t < 4; t++)
			{
				const int8_t *xq = x[b].qs + 128 * j + 32 * t;

				for (int k = 0; k < 8; k++)
				{
					int			s = 0;

					for (int e = 4 * k; e < 4 * k + 4; e++)
					{
						int			lo = (t & 1) ? ql[32 + e] : ql[e];
						int			q = ((t < 2) ? (lo & 0xF) : (lo >> 4)) | (((qh[e] >> (2 * t)) & 3) << 4);

						s += q * xq[e];
					}
					lanes[k] += sc[8 * j + 2 * t + k / 4] * s;
				}
			}
		}
		for (int k = 0; k < 8; k++)
		{
			lanes[k] -= 32 * (x[b].bsums[2 * k] * sc[2 * k] + x[b].bsums[2 * k + 1] * sc[2 * k + 1]);
			acc[k] = fmaf(d, (float) lanes[k], acc[k]);
		}
	}
	return hsum8(acc);
}

/* One weight row against one activation row. */
typedef float (*row_dot_fn) (const void *w, const void *x, int64_t n);

/* F32 row dot. */
static float
dot_f32_row(const void *w, const void *x, int64_t n)
{
	return dot_f32_scalar(w, x, n);
}

/* F16 row dot. */
static float
dot_f16_row(const void *w, const void *x, int64_t n)
{
	return dot_f16_scalar(w, x, n);
}

/* BF16 row dot. */
static float
dot_bf16_row(const void *w, const void *x, int64_t n)
{
	return dot_bf16_scalar(w, x, n);
}

/* Scalar row dot for a weight type, NULL if unsupported. */
static row_dot_fn
scalar_row_dot(lm_type t)
{
	switch (t)
	{
		case LM_TYPE_F32:
			return dot_f32_row;
		case LM_TYPE_F16:
			return dot_f16_row;
		case LM_TYPE_BF16:
			return dot_bf16_row;
		case LM_TYPE_Q4_0:
			return dot_q4_0_scalar;
		case LM_TYPE_Q4_1:
			return dot_q4_1_scalar;
		case LM_TYPE_Q5_0:
			return dot_q5_0_scalar;
		case LM_TYPE_Q5_1:
			return dot_q5_1_scalar;
		case LM_TYPE_Q8_0:
			return dot_q8_0_scalar;
		case LM_TYPE_Q4_K:
			return dot_q4_K_scalar;
		case LM_TYPE_Q5_K:
			return dot_q5_K_scalar;
		case LM_TYPE_Q6_K:
			return dot_q6_K_scalar;
		default:
			return NULL;
	}
}

/* Scalar matrix product: rows outer, batch inner. */
static void
rows_scalar(row_dot_fn dot, const void *W, size_t w_row_bytes, int64_t n_cols,
			int64_t r0, int64_t r1, const void *Xq, size_t xq_row_bytes, int n_batch,
			float *Y, int64_t y_stride)
{
	for (int64_t r = r0; r < r1; r++)
	{
		const char *w = (const char *) W + (size_t) r * w_row_bytes;

		for (int b = 0; b < n_batch; b++)
			Y[(int64_t) b * y_stride + r] = dot(w, (const char *) Xq + (size_t) b * xq_row_bytes, n_cols);
	}
}

/* ------------------------------------------------------------------ */
/* dispatch                                                             */
/* ------------------------------------------------------------------ */

static lm_kernel_table tables[3];	/* per ISA, lower ISAs filled in where NULL */
static lm_isa best_isa = LM_ISA_SCALAR;	/* what the CPU supports */
static lm_isa cur_isa = LM_ISA_SCALAR;	/* what is in use */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Probe the CPU and build the tables (runs once). */
static void
kernels_init_once(void)
{
	const char *env;

	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
	{
		/* F16C has no __builtin_cpu_supports name in older GCC; every AVX2 CPU has it */
		best_isa = LM_ISA_AVX2;
		if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
			__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
			__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("bmi2"))
			best_isa = LM_ISA_AVX512;
	}
	memset(tables, 0, sizeof(tables));
	if (best_isa >= LM_ISA_AVX2)
		lm_kernels_avx2_fill(&tables[LM_ISA_AVX2]);
	if (best_isa >= LM_ISA_AVX512)
		lm_kernels_avx512_fill(&tables[LM_ISA_AVX512]);
	/* an ISA without its own kernel for a type uses the next lower one */
	for (int i = 1; i < 3; i++)
	{
		for (int t = 0; t < LM_TYPE_COUNT; t++)
			if (tables[i].rows[t] == NULL)
				tables[i].rows[t] = tables[i - 1].rows[t];
		if (tables[i].dot_f32 == NULL)
			tables[i].dot_f32 = tables[i - 1].dot_f32;
	}

	cur_isa = best_isa;
	env = getenv("LMGEN_ISA");
	if (env != NULL)
	{
		if (strcmp(env, "scalar") == 0)
			cur_isa = LM_ISA_SCALAR;
		else if (strcmp(env, "avx2") == 0 && best_isa >= LM_ISA_AVX2)
			cur_isa = LM_ISA_AVX2;
	}
}

/* Detect the CPU once and select the best path (LMGEN_ISA may lower it). */
lm_isa
lm_kernels_init(void)
{
	pthread_once(&init_once, kernels_init_once);
	return cur_isa;
}

/* The path in use. */
lm_isa
lm_kernels_isa(void)
{
	return lm_kernels_init();
}

/* The best path the CPU supports. */
lm_isa
lm_kernels_best_isa(void)
{
	lm_kernels_init();
	return best_isa;
}

/* Force a path; false if the CPU lacks it. */
bool
lm_kernels_force_isa(lm_isa isa)
{
	lm_kernels_init();
	if ((int) isa < 0 || isa > best_isa)
		return false;
	cur_isa = isa;
	return true;
}

/* Name of a path. */
const char *
lm_isa_name(lm_isa isa)
{
	switch (isa)
	{
		case LM_ISA_SCALAR:
			return "scalar";
		case LM_ISA_AVX2:
			return "avx2";
		case LM_ISA_AVX512:
			return "avx512";
	}
	return "unknown";
}

/* Activation format ggml uses for a weight type. */
lm_type
lm_vec_dot_type(lm_type wtype)
{
	switch (wtype)
	{
		case LM_TYPE_F32:
		case LM_TYPE_F16:
		case LM_TYPE_BF16:
			return wtype;
		case LM_TYPE_Q4_0:
		case LM_TYPE_Q5_0:
		case LM_TYPE_Q8_0:
			return LM_TYPE_Q8_0;
		case LM_TYPE_Q4_1:
		case LM_TYPE_Q5_1:
			return LM_TYPE_Q8_1;
		case LM_TYPE_Q4_K:
		case LM_TYPE_Q5_K:
		case LM_TYPE_Q6_K:
			return LM_TYPE_Q8_K;
		default:
			return LM_TYPE_COUNT;
	}
}

/* True when lm_matmul_rows supports the weight type. */
bool
lm_kernels_supported(lm_type wtype)
{
	return scalar_row_dot(wtype) != NULL;
}

/* Bytes of one activation row. */
size_t
lm_act_row_size(lm_type wtype, int64_t n)
{
	lm_type		at = lm_vec_dot_type(wtype);
	const lm_type_traits *tr = lm_type_traits_get((uint32_t) at);

	if (tr == NULL || n < 0 || n % tr->block_size != 0)
		return 0;
	return (size_t) (n / tr->block_size) * tr->type_size;
}

/* Convert/quantize one activation row for weight type wtype. */
void
lm_act_quantize_row(lm_type wtype, const float *x, void *dst, int64_t n)
{
	switch (lm_vec_dot_type(wtype))
	{
		case LM_TYPE_F32:
			memmove(dst, x, (size_t) n * sizeof(float));
			break;
		case LM_TYPE_F16:
			if (lm_kernels_isa() >= LM_ISA_AVX2)
				lm_fp32_to_fp16_row_f16c(x, dst, n);
			else
				lm_fp32_to_fp16_row(x, dst, n);
			break;
		case LM_TYPE_BF16:
			for (int64_t i = 0; i < n; i++)
				((uint16_t *) dst)[i] = lm_fp32_to_bf16(x[i]);
			break;
		case LM_TYPE_Q8_0:
			if (lm_kernels_isa() == LM_ISA_AVX512)
				lm_quantize_row_q8_0_avx512(x, dst, n);
			else
				lm_quantize_row_q8_0(x, dst, n);
			break;
		case LM_TYPE_Q8_1:
			if (lm_kernels_isa() == LM_ISA_AVX512)
				lm_quantize_row_q8_1_avx512(x, dst, n);
			else
				lm_quantize_row_q8_1(x, dst, n);
			break;
		case LM_TYPE_Q8_K:
			if (lm_kernels_isa() == LM_ISA_AVX512)
				lm_quantize_row_q8_K_avx512(x, dst, n);
			else
				lm_quantize_row_q8_K(x, dst, n);
			break;
		default:
			break;
	}
}

/* Row-block matrix product through the selected path. */
void
lm_matmul_rows(lm_type wtype, const void *W, size_t w_row_bytes, int64_t n_cols,
			   int64_t r0, int64_t r1,
			   const void *Xq, size_t xq_row_bytes, int n_batch,
			   float *Y, int64_t y_stride)
{
	lm_isa		isa = lm_kernels_isa();
	row_dot_fn	dot;

	if ((unsigned) wtype >= LM_TYPE_COUNT || r1 <= r0 || n_batch <= 0)
		return;
	if (isa > LM_ISA_SCALAR && tables[isa].rows[wtype] != NULL)
	{
		tables[isa].rows[wtype] (W, w_row_bytes, n_cols, r0, r1, Xq, xq_row_bytes, n_batch, Y, y_stride);
		return;
	}
	dot = scalar_row_dot(wtype);
	if (dot != NULL)
		rows_scalar(dot, W, w_row_bytes, n_cols, r0, r1, Xq, xq_row_bytes, n_batch, Y, y_stride);
}

/* Canonical F32 dot through the selected path. */
float
lm_dot_f32(const float *a, const float *b, int64_t n)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa > LM_ISA_SCALAR && tables[isa].dot_f32 != NULL)
		return tables[isa].dot_f32(a, b, n);
	return dot_f32_scalar(a, b, n);
}
