/*
 * model_bert.h — the bert encoder (all-MiniLM-L6-v2 and other
 * sentence-transformers BERT models): its hooks into model loading, its
 * forward pass, and sentence embeddings of many texts at once.
 */
#ifndef LM_MODEL_BERT_H
#define LM_MODEL_BERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "gguf.h"
#include "model.h"

/* Read bert's own metadata: LayerNorm epsilon, token types, pooling, normalisation, sequence length. */
extern bool lm_bert_read_config(const lm_gguf *g, lm_model_config *c, char *err, size_t errlen);

/* Bind every bert tensor (token_embd is bound already). */
extern bool lm_bert_bind(lm_model *m, char *err, size_t errlen);

/* Free the integer forms of the layer products (lm_model_free calls it for every model). */
extern void lm_bert_free(lm_model *m);

/*
 * Whether ctx runs an encoder's layer products in F32 (true) or, the
 * default, in 13-bit integers (gemm_i16.h; cosine >= 0.99998 to the F32
 * result on all-MiniLM-L6-v2, about twice as fast).  Models whose weights
 * are not F32 always take lm_ctx_matmul.
 */
extern void lm_bert_set_f32(lm_context *ctx, bool f32);

/* Floats of scratch one task needs: attention of texts of up to n_ctx tokens, or a GEMM panel. */
extern size_t lm_bert_attention_scratch(const lm_model_config *c, int n_ctx);

/* Fewest tokens an encoder context evaluates per step (whole texts go into one step). */
#define LM_BERT_MIN_BATCH 512

/*
 * Check an encoder batch: token ids in the vocabulary, each text's tokens
 * contiguous with positions 0, 1, 2, ... (position 0 starts a new text; the
 * sequence ids are not used), at most the context's positions and n_batch
 * tokens per text.  Counts the tokens that ask for outputs.
 */
extern bool lm_bert_check_batch(const lm_context *ctx, const lm_batch *b, int *n_out, char *err,
								size_t errlen);

/*
 * Sentence embeddings of n_texts token sequences (as lm_tokenize gives them
 * with add_special: [CLS] ... [SEP]): each is cut to the model's
 * max_seq_len (the first max_seq_len - 1 tokens and its last token), many
 * texts are packed whole into each forward pass (up to the context's
 * n_batch tokens; on several threads, each thread may take a group of
 * whole texts instead: lm_bert_groups_run), and each text's final hidden states are pooled as the
 * model says (mean over all its tokens, or the first) and L2-normalised
 * when the model says so.  out gets n_texts rows of n_embd floats.  The
 * context's hidden-only mode is switched on.  Returns 0, -1 with a message
 * (an empty sequence, out of memory), or -2 when the abort check stopped it.
 */
extern int	lm_bert_embed(lm_context *ctx, const int32_t *const *ids, const int *n_ids, int n_texts,
						  float *out, char *err, size_t errlen);

/*
 * Thread groups the last lm_bert_embed call on ctx ran: on several threads
 * a call of several texts that balance well gives each thread whole texts
 * (n_threads groups); otherwise 1, its forward passes split across the
 * threads.  The embeddings are the same either way.
 */
extern int	lm_bert_groups_run(const lm_context *ctx);

/* Free the one-thread contexts of ctx's thread groups (lm_context_free calls it). */
extern void lm_bert_free_groups(lm_context *ctx);

#endif							/* LM_MODEL_BERT_H */
