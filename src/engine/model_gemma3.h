/*
 * model_gemma3.h — the gemma3 architecture's hooks into model loading (the
 * extra metadata and weights it needs beyond llama's) and its forward pass.
 */
#ifndef LM_MODEL_GEMMA3_H
#define LM_MODEL_GEMMA3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"

/* Complete a gemma3 configuration read as llama's: RoPE type, sliding window, local RoPE base. */
extern bool lm_gemma3_read_config(const lm_gguf *g, lm_model_config *c, char *err, size_t errlen);

/* Bind the four extra norm vectors of every gemma3 layer (after the common weights). */
extern bool lm_gemma3_bind(lm_model *m, char *err, size_t errlen);

#endif							/* LM_MODEL_GEMMA3_H */
