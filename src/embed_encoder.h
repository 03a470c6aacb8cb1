/*
 * embed_encoder.h — sentence embeddings with an encoder model (bert:
 * all-MiniLM-L6-v2) from a backend: many texts per forward pass.
 */
#ifndef LMGEN_EMBED_ENCODER_H
#define LMGEN_EMBED_ENCODER_H

#include "postgres.h"

#include "model_cache.h"

/*
 * Embeddings of n UTF-8 texts with encoder model m (cfg.encoder) into out
 * (n rows of n_embd floats): each text tokenized with [CLS]/[SEP], cut to
 * the model's max_seq_len as sentence-transformers does (whatever
 * lmgen.context_overflow says: that is the model's definition), packed
 * whole into forward passes, pooled and normalised as the model file says.
 * Cancellation stops it between pool jobs; an ERROR frees everything.
 */
extern void EncoderEmbedTexts(LmgenModel *m, const char *const *texts, const size_t *lens, int n, float *out);

#endif							/* LMGEN_EMBED_ENCODER_H */
