/*
 * kernels_impl.h — private interface between kernels.c (dispatch, scalar
 * reference) and the per-ISA files kernels_avx2.c / kernels_avx512.c.
 * Not for model code: use kernels.h.
 */
#ifndef LM_KERNELS_IMPL_H
#define LM_KERNELS_IMPL_H

#include "kernels.h"
#include "quant.h"

/* Row-block matrix product for one weight type (lm_matmul_rows without wtype). */
typedef void (*lm_rows_fn) (const void *W, size_t w_row_bytes, int64_t n_cols,
							int64_t r0, int64_t r1,
							const void *Xq, size_t xq_row_bytes, int n_batch,
							float *Y, int64_t y_stride);

/* Canonical F32 dot product. */
typedef float (*lm_dot_f32_fn) (const float *a, const float *b, int64_t n);

/* One ISA's kernels: rows[t] is NULL where the ISA falls back to a lower one. */
typedef struct lm_kernel_table
{
	lm_rows_fn	rows[LM_TYPE_COUNT];	/* matrix product per weight type */
	lm_dot_f32_fn dot_f32;		/* canonical F32 dot, NULL to fall back */
} lm_kernel_table;

/* Fill the AVX2 table (call only when the CPU has AVX2, FMA and F16C). */
extern void lm_kernels_avx2_fill(lm_kernel_table *t);

/* Fill the AVX-512 table (call only when the CPU has AVX-512 F/BW/VL/DQ/VNNI). */
extern void lm_kernels_avx512_fill(lm_kernel_table *t);

/* Convert n floats to fp16 with F16C (AVX2 file); bit-identical to lm_fp32_to_fp16_row. */
extern void lm_fp32_to_fp16_row_f16c(const float *src, uint16_t *dst, int64_t n);

/* Activation quantization in AVX-512 (quant_avx512.c); bytes of quant.c's lm_quantize_row_q8_* for every input. */
extern void lm_quantize_row_q8_0_avx512(const float *x, lm_block_q8_0 *y, int64_t n);
extern void lm_quantize_row_q8_1_avx512(const float *x, lm_block_q8_1 *y, int64_t n);
extern void lm_quantize_row_q8_K_avx512(const float *x, lm_block_q8_K *y, int64_t n);

#endif							/* LM_KERNELS_IMPL_H */
