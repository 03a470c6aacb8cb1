/*
 * generate.c — the generation loop (see generate.h).
 *
 * After each forward pass the next token is sampled at once and kept as
 * `pending`, so the context's logits are never needed after lm_gen_next
 * returns (other sequences may use the context in between).
 */
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* State of one generation. */
struct lm_gen
{
	lm_context *ctx;			/* borrowed */
	const lm_tokenizer *tok;	/* borrowed; NULL = ids only */
	int			seq;			/* sequence slot */
	lm_gen_params p;			/* settings (stop strings borrowed) */
	lm_sampler *smp;			/* sampler */
	lm_batch   *batch;			/* one-token batch */
	lm_detok	detok;			/* streaming detokenizer */
	char	   *text;			/* generated text, NUL-terminated */
	size_t		len;			/* bytes of text */
	size_t		cap;			/* bytes allocated */
	size_t		emitted;		/* bytes already handed to the caller */
	size_t		scanned;		/* bytes of text counted for the word limit */
	size_t		word_end;		/* end of the last complete word counted */
	int			words;			/* words begun in text[0..scanned) */
	int32_t    *toks;			/* generated ids */
	int			n_toks;			/* count */
	int			pos;			/* position of the pending token */
	int32_t		pending;		/* sampled, not yet returned */
	lm_gen_stop reason;			/* RUNNING until finished */
	double		t_prompt;		/* seconds of prompt evaluation */
	double		t_gen;			/* seconds of token evaluation */
};

/* Monotonic seconds. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Defaults. */
lm_gen_params
lm_gen_default_params(void)
{
	lm_gen_params p;

	memset(&p, 0, sizeof(p));
	p.max_tokens = 128;
	p.sampling = lm_sampler_default_params();
	return p;
}

/* Make room for `more` bytes (+ NUL) of text. */
static bool
text_reserve(lm_gen *g, size_t more)
{
	size_t		need = g->len + more + 1;
	char	   *t;

	if (need <= g->cap)
		return true;
	if (need < 2 * g->cap)
		need = 2 * g->cap;
	t = realloc(g->text, need);
	if (!t)
		return false;
	g->text = t;
	g->cap = need;
	return true;
}

/* Append one token's text (or the detokenizer's tail when id < 0). */
static bool
text_append(lm_gen *g, int32_t id)
{
	int			room = 64,
				n;

	if (!g->tok)
		return true;
	for (;;)
	{
		if (!text_reserve(g, room))
			return false;
		n = lm_detok_push(&g->detok, id, g->text + g->len, room);
		if (n >= 0)
			break;
		room = -n;
	}
	g->len += n;
	g->text[g->len] = 0;
	return true;
}

/* Cut the text at the first stop string that ends in the bytes after old_len; true if found. */
static bool
find_stop(lm_gen *g, size_t old_len)
{
	size_t		best = (size_t) -1;

	for (int i = 0; i < g->p.n_stop; i++)
	{
		const char *s = g->p.stop[i];
		size_t		sl = s ? strlen(s) : 0,
					from;

		if (sl == 0 || sl > g->len)
			continue;
		from = old_len >= sl - 1 ? old_len - (sl - 1) : 0;
		for (size_t at = from; at + sl <= g->len && at < best; at++)
			if (memcmp(g->text + at, s, sl) == 0)
			{
				best = at;
				break;
			}
	}
	if (best == (size_t) -1)
		return false;
	g->len = best;
	g->text[best] = 0;
	return true;
}

/* Whitespace for word counting (ASCII; other bytes belong to words). */
static bool
is_space_byte(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Count the words begun in the text since the last call; when one begins
 * after the max_words-th, cut the text after the max_words-th and return
 * true.
 */
static bool
find_word_limit(lm_gen *g)
{
	for (; g->scanned < g->len; g->scanned++)
	{
		bool		sp = is_space_byte(g->text[g->scanned]);
		bool		prev_sp = g->scanned == 0 || is_space_byte(g->text[g->scanned - 1]);

		if (!sp && prev_sp)
		{
			if (g->words == g->p.max_words)
			{
				g->len = g->word_end;
				g->text[g->len] = 0;
				return true;
			}
			g->words++;
		}
		if (!sp)
			g->word_end = g->scanned + 1;
	}
	return false;
}

/* Bytes at the end of the text that might begin a stop string. */
static size_t
stop_holdback(const lm_gen *g)
{
	size_t		hold = 0;

	for (int i = 0; i < g->p.n_stop; i++)
	{
		const char *s = g->p.stop[i];
		size_t		sl = s ? strlen(s) : 0;

		for (size_t k = sl > 0 ? sl - 1 : 0; k > hold; k--)
			if (k <= g->len && memcmp(g->text + g->len - k, s, k) == 0)
			{
				hold = k;
				break;
			}
	}
	return hold;
}

/* Evaluate one token at g->pos and sample the next pending token. */
static bool
step(lm_gen *g, int32_t token, char *err, size_t errlen)
{
	double		t0 = now_s();
	const float *lg;

	lm_batch_clear(g->batch);
	lm_batch_add(g->batch, token, g->pos, g->seq, true);
	if (lm_model_forward(g->ctx, g->batch, err, errlen) != 0)
		return false;
	g->pos++;
	lg = lm_context_logits(g->ctx, 0);
	g->pending = lm_sampler_sample(g->smp, lg);
	g->t_gen += now_s() - t0;
	return true;
}

/* Start: evaluate the prompt and sample the first token. */
lm_gen *
lm_gen_start(lm_context *ctx, const lm_tokenizer *tok, int seq, const int32_t *prompt,
			 int n_prompt, const lm_gen_params *p, char *err, size_t errlen)
{
	const lm_model *m = lm_context_model(ctx);
	lm_gen	   *g;
	lm_batch   *pb = NULL;
	double		t0 = now_s();

	if (n_prompt < 1 || n_prompt > lm_context_n_ctx(ctx))
	{
		snprintf(err, errlen, "prompt has %d tokens; it needs 1 to %d (the context size)",
				 n_prompt, lm_context_n_ctx(ctx));
		return NULL;
	}
	if (p->max_words < 0)
	{
		snprintf(err, errlen, "max_words must be 0 (off) or positive (got %d)", p->max_words);
		return NULL;
	}
	if (p->max_tokens < 1)
	{
		snprintf(err, errlen, "max_tokens must be at least 1 (got %d)", p->max_tokens);
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		goto oom;
	g->ctx = ctx;
	g->tok = tok;
	g->seq = seq;
	g->p = *p;
	g->smp = lm_sampler_create(&p->sampling, m->cfg.n_vocab, err, errlen);
	if (!g->smp)
		goto fail;
	g->batch = lm_batch_create(1);
	g->toks = malloc(sizeof(int32_t) * p->max_tokens);
	if (!g->batch || !g->toks || !text_reserve(g, 256))
		goto oom;
	g->text[0] = 0;
	if (tok)
	{
		lm_detok_init(&g->detok, tok);
		g->detok.strip_space = false;	/* a continuation keeps its leading space */
	}

	/* the whole prompt as one batch, logits of its last token */
	pb = lm_batch_create(n_prompt);
	if (!pb)
		goto oom;
	lm_kv_seq_clear(lm_context_kv(ctx), seq);
	for (int i = 0; i < n_prompt; i++)
	{
		lm_batch_add(pb, prompt[i], i, seq, i == n_prompt - 1);
		lm_sampler_accept(g->smp, prompt[i]);
	}
	if (lm_model_forward(ctx, pb, err, errlen) != 0)
		goto fail;
	g->pos = n_prompt;
	g->pending = lm_sampler_sample(g->smp, lm_context_logits(ctx, n_prompt - 1));
	g->t_prompt = now_s() - t0;
	lm_batch_free(pb);
	return g;

oom:
	snprintf(err, errlen, "out of memory starting a generation");
fail:
	lm_batch_free(pb);
	lm_gen_free(g);
	return NULL;
}

/*
 * Finish: a multi-byte character still incomplete when generation ends
 * (max_tokens cut it) is dropped, never returned or replaced.
 */
static bool
finish(lm_gen *g, lm_gen_stop why)
{
	g->reason = why;
	lm_detok_drop(&g->detok);
	return true;
}

/* Produce the next token. */
int
lm_gen_next(lm_gen *g, int32_t *token, const char **text, size_t *text_len, char *err, size_t errlen)
{
	int32_t		t;
	size_t		old_len = g->len,
				safe;

	*text = "";
	*text_len = 0;
	if (g->reason != LM_GEN_RUNNING)
		return 0;
	t = g->pending;
	*token = t;
	g->toks[g->n_toks++] = t;
	lm_sampler_accept(g->smp, t);

	if (g->tok && !g->p.ignore_eog && lm_tokenizer_is_eog(g->tok, t))
	{
		if (!finish(g, LM_GEN_STOP_EOG))
			goto oom;
	}
	else
	{
		if (!text_append(g, t))
			goto oom;
		if (find_stop(g, old_len))
			finish(g, LM_GEN_STOP_STRING);
		else if (g->p.max_words > 0 && find_word_limit(g))
			finish(g, LM_GEN_STOP_MAX_WORDS);
		else if (g->n_toks >= g->p.max_tokens)
		{
			if (!finish(g, LM_GEN_STOP_MAX_TOKENS))
				goto oom;
		}
		else if (g->pos >= lm_context_n_ctx(g->ctx))
		{
			if (!finish(g, LM_GEN_STOP_CONTEXT))
				goto oom;
		}
		else if (!step(g, t, err, errlen))
			return -1;
	}

	/* hand over what is safe to print */
	safe = g->reason == LM_GEN_RUNNING ? g->len - stop_holdback(g) : g->len;
	if (safe > g->emitted)
	{
		*text = g->text + g->emitted;
		*text_len = safe - g->emitted;
		g->emitted = safe;
	}
	return 1;

oom:
	snprintf(err, errlen, "out of memory during generation");
	return -1;
}

/* End early. */
void
lm_gen_cancel(lm_gen *g)
{
	if (g && g->reason == LM_GEN_RUNNING)
		g->reason = LM_GEN_STOP_CANCELLED;
}

/* The generated text. */
const char *
lm_gen_text(const lm_gen *g, size_t *len)
{
	if (len)
		*len = g->len;
	return g->text;
}

/* The generated ids. */
const int32_t *
lm_gen_tokens(const lm_gen *g, int *n)
{
	*n = g->n_toks;
	return g->toks;
}

/* Why generation ended. */
lm_gen_stop
lm_gen_stop_reason(const lm_gen *g)
{
	return g->reason;
}

/* Name of a stop reason. */
const char *
lm_gen_stop_name(lm_gen_stop r)
{
	switch (r)
	{
		case LM_GEN_RUNNING:
			return "running";
		case LM_GEN_STOP_EOG:
			return "eog";
		case LM_GEN_STOP_STRING:
			return "stop string";
		case LM_GEN_STOP_MAX_TOKENS:
			return "max tokens";
		case LM_GEN_STOP_CONTEXT:
			return "context full";
		case LM_GEN_STOP_CANCELLED:
			return "cancelled";
		case LM_GEN_STOP_MAX_WORDS:
			return "max words";
	}
	return "unknown";
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
	lm_sampler_free(g->smp);
	lm_batch_free(g->batch);
	free(g->text);
	free(g->toks);
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
