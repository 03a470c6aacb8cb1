/*
 * dequant.cu — dequantization kernels: whole weight matrices into F32,
 * BF16 or FP16 copies (made once at upload for the GEMM path, and by the
 * device check against quant.c), and the token-embedding gather.
 *
 * One thread dequantizes one 32-element chunk (dequant.cuh); threads walk
 * the chunks of the matrix in a grid-stride loop, so any size fits one
 * launch of bounded grid.
 */
#include "dequant.cuh"

/* Threads per block of these kernels. */
#define DEQ_THREADS 256

/* Most blocks of a grid-stride launch. */
#define DEQ_MAX_BLOCKS 65536

/* Store a float as F32, BF16 or FP16. */
template <int O>
__device__ __forceinline__ void
deq_store(void *out, int64_t i, float v)
{
	if constexpr (O == 0)
		((float *) out)[i] = v;
	else if constexpr (O == 1)
		((__nv_bfloat16 *) out)[i] = __float2bfloat16_rn(v);
	else
		((__half *) out)[i] = __float2half_rn(v);
}

/* Dequantize every chunk of n_rows rows into out (row-major, n_cols per row). */
template <int T, int O>
__global__ void
deq_kernel(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, void *out)
{
	int64_t		n_chunks = (n_cols + 31) / 32,
				total = n_rows * n_chunks;

	for (int64_t id = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; id < total;
		 id += (int64_t) gridDim.x * blockDim.x)
	{
		int64_t		r = id / n_chunks,
					c = id % n_chunks;
		float		v[32];

		lmc_deq32<T>(w + r * row_bytes, c, n_cols, v);
#pragma unroll
		for (int j = 0; j < 32; j++)
			if (c * 32 + j < n_cols)
				deq_store<O>(out, r * n_cols + c * 32 + j, v[j]);
	}
}

/* Launch of deq_kernel for one type (lmc_dispatch_type's functor). */
template <int T>
struct deq_launch
{
	/* Launch for output type O. */
	static void run(cudaStream_t s, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols,
					void *out, int out_type)
	{
		int64_t		total = n_rows * ((n_cols + 31) / 32),
					blocks = (total + DEQ_THREADS - 1) / DEQ_THREADS;

		if (blocks > DEQ_MAX_BLOCKS)
			blocks = DEQ_MAX_BLOCKS;
		if (blocks < 1)
			return;
		if (out_type == 0)
			deq_kernel<T, 0><<<(unsigned) blocks, DEQ_THREADS, 0, s>>>((const uint8_t *) w, row_bytes, n_rows, n_cols, out);
		else if (out_type == 1)
			deq_kernel<T, 1><<<(unsigned) blocks, DEQ_THREADS, 0, s>>>((const uint8_t *) w, row_bytes, n_rows, n_cols, out);
		else
			deq_kernel<T, 2><<<(unsigned) blocks, DEQ_THREADS, 0, s>>>((const uint8_t *) w, row_bytes, n_rows, n_cols, out);
	}
};

/* Dequantize a weight matrix on the device. */
cudaError_t
lmc_dequantize(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols,
			   void *out, int out_type)
{
	if (n_rows < 0 || n_cols < 0 || out_type < 0 || out_type > 2)
		return cudaErrorInvalidValue;
	if (!lmc_dispatch_type<deq_launch>(t, s, w, row_bytes, n_rows, n_cols, out, out_type))
		return cudaErrorInvalidValue;
	return cudaGetLastError();
}

/* x[t] = (scaled) embedding row token[t]; one block per token, one thread per chunk. */
template <int T>
__global__ void
embed_kernel(const uint8_t *w, size_t row_bytes, int n_cols, const int32_t *token, float *x, bool scaled,
			 float scale)
{
	int			t = blockIdx.x,
				n_chunks = (n_cols + 31) / 32;
	const uint8_t *row = w + (size_t) token[t] * row_bytes;
	float	   *xt = x + (size_t) t * n_cols;

	for (int c = threadIdx.x; c < n_chunks; c += blockDim.x)
	{
		float		v[32];

		lmc_deq32<T>(row, c, n_cols, v);
#pragma unroll
		for (int j = 0; j < 32; j++)
			if (c * 32 + j < n_cols)
				xt[c * 32 + j] = scaled ? __fmul_rn(v[j], scale) : v[j];
	}
}

/* Launch of embed_kernel for one type. */
template <int T>
struct embed_launch
{
	/* Launch over n tokens. */
	static void run(cudaStream_t s, const void *w, size_t row_bytes, int n_cols, const int32_t *token, int n,
					float *x, bool scaled, float scale)
	{
		embed_kernel<T><<<n, 64, 0, s>>>((const uint8_t *) w, row_bytes, n_cols, token, x, scaled, scale);
	}
};

/* Gather the embedding rows of n tokens (ids checked on the host). */
cudaError_t
lmc_embed(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int n_cols, const int32_t *token, int n,
		  float *x, bool scaled, float scale)
{
	if (!LMC_GRID_OK((int64_t) n, 1, 1) || n_cols < 1)
		return cudaErrorInvalidValue;
	if (!lmc_dispatch_type<embed_launch>(t, s, w, row_bytes, n_cols, token, n, x, scaled, scale))
		return cudaErrorInvalidValue;
	return cudaGetLastError();
}
