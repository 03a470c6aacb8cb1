/*
 * embed.c — mean-pooled, L2-normalised sentence embeddings (see embed.h).
 */
#include "embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Tokens per forward pass of lm_embed. */
#define EMBED_CHUNK 32

/* Set up an empty pool. */
bool
lm_embed_pool_init(lm_embed_pool *p, int n_embd)
{
	p->n_embd = n_embd;
	p->n = 0;
	p->sum = calloc(n_embd > 0 ? n_embd : 1, sizeof(double));
	return p->sum != NULL;
}

/* Add one hidden state. */
void
lm_embed_pool_add(lm_embed_pool *p, const float *hidden)
{
	for (int e = 0; e < p->n_embd; e++)
		p->sum[e] += hidden[e];
	p->n++;
}

/* The normalised mean. */
void
lm_embed_pool_finish(const lm_embed_pool *p, float *out)
{
	double		norm = 0.0;

	for (int e = 0; e < p->n_embd; e++)
	{
		double		m = p->n > 0 ? p->sum[e] / p->n : 0.0;

		norm += m * m;
	}
	norm = sqrt(norm);
	for (int e = 0; e < p->n_embd; e++)
		out[e] = (float) (norm > 0 ? (p->sum[e] / p->n) / norm : 0.0);
}

/* Free the pool's memory. */
void
lm_embed_pool_free(lm_embed_pool *p)
{
	free(p->sum);
	p->sum = NULL;
}

/* Embed a text on its own sequence. */
int
lm_embed(lm_context *ctx, int seq, const int32_t *ids, int n, float *out, char *err, size_t errlen)
{
	lm_embed_pool pool;
	lm_batch   *b;
	int			rc = 0,
				order = n > 1 ? LM_PREFILL_YES : LM_PREFILL_NO;

	if (n < 1 || n > lm_context_n_ctx(ctx))
	{
		snprintf(err, errlen, "text has %d tokens; it needs 1 to %d (the context size)", n, lm_context_n_ctx(ctx));
		return -1;
	}
	b = lm_batch_create(EMBED_CHUNK);
	if (!b || !lm_embed_pool_init(&pool, lm_context_model(ctx)->cfg.n_embd))
	{
		lm_batch_free(b);
		snprintf(err, errlen, "out of memory for an embedding");
		return -1;
	}
	lm_kv_seq_clear(lm_context_kv(ctx), seq);
	for (int i0 = 0; i0 < n && rc == 0; i0 += EMBED_CHUNK)
	{
		int			k = n - i0 < EMBED_CHUNK ? n - i0 : EMBED_CHUNK;

		lm_batch_clear(b);
		for (int i = 0; i < k; i++)
			lm_batch_add_token(b, ids[i0 + i], i0 + i, seq, LM_OUT_HIDDEN, order);
		rc = lm_model_forward(ctx, b, err, errlen);
		for (int i = 0; rc == 0 && i < k; i++)
			lm_embed_pool_add(&pool, lm_context_hidden(ctx, i));
	}
	if (rc == 0)
		lm_embed_pool_finish(&pool, out);
	lm_embed_pool_free(&pool);
	lm_batch_free(b);
	return rc;
}
