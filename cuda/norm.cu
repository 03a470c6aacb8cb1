/*
 * norm.cu — RMSNorm with the residual adds around it, the final norm of the
 * output rows, and row gathers.
 *
 * RMSNorm is model_ops.c's lm_op_rmsnorm: the squares rounded to float,
 * summed in double (here a block-wide tree instead of a sequential loop:
 * a double sum of at most a few thousand float squares rounds to the same
 * float mean in all but freak cases), mean = (float)(sum / n), scale =
 * 1/sqrtf(mean + eps) (IEEE division and square root: no fast math), then
 * (x * scale) * w.  One block of NORM_THREADS threads per row.
 */
#include "common.cuh"

/* Threads per row. */
#define NORM_THREADS 256

/* Sum of v over the block (NORM_THREADS threads); every thread gets it. */
__device__ __forceinline__ double
block_sum_d(double v)
{
	__shared__ double part[NORM_THREADS / 32];
	int			lane = threadIdx.x & 31,
				wid = threadIdx.x >> 5;

	v = lmc_warp_sum_d(v);
	__syncthreads();			/* part may still be read by a previous call */
	if (lane == 0)
		part[wid] = v;
	__syncthreads();
	v = 0.0;
	for (int w = 0; w < NORM_THREADS / 32; w++)
		v += part[w];
	return v;
}

/* The RMSNorm scale of a row of E floats. */
__device__ __forceinline__ float
row_rms_scale(const float *x, int E, float eps)
{
	double		s = 0.0;
	float		mean;

	for (int i = threadIdx.x; i < E; i += NORM_THREADS)
		s += (double) __fmul_rn(x[i], x[i]);
	s = block_sum_d(s);
	mean = (float) (s / E);
	return 1.0f / sqrtf(__fadd_rn(mean, eps));
}

/* One row: [d = rmsnorm(d) * post; x = d + x] or [x = d + x when add]; xb = rmsnorm(x) * pre when pre. */
__global__ void
__launch_bounds__(NORM_THREADS)
residual_norm_kernel(float *x, float *d, float *xb, const float *post, const float *pre, bool add, int E, float eps)
{
	size_t		o = (size_t) blockIdx.x * E;

	x += o;
	d += o;
	if (post)
	{
		float		sc = row_rms_scale(d, E, eps);

		for (int i = threadIdx.x; i < E; i += NORM_THREADS)
		{
			float		di = __fmul_rn(__fmul_rn(d[i], sc), post[i]);

			d[i] = di;
			x[i] = __fadd_rn(di, x[i]);
		}
	}
	else if (add)
		for (int i = threadIdx.x; i < E; i += NORM_THREADS)
			x[i] = __fadd_rn(d[i], x[i]);
	if (pre)
	{
		float		sc;

		__syncthreads();		/* x rows written by other threads above */
		sc = row_rms_scale(x, E, eps);
		for (int i = threadIdx.x; i < E; i += NORM_THREADS)
			xb[o + i] = __fmul_rn(__fmul_rn(x[i], sc), pre[i]);
	}
}

/* Residual adds and norms of n rows. */
cudaError_t
lmc_residual_norm(cudaStream_t s, float *x, float *d, float *xb, const float *post, const float *pre, bool add,
				  int n, int E, float eps)
{
	if (!LMC_GRID_OK(n, 1, 1) || E < 1)
		return cudaErrorInvalidValue;
	residual_norm_kernel<<<n, NORM_THREADS, 0, s>>>(x, d, xb, post, pre, add, E, eps);
	return cudaGetLastError();
}

/* out[k] = rmsnorm(x[idx[k]]) * w. */
__global__ void
__launch_bounds__(NORM_THREADS)
gather_norm_kernel(const float *x, const int32_t *idx, float *out, const float *w, int E, float eps)
{
	int			k = blockIdx.x;
	const float *xr = x + (size_t) (idx ? idx[k] : k) * E;
	float		sc = row_rms_scale(xr, E, eps);

	for (int i = threadIdx.x; i < E; i += NORM_THREADS)
		out[(size_t) k * E + i] = __fmul_rn(__fmul_rn(xr[i], sc), w[i]);
}

/* Final norm of the n output rows. */
cudaError_t
lmc_gather_norm(cudaStream_t s, const float *x, const int32_t *idx, float *out, const float *w, int n, int E,
				float eps)
{
	if (!LMC_GRID_OK(n, 1, 1) || E < 1)
		return cudaErrorInvalidValue;
	gather_norm_kernel<<<n, NORM_THREADS, 0, s>>>(x, idx, out, w, E, eps);
	return cudaGetLastError();
}

/* out[k] = in[idx[k]]. */
__global__ void
gather_rows_kernel(const float *in, const int32_t *idx, float *out, int E)
{
	int			k = blockIdx.x;

	for (int i = threadIdx.x; i < E; i += blockDim.x)
		out[(size_t) k * E + i] = in[(size_t) idx[k] * E + i];
}

/* Gather n rows. */
cudaError_t
lmc_gather_rows(cudaStream_t s, const float *in, const int32_t *idx, float *out, int n, int E)
{
	if (!LMC_GRID_OK(n, 1, 1) || E < 1)
		return cudaErrorInvalidValue;
	gather_rows_kernel<<<n, 256, 0, s>>>(in, idx, out, E);
	return cudaGetLastError();
}
