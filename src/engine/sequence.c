/*
 * sequence.c — the generation state of one sequence (see sequence.h).
 *
 * The next token is sampled as soon as logits arrive and kept as
 * `pending`, so the logits are never needed after lm_sequence_sample
 * returns (other sequences may use the context in between).
 */
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* State of one generation. */
struct lm_sequence
{
	const lm_tokenizer *tok;	/* borrowed; NULL = ids only */
	int			n_ctx;			/* positions the sequence may hold */
	lm_gen_params p;			/* settings (p.stop points at stop below) */
	char	  **stop;			/* (p.n_stop) copies of the stop strings */
	lm_sampler *smp;			/* sampler */
	lm_detok	detok;			/* streaming detokenizer */
	char	   *text;			/* generated text, NUL-terminated */
	size_t		len;			/* bytes of text */
	size_t		cap;			/* bytes allocated */
	size_t		emitted;		/* bytes already handed to the caller */
	size_t		scanned;		/* bytes of text counted for the word limit */
	size_t		word_end;		/* end of the last complete word counted */
	int			words;			/* words begun in text[0..scanned) */
	int32_t    *toks;			/* (min(max_tokens, n_ctx - n_prompt + 1)) generated ids */
	int			n_toks;			/* count */
	int			pos;			/* position of the pending token */
	int32_t		pending;		/* sampled, not yet taken */
	lm_gen_stop reason;			/* RUNNING until finished */
};

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
text_reserve(lm_sequence *s, size_t more)
{
	size_t		need = s->len + more + 1;
	char	   *t;

	if (need <= s->cap)
		return true;
	if (need < 2 * s->cap)
		need = 2 * s->cap;
	t = realloc(s->text, need);
	if (!t)
		return false;
	s->text = t;
	s->cap = need;
	return true;
}

/* Append one token's text (or the detokenizer's tail when id < 0). */
static bool
text_append(lm_sequence *s, int32_t id)
{
	int			room = 64,
				n;

	if (!s->tok)
		return true;
	for (;;)
	{
		if (!text_reserve(s, room))
			return false;
		n = lm_detok_push(&s->detok, id, s->text + s->len, room);
		if (n >= 0)
			break;
		room = -n;
	}
	s->len += n;
	s->text[s->len] = 0;
	return true;
}

/* Cut the text at the first stop string that ends in the bytes after old_len; true if found. */
static bool
find_stop(lm_sequence *s, size_t old_len)
{
	size_t		best = (size_t) -1;

	for (int i = 0; i < s->p.n_stop; i++)
	{
		const char *st = s->stop[i];
		size_t		sl = st ? strlen(st) : 0,
					from;

		if (sl == 0 || sl > s->len)
			continue;
		from = old_len >= sl - 1 ? old_len - (sl - 1) : 0;
		for (size_t at = from; at + sl <= s->len && at < best; at++)
			if (memcmp(s->text + at, st, sl) == 0)
			{
				best = at;
				break;
			}
	}
	if (best == (size_t) -1)
		return false;
	s->len = best;
	s->text[best] = 0;
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
find_word_limit(lm_sequence *s)
{
	for (; s->scanned < s->len; s->scanned++)
	{
		bool		sp = is_space_byte(s->text[s->scanned]);
		bool		prev_sp = s->scanned == 0 || is_space_byte(s->text[s->scanned - 1]);

		if (!sp && prev_sp)
		{
			if (s->words == s->p.max_words)
			{
				s->len = s->word_end;
				s->text[s->len] = 0;
				return true;
			}
			s->words++;
		}
		if (!sp)
			s->word_end = s->scanned + 1;
	}
	return false;
}

/* Bytes at the end of the text that might begin a stop string. */
static size_t
stop_holdback(const lm_sequence *s)
{
	size_t		hold = 0;

	for (int i = 0; i < s->p.n_stop; i++)
	{
		const char *st = s->stop[i];
		size_t		sl = st ? strlen(st) : 0;

		for (size_t k = sl > 0 ? sl - 1 : 0; k > hold; k--)
			if (k <= s->len && memcmp(s->text + s->len - k, st, k) == 0)
			{
				hold = k;
				break;
			}
	}
	return hold;
}

/* Create the state of a generation after a prompt. */
lm_sequence *
lm_sequence_create(const lm_tokenizer *tok, int n_vocab, int n_ctx, const int32_t *prompt,
				   int n_prompt, const lm_gen_params *p, char *err, size_t errlen)
{
	lm_sequence *s;

	if (n_prompt < 1 || n_prompt > n_ctx)
	{
		snprintf(err, errlen, "prompt has %d tokens; it needs 1 to %d (the context size)", n_prompt, n_ctx);
		return NULL;
	}
	if (p->max_tokens < 1)
	{
		snprintf(err, errlen, "max_tokens must be at least 1 (got %d)", p->max_tokens);
		return NULL;
	}
	if (p->max_words < 0)
	{
		snprintf(err, errlen, "max_words must be 0 (off) or positive (got %d)", p->max_words);
		return NULL;
	}
	if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop))
	{
		snprintf(err, errlen, "invalid stop strings (%d)", p->n_stop);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	s->tok = tok;
	s->n_ctx = n_ctx;
	s->p = *p;
	s->p.stop = NULL;
	s->p.n_stop = 0;
	s->smp = lm_sampler_create(&p->sampling, n_vocab, err, errlen);
	if (!s->smp)
		goto fail;
	if (p->n_stop > 0)
	{
		s->stop = calloc(p->n_stop, sizeof(char *));
		if (!s->stop)
			goto oom;
		s->p.n_stop = p->n_stop;
		for (int i = 0; i < p->n_stop; i++)
			if (p->stop[i] && !(s->stop[i] = strdup(p->stop[i])))
				goto oom;
		s->p.stop = (const char *const *) s->stop;
	}
	/* at most one token per free position, and one more (the last is never evaluated) */
	s->toks = malloc(sizeof(int32_t) * (p->max_tokens < n_ctx - n_prompt + 1 ? p->max_tokens : n_ctx - n_prompt + 1));
	if (!s->toks || !text_reserve(s, 256))
		goto oom;
	s->text[0] = 0;
	if (tok)
	{
		lm_detok_init(&s->detok, tok);
		s->detok.strip_space = false;	/* a continuation keeps its leading space */
	}
	for (int i = 0; i < n_prompt; i++)
		lm_sampler_accept(s->smp, prompt[i]);
	s->pos = n_prompt;
	return s;

oom:
	snprintf(err, errlen, "out of memory starting a generation");
fail:
	lm_sequence_free(s);
	return NULL;
}

/* Free a sequence's state. */
void
lm_sequence_free(lm_sequence *s)
{
	if (!s)
		return;
	lm_sampler_free(s->smp);
	for (int i = 0; s->stop && i < s->p.n_stop; i++)
		free(s->stop[i]);
	free(s->stop);
	free(s->text);
	free(s->toks);
	free(s);
}

/* Sample the pending token. */
void
lm_sequence_sample(lm_sequence *s, const float *logits)
{
	s->pending = lm_sampler_sample(s->smp, logits);
}

/* Sample the next token, given the logits' argmax when known. */
void
lm_sequence_sample_hinted(lm_sequence *s, const float *logits, int32_t argmax)
{
	s->pending = lm_sampler_sample_hinted(s->smp, logits, argmax);
}

/*
 * Finish: a multi-byte character still incomplete when generation ends
 * (max_tokens cut it) is dropped, never returned or replaced.
 */
static void
finish(lm_sequence *s, lm_gen_stop why)
{
	s->reason = why;
	lm_detok_drop(&s->detok);
}

/* Take the pending token and apply the stop rules. */
int
lm_sequence_next(lm_sequence *s, int32_t *token, int32_t *pos, const char **text, size_t *text_len,
				 char *err, size_t errlen)
{
	int32_t		t;
	size_t		old_len = s->len,
				safe;

	*text = "";
	*text_len = 0;
	if (s->reason != LM_GEN_RUNNING)
		return 0;
	t = s->pending;
	*token = t;
	*pos = s->pos;
	s->toks[s->n_toks++] = t;
	lm_sampler_accept(s->smp, t);

	if (s->tok && !s->p.ignore_eog && lm_tokenizer_is_eog(s->tok, t))
		finish(s, LM_GEN_STOP_EOG);
	else
	{
		if (!text_append(s, t))
		{
			snprintf(err, errlen, "out of memory during generation");
			return -1;
		}
		if (find_stop(s, old_len))
			finish(s, LM_GEN_STOP_STRING);
		else if (s->p.max_words > 0 && find_word_limit(s))
			finish(s, LM_GEN_STOP_MAX_WORDS);
		else if (s->n_toks >= s->p.max_tokens)
			finish(s, LM_GEN_STOP_MAX_TOKENS);
		else if (s->pos >= s->n_ctx)
			finish(s, LM_GEN_STOP_CONTEXT);
		else
			s->pos++;			/* the caller evaluates t at *pos */
	}

	/* hand over what is safe to print */
	safe = s->reason == LM_GEN_RUNNING ? s->len - stop_holdback(s) : s->len;
	if (safe > s->emitted)
	{
		*text = s->text + s->emitted;
		*text_len = safe - s->emitted;
		s->emitted = safe;
	}
	return 1;
}

/* End early. */
void
lm_sequence_cancel(lm_sequence *s)
{
	if (s && s->reason == LM_GEN_RUNNING)
		s->reason = LM_GEN_STOP_CANCELLED;
}

/* The generated text. */
const char *
lm_sequence_text(const lm_sequence *s, size_t *len)
{
	if (len)
		*len = s->len;
	return s->text;
}

/* The generated ids. */
const int32_t *
lm_sequence_tokens(const lm_sequence *s, int *n)
{
	*n = s->n_toks;
	return s->toks;
}

/* Why generation ended. */
lm_gen_stop
lm_sequence_reason(const lm_sequence *s)
{
	return s->reason;
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
