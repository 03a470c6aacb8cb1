/*
 * embed.h — sentence embeddings: the mean of a text's final hidden states
 * (after the output norm; BOS included when the caller's ids have it),
 * L2-normalised.  The pool sums the hidden states as they come, in double
 * and in token order, so the result does not depend on how the text is cut
 * into forward passes; lm_embed() runs a text on a context of its own
 * sequence, and the scheduler (scheduler.h) runs the same pool for
 * embeddings batched with other requests: both give the same floats.
 */
#ifndef LM_EMBED_H
#define LM_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"

/* A running mean of hidden states. */
typedef struct lm_embed_pool
{
	int			n_embd;			/* floats per hidden state */
	int			n;				/* hidden states added */
	double	   *sum;			/* (n_embd) their sum */
} lm_embed_pool;

/* Set up an empty pool of n_embd floats; false when out of memory. */
extern bool lm_embed_pool_init(lm_embed_pool *p, int n_embd);

/* Add one hidden state (n_embd floats), in token order. */
extern void lm_embed_pool_add(lm_embed_pool *p, const float *hidden);

/* Write the mean, L2-normalised (all zeros for a zero mean), as n_embd floats. */
extern void lm_embed_pool_finish(const lm_embed_pool *p, float *out);

/* Free the pool's memory (the struct itself is the caller's). */
extern void lm_embed_pool_free(lm_embed_pool *p);

/*
 * The embedding of ids (n >= 1) into out (n_embd floats), evaluated in
 * sequence seq of ctx (cleared first and left holding the text), in chunks
 * whose tokens ask for the hidden state only.  Returns 0; -1 with a message
 * (bad ids, too long for the context, KV budget, out of memory); -2 when the
 * context's abort check stopped it.
 */
extern int	lm_embed(lm_context *ctx, int seq, const int32_t *ids, int n, float *out,
					 char *err, size_t errlen);

#endif							/* LM_EMBED_H */
