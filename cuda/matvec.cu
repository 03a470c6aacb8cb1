/*
 * matvec.cu — fused dequantize + matrix-vector product for small batches
 * (decode): y[t][r] = W[r] . x[t] for up to LMC_MATVEC_MAX_TOKENS tokens,
 * straight from the raw quantized rows (each weight byte is read once per
 * step for all tokens, which is what decoding is bound by).
 *
 * A block first copies the tokens' activations to shared memory, laid out
 * so that lanes reading consecutive chunks hit consecutive banks, then each
 * warp takes whole output rows (a grid-stride loop: at most MV_MAX_BLOCKS
 * blocks, so the activations are read from L2 once per block, not once per
 * row): lane l takes chunks l, l+32, ... of the row, dequantizes each
 * (dequant.cuh, the exact weights) and accumulates its products with every
 * token's activations into per-token fma chains; the 32 lane sums are then
 * combined by a shuffle tree.  A token's result does
 * not depend on the other tokens of the call (each has its own chains), so
 * a sequence gets the same logits alone or in a batch on this path.
 */
#include "dequant.cuh"

/* Warps per block (each takes rows r, r + gridDim.x * MV_WARPS, ...). */
#define MV_WARPS 8

/* Most blocks per launch (more rows per warp beyond: the activations are loaded once per block). */
#define MV_MAX_BLOCKS 1024

/* Shared memory a launch may take for the activations (bytes; tokens are split into launches beyond). */
#define MV_SMEM_MAX (192 * 1024)

/* Chunks per token row in shared memory: odd, so that both the fill and the lanes' reads miss bank conflicts. */
__host__ __device__ __forceinline__ int
mv_pitch(int n_cols)
{
	int			nch = (n_cols + 31) / 32;

	return nch | 1;
}

/* y[t][r] for the rows of this block's warps. */
template <int T>
__global__ void
__launch_bounds__(MV_WARPS * 32)
matvec_kernel(const uint8_t *w, size_t row_bytes, int n_rows, int n_cols, const float *x, int ldx, float *y,
			  int ldy, int n)
{
	/* the activations, transposed by chunk: element 32 c + j of token t at xs[(t * 32 + j) * pitch + c] */
	extern __shared__ float xs[];
	int			lane = threadIdx.x & 31,
				n_chunks = (n_cols + 31) / 32,
				pitch = mv_pitch(n_cols);

	for (int i = threadIdx.x; i < n * 32 * n_chunks; i += blockDim.x)
	{
		int			t = i / (32 * n_chunks),
					e = i - t * 32 * n_chunks;

		xs[(t * 32 + (e & 31)) * pitch + (e >> 5)] = e < n_cols ? x[(size_t) t * ldx + e] : 0.0f;
	}
	__syncthreads();

	for (int r = blockIdx.x * MV_WARPS + (threadIdx.x >> 5); r < n_rows; r += gridDim.x * MV_WARPS)
	{
		const uint8_t *row = w + (size_t) r * row_bytes;
		float		acc[LMC_MATVEC_MAX_TOKENS];

#pragma unroll
		for (int t = 0; t < LMC_MATVEC_MAX_TOKENS; t++)
			acc[t] = 0.0f;
		for (int c = lane; c < n_chunks; c += 32)
		{
			float		v[32];

			lmc_deq32<T>(row, c, n_cols, v);
#pragma unroll
			for (int t = 0; t < LMC_MATVEC_MAX_TOKENS; t++)
			{
				const float *xt = xs + (size_t) t * 32 * pitch + c;

				if (t >= n)
					break;
#pragma unroll
				for (int j = 0; j < 32; j++)
					acc[t] = __fmaf_rn(v[j], xt[j * pitch], acc[t]);
			}
		}
#pragma unroll
		for (int t = 0; t < LMC_MATVEC_MAX_TOKENS; t++)
		{
			float		s;

			if (t >= n)
				break;
			s = lmc_warp_sum(acc[t]);
			if (lane == 0)
				y[(size_t) t * ldy + r] = s;
		}
	}
}

/* Launch of matvec_kernel for one type. */
template <int T>
struct matvec_launch
{
	/* Launch over n_rows rows, as many tokens per launch as shared memory holds. */
	static void run(cudaStream_t s, const void *w, size_t row_bytes, int n_rows, int n_cols, const float *x,
					int ldx, float *y, int ldy, int n)
	{
		size_t		per_token = sizeof(float) * 32 * (size_t) mv_pitch(n_cols);
		int			tn = (int) (MV_SMEM_MAX / per_token),	/* >= 1: lmc_matvec checked the row length */
					rb = (n_rows + MV_WARPS - 1) / MV_WARPS;
		unsigned	blocks = (unsigned) (rb < MV_MAX_BLOCKS ? rb : MV_MAX_BLOCKS);

		for (int t0 = 0; t0 < n; t0 += tn)
		{
			int			k = n - t0 < tn ? n - t0 : tn;

			matvec_kernel<T><<<blocks, MV_WARPS * 32, per_token * (size_t) k, s>>>(
				(const uint8_t *) w, row_bytes, n_rows, n_cols, x + (size_t) t0 * ldx, ldx, y + (size_t) t0 * ldy,
				ldy, k);
		}
	}
};

/* Let matvec_kernel of one type take MV_SMEM_MAX bytes of shared memory. */
template <int T>
struct matvec_prepare
{
	/* Set the attribute; its error, if any, is left for cudaGetLastError. */
	static void run(cudaError_t *e)
	{
		cudaError_t r = cudaFuncSetAttribute(matvec_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
											 MV_SMEM_MAX);

		if (r != cudaSuccess)
			*e = r;
	}
};

/* Before any launch (and outside graph capture): let every type's kernel take its shared memory. */
cudaError_t
lmc_matvec_prepare(void)
{
	cudaError_t e = cudaSuccess;

	for (int t = 0; t < LM_TYPE_COUNT; t++)
		if (lmc_type_supported((lm_type) t))
			(void) lmc_dispatch_type<matvec_prepare>((lm_type) t, &e);
	return e;
}

/* y = W x for n <= LMC_MATVEC_MAX_TOKENS tokens. */
cudaError_t
lmc_matvec(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int n_rows, int n_cols, const float *x,
		   int ldx, float *y, int ldy, int n)
{
	/* a row whose activations do not fit shared memory even for one token is refused */
	if (n < 1 || n > LMC_MATVEC_MAX_TOKENS || n_rows < 1 || n_cols < 1 || ldx < n_cols || ldy < n_rows ||
		sizeof(float) * 32 * (size_t) mv_pitch(n_cols) > MV_SMEM_MAX)
		return cudaErrorInvalidValue;
	if (!lmc_dispatch_type<matvec_launch>(t, s, w, row_bytes, n_rows, n_cols, x, ldx, y, ldy, n))
		return cudaErrorInvalidValue;
	return cudaGetLastError();
}
