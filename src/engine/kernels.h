/*
 * kernels.h — CPU matrix kernels: CPU detection and dispatch, activation
 * quantization, and the row-block matrix product the model code calls.
 *
 * Determinism.  For every weight type there is ONE canonical reduction order,
 * and the scalar, AVX2 and AVX-512 paths all follow it, so they return
 * bit-identical floats.  The order is the one ggml's x86 build (AVX-512
 * machine, GCC, -ffp-contract=fast) uses in its vec_dot functions, which is
 * what llama.cpp runs for one-token decoding:
 *   F32:  4 accumulators x 16 lanes over steps of 64 (lane = i mod 64),
 *         fma per element; then acc0+=acc2, acc1+=acc3, acc0+=acc1, the
 *         16 lanes summed as GCC's _mm512_reduce_add_ps does; the n mod 64
 *         tail is added in order with fmaf.
 *   F16:  activations rounded to fp16; same as F32 on the widened values,
 *         but the tail is summed in double, and the result rounded to float.
 *   BF16: activations rounded to bf16; 2 accumulators x 16 lanes over steps
 *         of 32 with fma, each reduced as above, added in double, tail in
 *         double.  (ggml on AVX512-BF16 hardware uses vdpbf16ps instead, so
 *         BF16 is self-consistent here but not bit-identical to ggml there.)
 *   Q4_0/Q5_0/Q8_0 (x Q8_0), Q4_1/Q5_1 (x Q8_1): per block of 32, 8 integer
 *         lanes (lane k = elements 4k..4k+3), each converted to float and
 *         fma'd with fp16(d_w)*fp16(d_x) into an 8-lane accumulator; the 8
 *         lanes are summed as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).  _1
 *         types add sum_blocks fmaf(m_w, s_x, .) at the end.
 *   Q4_K/Q5_K/Q6_K (x Q8_K): 8 integer lanes per super-block exactly as
 *         ggml's AVX2 code forms them (mins via bsums), fma'd with
 *         d_x*fp16(d_w); mins as in ggml (4-lane fma for Q4_K, scalar fmaf
 *         for Q5_K; Q6_K folds the -32 offset into the integer lanes).
 * Integer parts are exact whatever instructions compute them, so VNNI is
 * free to use.  Each (row, batch-row) result depends only on those two rows:
 * the same value whatever n_batch, r0/r1 or thread split (batch invariance).
 * Known gap: int8 dot on a CPU without VNNI uses vpmaddubsw, which saturates
 * only for the pair (-128)*(-128)+(-128)*(-128); ggml-made blocks never hold
 * -128 in Q8_0 weights, and our activations hold it only for NaN input.
 */
#ifndef LM_KERNELS_H
#define LM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor_types.h"

/* SIMD paths, in increasing order of capability. */
typedef enum lm_isa
{
	LM_ISA_SCALAR = 0,			/* portable C */
	LM_ISA_AVX2 = 1,			/* AVX2 + FMA + F16C */
	LM_ISA_AVX512 = 2			/* AVX-512 F/BW/VL/DQ/VNNI (+ BMI2) */
} lm_isa;

/* Detect the CPU once (idempotent, thread-safe) and select the best path; env LMGEN_ISA=scalar|avx2|avx512 may lower it. */
extern lm_isa lm_kernels_init(void);

/* The path in use (initialises on first call). */
extern lm_isa lm_kernels_isa(void);

/* The best path this CPU supports (ignores LMGEN_ISA). */
extern lm_isa lm_kernels_best_isa(void);

/* Force a path (tests, benchmarks); false if the CPU lacks it. Not thread-safe against running kernels. */
extern bool lm_kernels_force_isa(lm_isa isa);

/* "scalar", "avx2", "avx512". */
extern const char *lm_isa_name(lm_isa isa);

/* Activation format for weight type wtype (as ggml): F32, F16, BF16, Q8_0, Q8_1 or Q8_K; LM_TYPE_COUNT if unsupported. */
extern lm_type lm_vec_dot_type(lm_type wtype);

/* True when lm_matmul_rows supports weight type wtype. */
extern bool lm_kernels_supported(lm_type wtype);

/* Bytes of one activation row of n floats in the format for wtype (0 if unsupported or n not a block multiple). */
extern size_t lm_act_row_size(lm_type wtype, int64_t n);

/* Convert/quantize n floats into the activation format for wtype (dst holds lm_act_row_size bytes). */
extern void lm_act_quantize_row(lm_type wtype, const float *x, void *dst, int64_t n);

/*
 * Y[b*y_stride + r] = dot(row r of W, activation row b), for r in [r0,r1),
 * b in [0,n_batch).  W rows are w_row_bytes apart, each n_cols elements of
 * type wtype; activation rows (from lm_act_quantize_row) are xq_row_bytes
 * apart.  Single-threaded; the caller splits rows across threads.
 */
extern void lm_matmul_rows(lm_type wtype, const void *W, size_t w_row_bytes, int64_t n_cols,
						   int64_t r0, int64_t r1,
						   const void *Xq, size_t xq_row_bytes, int n_batch,
						   float *Y, int64_t y_stride);

/* Dot product of two float vectors in the canonical F32 order (attention scores etc.). */
extern float lm_dot_f32(const float *a, const float *b, int64_t n);

#endif							/* LM_KERNELS_H */
