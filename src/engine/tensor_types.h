/*
 * tensor_types.h — the ggml tensor type ids that GGUF files use, and what each
 * one weighs: elements per block and bytes per block.
 *
 * The table knows every type ggml defines so that the GGUF reader can check
 * the size of any tensor; `compute` says whether lmgen's kernels can run it.
 */
#ifndef LM_TENSOR_TYPES_H
#define LM_TENSOR_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* ggml type ids as stored in GGUF tensor infos (ids 4, 5, 31-33, 36-38 are retired). */
typedef enum lm_type
{
	LM_TYPE_F32 = 0,
	LM_TYPE_F16 = 1,
	LM_TYPE_Q4_0 = 2,
	LM_TYPE_Q4_1 = 3,
	LM_TYPE_Q5_0 = 6,
	LM_TYPE_Q5_1 = 7,
	LM_TYPE_Q8_0 = 8,
	LM_TYPE_Q8_1 = 9,
	LM_TYPE_Q2_K = 10,
	LM_TYPE_Q3_K = 11,
	LM_TYPE_Q4_K = 12,
	LM_TYPE_Q5_K = 13,
	LM_TYPE_Q6_K = 14,
	LM_TYPE_Q8_K = 15,
	LM_TYPE_IQ2_XXS = 16,
	LM_TYPE_IQ2_XS = 17,
	LM_TYPE_IQ3_XXS = 18,
	LM_TYPE_IQ1_S = 19,
	LM_TYPE_IQ4_NL = 20,
	LM_TYPE_IQ3_S = 21,
	LM_TYPE_IQ2_S = 22,
	LM_TYPE_IQ4_XS = 23,
	LM_TYPE_I8 = 24,
	LM_TYPE_I16 = 25,
	LM_TYPE_I32 = 26,
	LM_TYPE_I64 = 27,
	LM_TYPE_F64 = 28,
	LM_TYPE_IQ1_M = 29,
	LM_TYPE_BF16 = 30,
	LM_TYPE_TQ1_0 = 34,
	LM_TYPE_TQ2_0 = 35,
	LM_TYPE_MXFP4 = 39,
	LM_TYPE_COUNT = 40			/* one past the largest id */
} lm_type;

/* Size facts for one tensor type. */
typedef struct lm_type_traits
{
	const char *name;			/* ggml's name, e.g. "Q4_K" */
	uint32_t	block_size;		/* elements per block */
	uint32_t	type_size;		/* bytes per block */
	bool		compute;		/* lmgen has kernels for it */
} lm_type_traits;

/* Traits of a type id, or NULL when the id is not a ggml type. */
extern const lm_type_traits *lm_type_traits_get(uint32_t type);

/* Name of a type id ("F32", "Q4_K"), or "unknown" for ids that are not types. */
extern const char *lm_type_name(uint32_t type);

#endif							/* LM_TENSOR_TYPES_H */
