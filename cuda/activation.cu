/*
 * activation.cu — the feed-forward gates and the logit soft-cap (the
 * per-element gates are common.cuh's lmc_swiglu1 / lmc_geglu1, which
 * test/unit/test_cuda_dequant.cu also runs on the CPU against the engine).
 *
 *   SwiGLU  model_ops.c's lm_op_swiglu_row: g = (g / (1 + exp(-g))) * u,
 *           exp being lm_op_expf (lmc_expf here, the same operations) for
 *           the first F rounded down to 16 elements of a row, and libm's
 *           expf for the rest (CUDA's expf here: the one place the floats
 *           may differ, and only when n_ff is not a multiple of 16).
 *   GEGLU   model_gemma3.c's geglu: g <= -10 gives 0, g >= 10 gives g * u,
 *           else the fp16 table entry of fp16(g) (round to nearest even,
 *           as lm_fp32_to_fp16), times u; the table is the engine's own,
 *           uploaded.
 *   softcap tanhf(l * (1 / cap)) * cap (CUDA's tanhf: may differ from
 *           glibc's by an ulp; gemma3 files with a sliding window never
 *           use it).
 */
#include "common.cuh"

/* SwiGLU over n rows of F, grid-stride. */
__global__ void
swiglu_kernel(float *hb, const float *hb2, int64_t count, int F)
{
	int			F16 = F & ~15;

	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (int64_t) gridDim.x * blockDim.x)
	{
		hb[i] = lmc_swiglu1(hb[i], hb2[i], (int) (i % F) < F16);
	}
}

/* Blocks for a grid-stride launch over count elements. */
static unsigned
stride_blocks(int64_t count)
{
	int64_t		b = (count + 255) / 256;

	return (unsigned) (b > 65536 ? 65536 : b < 1 ? 1 : b);
}

/* SwiGLU of n rows. */
cudaError_t
lmc_swiglu(cudaStream_t s, float *hb, const float *hb2, int n, int F)
{
	if (n < 1 || F < 1)
		return cudaErrorInvalidValue;
	swiglu_kernel<<<stride_blocks((int64_t) n * F), 256, 0, s>>>(hb, hb2, (int64_t) n * F, F);
	return cudaGetLastError();
}

/* GEGLU through the table, grid-stride. */
__global__ void
geglu_kernel(float *hb, const float *hb2, const uint16_t *table, int64_t count)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (int64_t) gridDim.x * blockDim.x)
	{
		hb[i] = lmc_geglu1(hb[i], hb2[i], table);
	}
}

/* GEGLU of count elements. */
cudaError_t
lmc_geglu(cudaStream_t s, float *hb, const float *hb2, const uint16_t *table, int64_t count)
{
	if (count < 1)
		return cudaErrorInvalidValue;
	geglu_kernel<<<stride_blocks(count), 256, 0, s>>>(hb, hb2, table, count);
	return cudaGetLastError();
}

/* Soft-cap, grid-stride. */
__global__ void
softcap_kernel(float *l, int64_t count, float cap)
{
	float		inv = 1.0f / cap;

	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (int64_t) gridDim.x * blockDim.x)
		l[i] = __fmul_rn(tanhf(__fmul_rn(l[i], inv)), cap);
}

/* Soft-cap count logits. */
cudaError_t
lmc_softcap(cudaStream_t s, float *l, int64_t count, float cap)
{
	if (count < 1 || !(cap > 0.0f))
		return cudaErrorInvalidValue;
	softcap_kernel<<<stride_blocks(count), 256, 0, s>>>(l, count, cap);
	return cudaGetLastError();
}
