/*
 * gemm.cu — the large-batch path of a matrix product (prefill, big decode
 * batches): cuBLAS GEMM on the dense copy of a weight made at upload.
 *
 * The mode (lmc_gemm_mode, chosen by LMGEN_CUDA_GEMM when a model is
 * uploaded) is the one switch between F32 without TF32 (the default: the
 * closest to the CPU engine), TF32 tensor cores, and BF16/FP16 weight
 * copies with activations converted per call and F32 accumulation.
 *
 * Row-major Y = X W^T is, in cuBLAS's column-major terms, Y^T = W X^T with
 * W^T stored: gemm(op(A) = T, op(B) = N, m = n_rows, n = tokens,
 * k = n_cols, A = W (lda = n_cols), B = X (ldb = n_cols), C = Y (ldc)).
 */
#include "common.cuh"

/* n floats to BF16 or FP16, grid-stride. */
__global__ void
to_half_kernel(const float *x, void *out, int64_t n, bool bf16)
{
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t) gridDim.x * blockDim.x)
	{
		if (bf16)
			((__nv_bfloat16 *) out)[i] = __float2bfloat16_rn(x[i]);
		else
			((__half *) out)[i] = __float2half_rn(x[i]);
	}
}

/* Convert n floats to half precision. */
cudaError_t
lmc_to_half(cudaStream_t s, const float *x, void *out, int64_t n, bool bf16)
{
	int64_t		blocks = (n + 255) / 256;

	if (n < 1)
		return cudaErrorInvalidValue;
	if (blocks > 65536)
		blocks = 65536;
	to_half_kernel<<<(unsigned) blocks, 256, 0, s>>>(x, out, n, bf16);
	return cudaGetLastError();
}

/* Element type of a mode's dense copies. */
int
lmc_gemm_elem_type(lmc_gemm_mode mode)
{
	return mode == LMC_GEMM_BF16 ? 1 : mode == LMC_GEMM_F16 ? 2 : 0;
}

/* Y = X W^T with the mode's types. */
cublasStatus_t
lmc_gemm(cublasHandle_t h, lmc_gemm_mode mode, const void *w, int n_rows, int n_cols, const void *x, int n,
		 float *y, int ldy)
{
	const float alpha = 1.0f,
				beta = 0.0f;
	cudaDataType_t in_type = mode == LMC_GEMM_BF16 ? CUDA_R_16BF : mode == LMC_GEMM_F16 ? CUDA_R_16F : CUDA_R_32F;
	cublasComputeType_t compute = mode == LMC_GEMM_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 :
		mode == LMC_GEMM_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;

	if (n < 1 || n_rows < 1 || n_cols < 1 || ldy < n_rows)
		return CUBLAS_STATUS_INVALID_VALUE;
	return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n_rows, n, n_cols, &alpha, w, in_type, n_cols, x, in_type,
						n_cols, &beta, y, CUDA_R_32F, ldy, compute, CUBLAS_GEMM_DEFAULT);
}
