/*
 * logits.cu — greedy argmax of logits rows on the device: the largest
 * value, and among equal maxima the lowest index (device.h).  One block per
 * row; each thread scans a strided part of the row keeping its first
 * maximum, then (value, index) pairs are merged by a tree that prefers the
 * larger value and, on equal values, the smaller index.  NaN never wins
 * over a number.
 */
#include "common.cuh"

/* Threads per row. */
#define AM_THREADS 512

/* True when (v, i) beats (bv, bi). */
__device__ __forceinline__ bool
am_better(float v, int i, float bv, int bi)
{
	if (bi < 0)
		return i >= 0;
	if (i < 0 || isnan(v))
		return false;
	if (isnan(bv))
		return true;
	return v > bv || (v == bv && i < bi);
}

/* Argmax of row blockIdx.x. */
__global__ void
__launch_bounds__(AM_THREADS)
argmax_kernel(const float *l, int V, int32_t *out)
{
	__shared__ float sv[AM_THREADS];
	__shared__ int si[AM_THREADS];
	const float *row = l + (size_t) blockIdx.x * V;
	float		bv = 0.0f;
	int			bi = -1;

	for (int i = threadIdx.x; i < V; i += AM_THREADS)
		if (am_better(row[i], i, bv, bi))
		{
			bv = row[i];
			bi = i;
		}
	sv[threadIdx.x] = bv;
	si[threadIdx.x] = bi;
	__syncthreads();
	for (int w = AM_THREADS / 2; w > 0; w >>= 1)
	{
		if (threadIdx.x < w && am_better(sv[threadIdx.x + w], si[threadIdx.x + w], sv[threadIdx.x], si[threadIdx.x]))
		{
			sv[threadIdx.x] = sv[threadIdx.x + w];
			si[threadIdx.x] = si[threadIdx.x + w];
		}
		__syncthreads();
	}
	if (threadIdx.x == 0)
		out[blockIdx.x] = si[0] < 0 ? 0 : si[0];
}

/* Argmax of n rows of V logits. */
cudaError_t
lmc_argmax(cudaStream_t s, const float *l, int n, int V, int32_t *out)
{
	if (!LMC_GRID_OK(n, 1, 1) || V < 1)
		return cudaErrorInvalidValue;
	argmax_kernel<<<n, AM_THREADS, 0, s>>>(l, V, out);
	return cudaGetLastError();
}
