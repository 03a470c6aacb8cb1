/*
 * matvec.cu — fused dequantize + matrix-vector product for small batches
 * (decode): y[t][r] = W[r] . x[t] for up to LMC_MATVEC_MAX_TOKENS tokens,
 * straight from the raw quantized rows (each weight byte is read once per
 * step for all tokens, which is what decoding is bound by).
 *
 * One warp per output row: lane l takes chunks l, l+32, ... of the row,
 * dequantizes each (dequant.cuh, the exact weights) and accumulates its
 * products with every token's activations into per-token fma chains; the
 * 32 lane sums are then combined by a shuffle tree.  A token's result does
 * not depend on the other tokens of the call (each has its own chains), so
 * a sequence gets the same logits alone or in a batch on this path.
 */
#include "dequant.cuh"

/* Warps (rows) per block. */
#define MV_WARPS 8

/* y[t][r] for the rows of this block's warps. */
template <int T>
__global__ void
__launch_bounds__(MV_WARPS * 32)
matvec_kernel(const uint8_t *w, size_t row_bytes, int n_rows, int n_cols, const float *x, int ldx, float *y,
			  int ldy, int n)
{
	int			r = blockIdx.x * MV_WARPS + (threadIdx.x >> 5),
				lane = threadIdx.x & 31,
				n_chunks = (n_cols + 31) / 32;
	const uint8_t *row;
	float		acc[LMC_MATVEC_MAX_TOKENS];

	if (r >= n_rows)
		return;
	row = w + (size_t) r * row_bytes;
#pragma unroll
	for (int t = 0; t < LMC_MATVEC_MAX_TOKENS; t++)
		acc[t] = 0.0f;
	for (int c = lane; c < n_chunks; c += 32)
	{
		float		v[32];
		int			nj = n_cols - c * 32 < 32 ? n_cols - c * 32 : 32;

		lmc_deq32<T>(row, c, n_cols, v);
#pragma unroll
		for (int t = 0; t < LMC_MATVEC_MAX_TOKENS; t++)
		{
			const float *xt = x + (size_t) t * ldx + (size_t) c * 32;

			if (t >= n)
				break;
			if (nj == 32)
			{
#pragma unroll
				for (int j = 0; j < 32; j++)
					acc[t] = __fmaf_rn(v[j], __ldg(xt + j), acc[t]);
			}
			else
				for (int j = 0; j < nj; j++)
					acc[t] = __fmaf_rn(v[j], __ldg(xt + j), acc[t]);
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

/* Launch of matvec_kernel for one type. */
template <int T>
struct matvec_launch
{
	/* Launch over n_rows rows. */
	static void run(cudaStream_t s, const void *w, size_t row_bytes, int n_rows, int n_cols, const float *x,
					int ldx, float *y, int ldy, int n)
	{
		unsigned	blocks = (unsigned) ((n_rows + MV_WARPS - 1) / MV_WARPS);

		matvec_kernel<T><<<blocks, MV_WARPS * 32, 0, s>>>((const uint8_t *) w, row_bytes, n_rows, n_cols, x, ldx,
														   y, ldy, n);
	}
};

/* y = W x for n <= LMC_MATVEC_MAX_TOKENS tokens. */
cudaError_t
lmc_matvec(cudaStream_t s, lm_type t, const void *w, size_t row_bytes, int n_rows, int n_cols, const float *x,
		   int ldx, float *y, int ldy, int n)
{
	if (n < 1 || n > LMC_MATVEC_MAX_TOKENS || n_rows < 1 || n_cols < 1 || ldx < n_cols || ldy < n_rows)
		return cudaErrorInvalidValue;
	if (!lmc_dispatch_type<matvec_launch>(t, s, w, row_bytes, n_rows, n_cols, x, ldx, y, ldy, n))
		return cudaErrorInvalidValue;
	return cudaGetLastError();
}
