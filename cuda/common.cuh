/*
 * common.cuh — what the .cu files of the CUDA backend share: the engine's
 * exponential on the device, warp reductions, and the kernel launchers
 * each .cu file provides (all asynchronous on the given stream; each
 * returns the launch's cudaError_t so the backend checks every one).
 *
 * Floating-point rules: nothing here is built with fast math; where the CPU
 * code's rounding matters (dequantization, norms, RoPE, the activations),
 * the kernels spell products and fmas with __fmul_rn / __fmaf_rn so nvcc
 * cannot contract or reorder them.
 */
#ifndef LMGEN_CUDA_COMMON_CUH
#define LMGEN_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* the engine's headers are C: their functions keep C linkage here */
extern "C"
{
#include "kvcache.h"
#include "model.h"
#include "tensor_types.h"
}
#include "lmgen_cuda.h"

/* True when a grid of x * y * z blocks can be launched (x up to 2^31-1, y and z up to 65535). */
static inline bool
LMC_GRID_OK(int64_t x, int64_t y, int64_t z)
{
	return x >= 1 && x <= 0x7fffffffLL && y >= 1 && y <= 65535 && z >= 1 && z <= 65535;
}

/*
 * Correctly rounded float operations that nvcc may not contract or
 * reorder, usable in __host__ __device__ code: the intrinsics on the
 * device, plain operations on the host (built with -ffp-contract=off), so
 * test/unit/test_cuda_dequant.cu can run the same code on the CPU.
 */
#ifdef __CUDA_ARCH__
#define LMC_UNROLL _Pragma("unroll")
#define LMC_MUL(a, b) __fmul_rn((a), (b))
#define LMC_ADD(a, b) __fadd_rn((a), (b))
#define LMC_SUB(a, b) __fsub_rn((a), (b))
#define LMC_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define LMC_DIV(a, b) __fdiv_rn((a), (b))
#define LMC_F32_BITS(u) __uint_as_float(u)
#else
#define LMC_UNROLL
#define LMC_MUL(a, b) ((float) (a) * (float) (b))
#define LMC_ADD(a, b) ((float) (a) + (float) (b))
#define LMC_SUB(a, b) ((float) (a) - (float) (b))
#define LMC_FMA(a, b, c) fmaf((a), (b), (c))
#define LMC_DIV(a, b) ((float) (a) / (float) (b))
#define LMC_F32_BITS(u) lmc_host_f32_bits(u)

/* Float with bits u (host). */
static inline float
lmc_host_f32_bits(uint32_t u)
{
	float		f;

	memcpy(&f, &u, sizeof f);
	return f;
}
#endif

/* model_ops.c's lm_op_expf (ggml's vector exp) on the device, same operations in the same order. */
__host__ __device__ __forceinline__ float
lmc_expf(float x)
{
	const float r = 0x1.8p23f;
	float		z = LMC_FMA(x, 0x1.715476p+0f, r),
				n = LMC_SUB(z, r),
				b = LMC_FMA(-n, 0x1.7f7d1cp-20f, LMC_FMA(-n, 0x1.62e4p-1f, x)),
				u = LMC_MUL(b, b),
				j = LMC_FMA(LMC_FMA(LMC_FMA(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
									LMC_FMA(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
							u, LMC_FMA(0x1.ffffecp-1f, b, 1.0f));
	int			ni,
				e1;

	if (fabsf(n) > 192.0f)
		return n <= 0.0f ? 0.0f : LMC_F32_BITS(0x7f800000u);
	if (isnan(n))
		return j;
	ni = (int) n;
	e1 = ni >= 0 ? ni / 2 : -((1 - ni) / 2);
	return LMC_MUL(LMC_MUL(j, LMC_F32_BITS((uint32_t) (e1 + 127) << 23)), LMC_F32_BITS((uint32_t) (ni - e1 + 127) << 23));
}

/*
 * SwiGLU of one element, model_ops.c's lm_op_swiglu_row: (g / (1 + e)) * u
 * with e = lm_op_expf(-g) inside the row's first multiple of 16 elements
 * (vector_part), libm's / CUDA's expf(-g) past it.
 */
__host__ __device__ __forceinline__ float
lmc_swiglu1(float g, float u, bool vector_part)
{
	float		e = vector_part ? lmc_expf(-g) : expf(-g);

	return LMC_MUL(LMC_DIV(g, LMC_ADD(1.0f, e)), u);
}

/* GEGLU of one element through the fp16 GELU table, model_gemma3.c's geglu. */
__host__ __device__ __forceinline__ float
lmc_geglu1(float g, float u, const uint16_t *table)
{
	if (g <= -10.0f)
		return 0.0f;
	if (g >= 10.0f)
		return LMC_MUL(g, u);
	return LMC_MUL(__half2float(__ushort_as_half(table[__half_as_ushort(__float2half_rn(g))])), u);
}

/* Sum of v over the 32 lanes of a warp, every lane gets it. */
__device__ __forceinline__ float
lmc_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* Double sum over the lanes of a warp, every lane gets it. */
__device__ __forceinline__ double
lmc_warp_sum_d(double v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* Launchers (defined in the .cu file named beside each). */

/* dequant.cu: rows of a raw weight to F32 / BF16 / FP16 (out_type 0 / 1 / 2), n_cols per output row. */
cudaError_t lmc_dequantize(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int64_t n_rows,
						   int64_t n_cols, void *out, int out_type);

/* dequant.cu: x[t] = row token[t] of the embedding matrix, times scale when scaled. */
cudaError_t lmc_embed(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int n_cols,
					  const int32_t *token, int n, float *x, bool scaled, float scale);

/* matvec.cu: y[t][r] = W[r] . x[t] for n <= LMC_MATVEC_MAX_TOKENS tokens on raw weights (ldx, ldy in floats). */
cudaError_t lmc_matvec(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int n_rows, int n_cols,
					   const float *x, int ldx, float *y, int ldy, int n);

/* matvec.cu: once per process before lmc_matvec (sets the kernels' shared memory limit; not capturable). */
cudaError_t lmc_matvec_prepare(void);

/* gemm.cu: n floats to BF16 (bf16) or FP16. */
cudaError_t lmc_to_half(cudaStream_t s, const float *x, void *out, int64_t n, bool bf16);

/* gemm.cu: element type of the dense weight copies (and GEMM inputs) of a mode: 0 F32, 1 BF16, 2 FP16. */
int			lmc_gemm_elem_type(lmc_gemm_mode mode);

/*
 * gemm.cu: Y (n x n_rows, row stride ldy) = X (n x n_cols, row-major, of the
 * mode's element type) times W^T, W the dense copy (n_rows x n_cols).
 */
cublasStatus_t lmc_gemm(cublasHandle_t h, lmc_gemm_mode mode, const void *w, int n_rows, int n_cols,
						const void *x, int n, float *y, int ldy);

/* norm.cu: per token, [d = rmsnorm(d)*post; x += d] or [x += d when add]; then xb = rmsnorm(x)*pre when pre. */
cudaError_t lmc_residual_norm(cudaStream_t s, float *x, float *d, float *xb, const float *post,
							  const float *pre, bool add, int n, int E, float eps);

/* norm.cu: out[k] = rmsnorm(x[idx[k]]) * w for k < n (idx NULL: k itself). */
cudaError_t lmc_gather_norm(cudaStream_t s, const float *x, const int32_t *idx, float *out, const float *w,
							int n, int E, float eps);

/* norm.cu: out[k] = in[idx[k]] rows of E floats. */
cudaError_t lmc_gather_rows(cudaStream_t s, const float *in, const int32_t *idx, float *out, int n, int E);

/* What the Q/K kernel of one layer needs. */
typedef struct lmc_qk_params
{
	float	   *q;				/* (n, n_head * hdk) */
	float	   *k;				/* (n, n_head_kv * hdk) */
	const float *v;				/* (n, n_head_kv * hdv) */
	const int32_t *pos;			/* (n) positions */
	const int32_t *row;			/* (n) sequence rows */
	const uint64_t *table;		/* (rows, mb) block addresses */
	int			mb;				/* table entries per row */
	const float *rope_cs;		/* (n_ctx, n_rot) cos/sin per position */
	const float *q_norm;		/* (hdk) per-head query norm, or NULL */
	const float *k_norm;		/* (hdk) per-head key norm, or NULL */
	float		eps;			/* RMSNorm epsilon */
	float		q_scale;		/* queries times this when scale_q */
	bool		scale_q;		/* multiply queries (gemma3) */
	int			n;				/* tokens */
	int			n_head;			/* query heads */
	int			n_head_kv;		/* key/value heads */
	int			hdk;			/* key width per head */
	int			hdv;			/* value width per head */
	int			n_rot;			/* rotated dimensions */
	bool		neox;			/* NEOX pairing */
	int			layer;			/* layer index */
	size_t		v_off;			/* floats from a block's start to its values */
} lmc_qk_params;

/* rope_kv.cu: per-head Q/K norms, RoPE, query scale, then keys and values into their KV blocks. */
cudaError_t lmc_qk_rope_store(cudaStream_t s, const lmc_qk_params *p);

/* What the attention of one layer needs. */
typedef struct lmc_att_params
{
	const float *q;				/* (n, n_head * hdk) */
	float	   *out;			/* (n, n_head * hdv) */
	float	   *part;			/* (n, n_head, n_splits, hdv + 2) partial sums when n_splits > 1 */
	const int32_t *pos;			/* (n) positions */
	const int32_t *row;			/* (n) sequence rows */
	const uint64_t *table;		/* (rows, mb) block addresses */
	int			mb;				/* table entries per row */
	int			n;				/* tokens */
	int			n_head;			/* query heads */
	int			group;			/* query heads per KV head */
	int			hdk;			/* key width per head */
	int			hdv;			/* value width per head */
	int			layer;			/* layer index */
	size_t		v_off;			/* floats from a block's start to its values */
	float		scale;			/* multiplies every score */
	int			n_swa;			/* window (0 = none) */
	int			split;			/* positions per split */
	int			n_splits;		/* splits */
} lmc_att_params;

/* attention.cu: causal (windowed) GQA attention over the paged KV pool. */
cudaError_t lmc_attention(cudaStream_t s, const lmc_att_params *p);

/* activation.cu: hb = silu(hb) * hb2 over n rows of F (model_ops.c's lm_op_swiglu_row). */
cudaError_t lmc_swiglu(cudaStream_t s, float *hb, const float *hb2, int n, int F);

/* activation.cu: hb = gelu(hb) * hb2 through the fp16 table (model_gemma3.c's geglu). */
cudaError_t lmc_geglu(cudaStream_t s, float *hb, const float *hb2, const uint16_t *table, int64_t count);

/* activation.cu: l = tanh(l / cap) * cap for count logits. */
cudaError_t lmc_softcap(cudaStream_t s, float *l, int64_t count, float cap);

/* logits.cu: argmax (lowest index among equal maxima) of each of n rows of V floats. */
cudaError_t lmc_argmax(cudaStream_t s, const float *l, int n, int V, int32_t *out);

#endif							/* LMGEN_CUDA_COMMON_CUH */
