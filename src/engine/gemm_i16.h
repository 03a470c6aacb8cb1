/*
 * gemm_i16.h — an integer matrix product for an encoder's whole texts:
 * weights quantized once per output row, activations per token, both to
 * 13-bit integers (|q| <= GEMM_I16_QMAX), multiplied as int16 pairs into
 * exact int32 sums (AVX-512 VNNI vpdpwssd, AVX2 vpmaddwd, or plain C).
 *
 * Why 13 bits: all-MiniLM-L6-v2 keeps cosine >= 0.99998 to its reference
 * with 4095 levels each side, but only 0.9857 with int8 rows and tokens and
 * 0.9983 with int8 blocks of 32 (model_bert.c's design note has the
 * figures); 128 products of 4095 x 4095 stay below 2^31, so a sum over a
 * block of GEMM_I16_BLOCK inner elements is exact in int32.
 *
 * The result, the same floats on every kernel path:
 *     acc = 0.0f; for each block b in order: acc += (float) isum_b
 *     Y[t][r] = (acc * w_scale[r]) * x_scale[t]  (+ bias[r] when given)
 * where isum_b is the exact integer sum of the block's products.  An
 * output depends only on its weight row and its activation row.
 *
 * Layout: weight rows in panels of GEMM_I16_PANEL rows, pair-interleaved
 * k-major: panel p, pair kk holds rows 32p .. 32p + 31, each as the two
 * int16 of columns 2kk, 2kk + 1 (zero past the matrix), so one 512-bit
 * load is the pair of all 32 rows.  Activation rows hold k_pad (k rounded
 * up to even) int16, the last one zero when k is odd.
 */
#ifndef LM_GEMM_I16_H
#define LM_GEMM_I16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest quantized magnitude (13 bits). */
#define GEMM_I16_QMAX 4095

/* Inner elements per exact int32 block: GEMM_I16_BLOCK * QMAX^2 < 2^31. */
#define GEMM_I16_BLOCK 128

/* Weight rows per panel. */
#define GEMM_I16_PANEL 32

/* Activation int16 per row for inner size k (k rounded up to even). */
#define GEMM_I16_KPAD(k) (((k) + 1) & ~(int64_t) 1)

/* A weight matrix in the product's form. */
typedef struct lm_gemm_i16_weight
{
	int64_t		n_rows;			/* output rows */
	int64_t		k;				/* inner size (columns of the original matrix) */
	int16_t    *panels;			/* ceil(n_rows / 32) panels of (k_pad / 2) x 32 x 2 int16 */
	float	   *scale;			/* (n_rows) a row's float value per integer step */
} lm_gemm_i16_weight;

/* Quantize W (n_rows x k floats, row stride k) into q; false when out of memory. */
extern bool lm_gemm_i16_weight_make(const float *W, int64_t n_rows, int64_t k, lm_gemm_i16_weight *q);

/* Free what lm_gemm_i16_weight_make allocated (q may be all zero). */
extern void lm_gemm_i16_weight_free(lm_gemm_i16_weight *q);

/*
 * Quantize activation rows [t0, t1) of X (row stride x_stride, k floats
 * each; finite values) to Q (row stride q_stride >= k_pad int16) and
 * scale[t]: per row amax = max |x|, q = rint(x * (QMAX / amax)) (0 when
 * amax is 0), scale = amax / QMAX.  The same integers on every path.
 */
extern void lm_gemm_i16_quantize_rows(const float *X, int64_t x_stride, int64_t k, int t0, int t1,
									  int16_t *Q, int64_t q_stride, float *scale);

/*
 * Y[t * y_stride + r] for weight rows r in [r0, r1) (r0 a multiple of 32)
 * and activation rows t in [0, n), as the header says, on the kernel path
 * lm_kernels_isa() selects.
 */
extern void lm_gemm_i16_rows(const lm_gemm_i16_weight *w, int64_t r0, int64_t r1,
							 const int16_t *Q, int64_t q_stride, const float *x_scale, int n,
							 float *Y, int64_t y_stride, const float *bias);

/*
 * Per-ISA bodies (gemm_i16_avx2.c, gemm_i16_avx512.c): one panel P of
 * nr <= 32 rows whose scales and biases start at w_scale and bias; and
 * the quantization of one activation row given its amax.
 */
extern void lm_gemm_i16_panel_avx2(const int16_t *P, int64_t k, int nr, const float *w_scale,
								   const int16_t *Q, int64_t q_stride, const float *x_scale, int n,
								   float *Y, int64_t y_stride, const float *bias);
extern void lm_gemm_i16_panel_avx512(const int16_t *P, int64_t k, int nr, const float *w_scale,
									 const int16_t *Q, int64_t q_stride, const float *x_scale, int n,
									 float *Y, int64_t y_stride, const float *bias);
extern float lm_gemm_i16_amax_avx2(const float *x, int64_t k);
extern float lm_gemm_i16_amax_avx512(const float *x, int64_t k);
extern void lm_gemm_i16_quantize_row_avx2(const float *x, int64_t k, float inv, int16_t *q);
extern void lm_gemm_i16_quantize_row_avx512(const float *x, int64_t k, float inv, int16_t *q);

#endif							/* LM_GEMM_I16_H */
