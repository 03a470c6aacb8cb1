/*
 * model_info.h — the facts about a GGUF model that `lmgen-cli info` and
 * lmgen.model_info() report, gathered in one place so both say the same.
 */
#ifndef LM_MODEL_INFO_H
#define LM_MODEL_INFO_H

#include <stdint.h>

#include "gguf.h"

/* Summary of a validated GGUF file. */
typedef struct lm_model_info
{
	char		architecture[64];	/* general.architecture, "" if absent */
	char		name[128];		/* general.name, "" if absent */
	uint32_t	version;		/* GGUF version */
	uint32_t	alignment;		/* data alignment */
	uint64_t	file_size;		/* bytes */
	uint64_t	n_kv;			/* metadata entries */
	uint64_t	n_tensors;		/* tensors */
	uint64_t	n_params;		/* sum of tensor element counts */
	int64_t		context_length; /* <arch>.context_length, -1 if absent */
	int64_t		vocab_size;		/* tokenizer.ggml.tokens length, -1 if absent */
	int64_t		file_type;		/* general.file_type, -1 if absent */
	char		quantization[32];	/* file type name ("Q4_K_M"), or the commonest matrix type */
	uint64_t	type_count[LM_TYPE_COUNT];	/* tensors per tensor type */
} lm_model_info;

/* Fill info from an open file. */
extern void lm_model_info_get(const lm_gguf *g, lm_model_info *info);

/* Copy a mapped string into a NUL-terminated buffer, truncating. */
extern void lm_gguf_str_copy(lm_gguf_str s, char *buf, size_t buflen);

#endif							/* LM_MODEL_INFO_H */
