/*
 * quant.h — tensor storage formats: ggml's quantized block layouts, fp16 and
 * bf16 conversion, scalar reference dequantizers and the activation
 * quantizers that the matrix kernels (kernels.h) consume.
 *
 * The layouts are ggml's, byte for byte, because GGUF files store them as is.
 * Every block type has a _Static_assert on its size.  Half-precision scales
 * are kept as raw uint16_t bit patterns (little-endian, like the file).
 *
 * Activation quantizers reproduce what ggml does on x86 (AVX2/AVX-512 build):
 *   Q8_0 / Q8_1: per block of 32, amax = max|x|, d = amax/127 (stored fp16),
 *                q = round-half-even(x * (127/amax)); Q8_1 also stores
 *                s = fp16(d * sum(q)) with d the unrounded float.
 *   Q8_K:        per block of 256, the signed value of largest magnitude
 *                `max`, iscale = -127/max, q = min(127, round-half-even(
 *                iscale*x)), d = 1/iscale (float), bsums = sums of 16 q.
 */
#ifndef LM_QUANT_H
#define LM_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor_types.h"

#define LM_QK32 32				/* elements per block of the _0/_1 formats */
#define LM_QK_K 256				/* elements per super-block of the K formats */
#define LM_K_SCALE_SIZE 12		/* packed 6-bit scales/mins of Q4_K/Q5_K */

/* Q4_0: 32 weights w = d * (q - 8), q in 0..15. */
typedef struct lm_block_q4_0
{
	uint16_t	d;				/* fp16 scale */
	uint8_t		qs[16];			/* nibbles: low = elements 0..15, high = 16..31 */
} lm_block_q4_0;
_Static_assert(sizeof(lm_block_q4_0) == 18, "Q4_0 block must be 18 bytes");

/* Q4_1: 32 weights w = d * q + m, q in 0..15. */
typedef struct lm_block_q4_1
{
	uint16_t	d;				/* fp16 scale */
	uint16_t	m;				/* fp16 minimum */
	uint8_t		qs[16];			/* nibbles as in Q4_0 */
} lm_block_q4_1;
_Static_assert(sizeof(lm_block_q4_1) == 20, "Q4_1 block must be 20 bytes");

/* Q5_0: 32 weights w = d * (q - 16), q in 0..31. */
typedef struct lm_block_q5_0
{
	uint16_t	d;				/* fp16 scale */
	uint8_t		qh[4];			/* bit j = 5th bit of element j (little-endian u32) */
	uint8_t		qs[16];			/* low 4 bits, as in Q4_0 */
} lm_block_q5_0;
_Static_assert(sizeof(lm_block_q5_0) == 22, "Q5_0 block must be 22 bytes");

/* Q5_1: 32 weights w = d * q + m, q in 0..31. */
typedef struct lm_block_q5_1
{
	uint16_t	d;				/* fp16 scale */
	uint16_t	m;				/* fp16 minimum */
	uint8_t		qh[4];			/* 5th bits, as in Q5_0 */
	uint8_t		qs[16];			/* low 4 bits, as in Q4_0 */
} lm_block_q5_1;
_Static_assert(sizeof(lm_block_q5_1) == 24, "Q5_1 block must be 24 bytes");

/* Q8_0: 32 values v = d * q (weights, or activations for _0 weights). */
typedef struct lm_block_q8_0
{
	uint16_t	d;				/* fp16 scale */
	int8_t		qs[32];			/* quants */
} lm_block_q8_0;
_Static_assert(sizeof(lm_block_q8_0) == 34, "Q8_0 block must be 34 bytes");

/* Q8_1: activation block for _1 weights; like Q8_0 plus s = d * sum(qs). */
typedef struct lm_block_q8_1
{
	uint16_t	d;				/* fp16 scale */
	uint16_t	s;				/* fp16 of d * sum(qs) */
	int8_t		qs[32];			/* quants */
} lm_block_q8_1;
_Static_assert(sizeof(lm_block_q8_1) == 36, "Q8_1 block must be 36 bytes");

/*
 * Q4_K: 256 weights in 8 sub-blocks of 32; sub-block s has a 6-bit scale
 * sc[s] and min m[s]: w = d*sc[s]*q - dmin*m[s], q in 0..15.  Each 64
 * elements share 32 bytes of qs: low nibbles first 32, high nibbles next 32.
 */
typedef struct lm_block_q4_K
{
	uint16_t	d;				/* fp16 super-block scale for the scales */
	uint16_t	dmin;			/* fp16 super-block scale for the mins */
	uint8_t		scales[LM_K_SCALE_SIZE];	/* 8 scales + 8 mins, 6 bits each */
	uint8_t		qs[128];		/* 4-bit quants */
} lm_block_q4_K;
_Static_assert(sizeof(lm_block_q4_K) == 144, "Q4_K block must be 144 bytes");

/* Q5_K: as Q4_K with a 5th bit per element in qh (bit 2j/2j+1 for pair j). */
typedef struct lm_block_q5_K
{
	uint16_t	d;				/* fp16 super-block scale for the scales */
	uint16_t	dmin;			/* fp16 super-block scale for the mins */
	uint8_t		scales[LM_K_SCALE_SIZE];	/* 8 scales + 8 mins, 6 bits each */
	uint8_t		qh[32];			/* high bits */
	uint8_t		qs[128];		/* low 4 bits */
} lm_block_q5_K;
_Static_assert(sizeof(lm_block_q5_K) == 176, "Q5_K block must be 176 bytes");

/* Q6_K: 256 weights in 16 groups of 16, w = d * scales[g] * (q - 32), q in 0..63. */
typedef struct lm_block_q6_K
{
	uint8_t		ql[128];		/* low 4 bits */
	uint8_t		qh[64];			/* high 2 bits */
	int8_t		scales[16];		/* 8-bit group scales */
	uint16_t	d;				/* fp16 super-block scale */
} lm_block_q6_K;
_Static_assert(sizeof(lm_block_q6_K) == 210, "Q6_K block must be 210 bytes");

/* Q8_K: activation block for K-quant weights. */
typedef struct lm_block_q8_K
{
	float		d;				/* float scale */
	int8_t		qs[LM_QK_K];	/* quants */
	int16_t		bsums[16];		/* sum of each 16 consecutive quants */
} lm_block_q8_K;
_Static_assert(sizeof(lm_block_q8_K) == 292, "Q8_K block must be 292 bytes");

/* fp16 (IEEE binary16 bits) to float, exact. */
extern float lm_fp16_to_fp32(uint16_t h);

/* float to fp16, round to nearest even (like F16C); NaN stays NaN. */
extern uint16_t lm_fp32_to_fp16(float f);

/* bf16 bits to float, exact. */
extern float lm_bf16_to_fp32(uint16_t h);

/* float to bf16 as ggml does it: round to nearest even, NaN made quiet. */
extern uint16_t lm_fp32_to_bf16(float f);

/* Convert n fp16 values to float. */
extern void lm_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n);

/* Convert n floats to fp16 (nearest even). */
extern void lm_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n);

/*
 * Scalar reference: dequantize n elements (n a multiple of the block size)
 * of type t.  Returns false for types without kernels.  Formulas follow
 * ggml's reference dequantizers; where ggml writes a*b + c and its build
 * contracts that into one fma, we use fmaf (Q4_1, Q5_1, Q4_K, Q5_K).
 */
extern bool lm_dequantize_row(lm_type t, const void *src, float *dst, int64_t n);

/* Quantize n floats (multiple of 32) to Q8_0 blocks, ggml's x86 way. */
extern void lm_quantize_row_q8_0(const float *x, lm_block_q8_0 *y, int64_t n);

/* Quantize n floats (multiple of 32) to Q8_1 blocks, ggml's x86 way. */
extern void lm_quantize_row_q8_1(const float *x, lm_block_q8_1 *y, int64_t n);

/* Quantize n floats (multiple of 256) to Q8_K blocks, as ggml does. */
extern void lm_quantize_row_q8_K(const float *x, lm_block_q8_K *y, int64_t n);

#endif							/* LM_QUANT_H */
