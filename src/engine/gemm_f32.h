/*
 * gemm_f32.h — an F32 matrix product for many activation rows at once
 * (an encoder's whole texts), in outer-product form: weight rows are
 * packed k-major in panels of GEMM_F32_PANEL, and each output accumulates
 * by fma over k = 0, 1, 2, ... from zero.  That one order is what the
 * scalar, AVX2 and AVX-512 paths all compute, so they agree bit for bit,
 * and an output depends only on its weight row and activation row (not on
 * how many rows are in the call or how the rows are split).  It is not
 * lm_matmul_rows's F32 order (4 x 16 lanes per dot): models use one or the
 * other for a given product, never both.
 */
#ifndef LM_GEMM_F32_H
#define LM_GEMM_F32_H

#include <stddef.h>
#include <stdint.h>

/* Weight rows per packed panel. */
#define GEMM_F32_PANEL 32

/* Floats of packing scratch one call of lm_gemm_f32_rows needs for rows of k floats. */
#define GEMM_F32_SCRATCH(k) ((size_t) GEMM_F32_PANEL * (size_t) (k))

/*
 * Y[t * y_stride + r] = sum over i < k of W[r * k + i] * X[t * x_stride + i]
 * (fma in order of i, from 0), plus bias[r] when bias is not NULL (added
 * to the finished sum), for weight rows r in [r0, r1) and activation rows
 * t in [0, n).  scratch holds GEMM_F32_SCRATCH(k) floats.  Uses the
 * kernel path lm_kernels_isa() selects.
 */
extern void lm_gemm_f32_rows(const float *W, int64_t k, int64_t r0, int64_t r1,
							 const float *X, int64_t x_stride, int n,
							 float *Y, int64_t y_stride, const float *bias, float *scratch);

/*
 * Pack rows [r, r + nr) (nr <= 32) of W, whose rows are w_stride floats
 * apart, k-major into P (GEMM_F32_SCRATCH(k) floats): P[i * 32 + j] =
 * W[(r + j) * w_stride + i], zero for j >= nr.
 */
extern void lm_gemm_f32_pack(const float *W, int64_t w_stride, int64_t k, int64_t r, int nr, float *P);

/*
 * Y[t * y_stride + j] = sum over i < k of P[i * 32 + j] * X[t * x_stride + i]
 * (fma in order of i, from 0), plus bias[j] when bias is not NULL, for
 * j < nr and t < n: one packed panel (as
 * lm_gemm_f32_pack makes it, or any k-major panel) on the kernel path
 * lm_kernels_isa() selects.
 */
extern void lm_gemm_f32_panel(const float *P, int64_t k, int nr, const float *X, int64_t x_stride, int n,
							  float *Y, int64_t y_stride, const float *bias);

/* Per-ISA panel products (gemm_f32_avx2.c, gemm_f32_avx512.c): one packed panel of nr <= 32 rows. */
extern void lm_gemm_f32_panel_avx2(const float *P, int64_t k, int nr, const float *X, int64_t x_stride,
								   int n, float *Y, int64_t y_stride, const float *bias);
extern void lm_gemm_f32_panel_avx512(const float *P, int64_t k, int nr, const float *X, int64_t x_stride,
									 int n, float *Y, int64_t y_stride, const float *bias);

/* AVX-512 packing of 32 whole rows of W (the first at W): register transposes, gathers for the last k % 16 (indices must fit int32). */
extern void lm_gemm_f32_pack_avx512(const float *W, int64_t w_stride, int64_t k, float *P);

#endif							/* LM_GEMM_F32_H */
