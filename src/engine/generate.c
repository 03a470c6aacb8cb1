/*
 * generate.c — one generation on its own sequence of a context (see
 * generate.h): the forward passes of that sequence around an lm_sequence,
 * which samples, detokenizes and applies the stop rules.
 *
 * The prompt is one batch whose tokens carry the prompt value order
 * (LM_PREFILL_YES for a prompt of several tokens) and each generated token
 * one batch with the decode order, exactly as the scheduler builds them, so
 * a request gives the same bits here and there however its prompt is cut.
 */
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "threads.h"

/* State of one generation. */
struct lm_gen
{
	lm_context *ctx;			/* borrowed */
	int			seq;			/* sequence slot */
	lm_sequence *s;				/* sampler, text, stop rules */
	lm_batch   *batch;			/* one-token batch */
	double		t_prompt;		/* seconds of prompt evaluation */
	double		t_gen;			/* seconds of token evaluation */
};

/*
 * Start in sequence seq: its first n_shared prompt positions shared from
 * sequence from (none when n_shared is 0), the rest of the prompt
 * evaluated, the first token sampled.  Every prompt token keeps the value
 * order of the whole prompt, so sharing changes no bit (context.h).
 */
static lm_gen *
gen_start(lm_context *ctx, const lm_tokenizer *tok, int seq, int from, int n_shared, const int32_t *prompt,
		  int n_prompt, const lm_gen_params *p, char *err, size_t errlen)
{
	const lm_model *m = lm_context_model(ctx);
	lm_gen	   *g;
	lm_batch   *pb = NULL;
	double		t0 = lm_now_s();
	int			order = n_prompt > 1 ? LM_PREFILL_YES : LM_PREFILL_NO;

	g = calloc(1, sizeof(*g));
	if (!g)
		goto oom;
	g->ctx = ctx;
	g->seq = seq;
	g->s = lm_sequence_create(tok, m->cfg.n_vocab, lm_context_n_ctx(ctx), prompt, n_prompt, p, err, errlen);
	if (!g->s)
		goto fail;
	g->batch = lm_batch_create(1);
	pb = lm_batch_create(n_prompt - n_shared);
	if (!g->batch || !pb)
		goto oom;

	/* the prompt (after the shared part) as one batch, logits of its last token */
	if (n_shared == 0)
		lm_kv_seq_clear(lm_context_kv(ctx), seq);
	else if (!lm_kv_seq_share(lm_context_kv(ctx), from, seq, n_shared))
	{
		snprintf(err, errlen, "cannot share %d positions of sequence %d with sequence %d", n_shared, from, seq);
		goto fail;
	}
	for (int i = n_shared; i < n_prompt; i++)
		lm_batch_add_token(pb, prompt[i], i, seq, i == n_prompt - 1 ? LM_OUT_LOGITS : LM_OUT_NONE, order);
	if (lm_model_forward(ctx, pb, err, errlen) != 0)
		goto fail;
	lm_sequence_sample(g->s, lm_context_logits(ctx, n_prompt - 1 - n_shared));
	g->t_prompt = lm_now_s() - t0;
	lm_batch_free(pb);
	return g;

oom:
	snprintf(err, errlen, "out of memory starting a generation");
fail:
	lm_batch_free(pb);
	lm_gen_free(g);
	return NULL;
}

/* Start: evaluate the prompt and sample the first token. */
lm_gen *
lm_gen_start(lm_context *ctx, const lm_tokenizer *tok, int seq, const int32_t *prompt,
			 int n_prompt, const lm_gen_params *p, char *err, size_t errlen)
{
	return gen_start(ctx, tok, seq, -1, 0, prompt, n_prompt, p, err, errlen);
}

/* Start after a prompt another sequence has evaluated: only its last token is evaluated again. */
lm_gen *
lm_gen_start_after(lm_context *ctx, const lm_tokenizer *tok, int seq, int from, const int32_t *prompt,
				   int n_prompt, const lm_gen_params *p, char *err, size_t errlen)
{
	if (n_prompt < 1 || from == seq || lm_kv_seq_len(lm_context_kv(ctx), from) < n_prompt - 1)
	{
		snprintf(err, errlen, "sequence %d does not hold the %d positions of the prompt", from, n_prompt - 1);
		return NULL;
	}
	return gen_start(ctx, tok, seq, from, n_prompt - 1, prompt, n_prompt, p, err, errlen);
}

/* Produce the next token; evaluate it when the generation goes on. */
int
lm_gen_next(lm_gen *g, int32_t *token, const char **text, size_t *text_len, char *err, size_t errlen)
{
	int32_t		pos;
	int			rc = lm_sequence_next(g->s, token, &pos, text, text_len, err, errlen);
	double		t0;

	if (rc != 1 || lm_sequence_reason(g->s) != LM_GEN_RUNNING)
		return rc;
	t0 = lm_now_s();
	lm_batch_clear(g->batch);
	lm_batch_add_token(g->batch, *token, pos, g->seq, LM_OUT_LOGITS, LM_PREFILL_NO);
	if (lm_model_forward(g->ctx, g->batch, err, errlen) != 0)
		return -1;
	lm_sequence_sample(g->s, lm_context_logits(g->ctx, 0));
	g->t_gen += lm_now_s() - t0;
	return 1;
}

/* End early. */
void
lm_gen_cancel(lm_gen *g)
{
	if (g)
		lm_sequence_cancel(g->s);
}

/* The generated text. */
const char *
lm_gen_text(const lm_gen *g, size_t *len)
{
	return lm_sequence_text(g->s, len);
}

/* The generated ids. */
const int32_t *
lm_gen_tokens(const lm_gen *g, int *n)
{
	return lm_sequence_tokens(g->s, n);
}

/* Why generation ended. */
lm_gen_stop
lm_gen_stop_reason(const lm_gen *g)
{
	return lm_sequence_reason(g->s);
}

/* Timing. */
void
lm_gen_timing(const lm_gen *g, double *prompt_s, double *gen_s)
{
	*prompt_s = g->t_prompt;
	*gen_s = g->t_gen;
}

/* Free a generation. */
void
lm_gen_free(lm_gen *g)
{
	if (!g)
		return;
	lm_sequence_free(g->s);
	lm_batch_free(g->batch);
	free(g);
}

/* Run a whole generation with a per-token callback. */
lm_gen *
lm_generate(lm_context *ctx, const lm_tokenizer *tok, int seq, const int32_t *prompt,
			int n_prompt, const lm_gen_params *p, lm_gen_token_fn cb, void *arg,
			char *err, size_t errlen)
{
	lm_gen	   *g = lm_gen_start(ctx, tok, seq, prompt, n_prompt, p, err, errlen);
	int32_t		t;
	const char *text;
	size_t		tl;
	int			rc;

	if (!g)
		return NULL;
	while ((rc = lm_gen_next(g, &t, &text, &tl, err, errlen)) == 1)
		if (cb && !cb(arg, t, text, tl))
		{
			lm_gen_cancel(g);
			break;
		}
	if (rc < 0)
	{
		lm_gen_free(g);
		return NULL;
	}
	return g;
}
