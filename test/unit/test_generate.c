/*
 * test_generate.c — the generation loop on stories260K: greedy output equals
 * llama.cpp's, stop strings cut the text and are never streamed, the callback
 * can cancel between tokens, max_tokens holds, and seeded sampling repeats.
 */
#include <string.h>

#include "context.h"
#include "generate.h"
#include "kvcache.h"
#include "model.h"
#include "tokenizer.h"
#include "unit.h"

/* Collected stream of a generation. */
typedef struct stream
{
	char		buf[4096];		/* concatenated streamed text */
	size_t		len;			/* bytes */
	int			n;				/* callbacks */
	int			cancel_after;	/* return false after this many (0 = never) */
} stream;

/* Append streamed text; cancel when asked. */
static bool
collect(void *arg, int32_t token, const char *text, size_t len)
{
	stream	   *s = arg;

	if (s->len + len < sizeof(s->buf))
	{
		memcpy(s->buf + s->len, text, len);
		s->len += len;
		s->buf[s->len] = 0;
	}
	s->n++;
	return s->cancel_after == 0 || s->n < s->cancel_after;
}

int
main(void)
{
	const char *shared = unit_shared_dir();
	char		path[512],
				err[256] = "";
	static const int32_t prompt[] = {1, 403, 407, 261, 378};	/* "Once upon a time" */
	static const int32_t golden[8] = {432, 383, 286, 261, 376, 298, 315, 421};
	lm_model   *m;
	lm_tokenizer *tok;
	lm_context *ctx;
	lm_context_params cp = lm_context_default_params();
	lm_gen_params gp = lm_gen_default_params();
	lm_gen	   *g;
	stream		st;
	const int32_t *ids;
	int			n;
	size_t		tl;
	const char *text;

	snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
	if (!unit_readable(path))
		SKIP_ALL("shared models not found (set LMGEN_SHARED)");
	m = lm_model_open(path, err, sizeof(err));
	tok = m ? lm_tokenizer_load(m->gguf, err, sizeof(err)) : NULL;
	cp.n_ctx = 128;
	cp.n_seq_max = 2;
	ctx = tok ? lm_context_create(m, &cp, err, sizeof(err)) : NULL;
	if (!ctx)
	{
		CHECK(false, "model, tokenizer and context load (%s)", err);
		return unit_done();
	}

	/* greedy */
	memset(&st, 0, sizeof(st));
	gp.max_tokens = 48;
	g = lm_generate(ctx, tok, 0, prompt, 5, &gp, collect, &st, err, sizeof(err));
	ids = g ? lm_gen_tokens(g, &n) : NULL;
	text = g ? lm_gen_text(g, &tl) : "";
	CHECK(g && n == 48 && memcmp(ids, golden, sizeof(golden)) == 0,
		  "greedy generation starts with llama.cpp's tokens 432 383 286 ... (%s)", err);
	CHECK(g && strncmp(text, ", there was a little girl named Lily. She loved to play outside in the park.", 76) == 0,
		  "the text reads \", there was a little girl named Lily. ...\" (got \"%.40s\")", text);
	CHECK(g && st.len == tl && memcmp(st.buf, text, tl) == 0 && st.n == 48,
		  "the streamed pieces add up to the final text, one callback per token");
	CHECK(g && lm_gen_stop_reason(g) == LM_GEN_STOP_MAX_TOKENS, "it stops for max_tokens");
	lm_gen_free(g);

	/* stop string */
	{
		static const char *const stops[] = {"zebra", "park"};

		memset(&st, 0, sizeof(st));
		gp.stop = stops;
		gp.n_stop = 2;
		g = lm_generate(ctx, tok, 0, prompt, 5, &gp, collect, &st, err, sizeof(err));
		text = g ? lm_gen_text(g, &tl) : "";
		CHECK(g && lm_gen_stop_reason(g) == LM_GEN_STOP_STRING &&
			  strcmp(text, ", there was a little girl named Lily. She loved to play outside in the ") == 0,
			  "a stop string ends generation and is cut from the text (\"%s\")", text);
		CHECK(g && strstr(st.buf, "par") == NULL && strcmp(st.buf, text) == 0,
			  "no part of the stop string was streamed");
		lm_gen_free(g);
		gp.stop = NULL;
		gp.n_stop = 0;
	}

	/* word limit: the golden text, ", there was a little girl named Lily. ...", is cut after its 5th word */
	{
		memset(&st, 0, sizeof(st));
		gp.max_words = 5;
		g = lm_generate(ctx, tok, 0, prompt, 5, &gp, collect, &st, err, sizeof(err));
		text = g ? lm_gen_text(g, &tl) : "";
		CHECK(g && lm_gen_stop_reason(g) == LM_GEN_STOP_MAX_WORDS && strcmp(text, ", there was a little") == 0,
			  "max_words 5 stops when a 6th word begins and cuts the text after the 5th (\"%s\")", text);
		lm_gen_free(g);
		gp.max_words = 0;
	}

	/* cancellation from the callback */
	memset(&st, 0, sizeof(st));
	st.cancel_after = 5;
	g = lm_generate(ctx, tok, 0, prompt, 5, &gp, collect, &st, err, sizeof(err));
	CHECK(g && lm_gen_stop_reason(g) == LM_GEN_STOP_CANCELLED && (lm_gen_tokens(g, &n), n == 5),
		  "a callback returning false stops generation after that token");
	lm_gen_free(g);

	/* step-wise driving, as the SQL side does */
	{
		int32_t		t;
		int			steps = 0,
					rc;

		gp.max_tokens = 3;
		g = lm_gen_start(ctx, tok, 0, prompt, 5, &gp, err, sizeof(err));
		while (g && (rc = lm_gen_next(g, &t, &text, &tl, err, sizeof(err))) == 1)
			steps++;
		CHECK(g && steps == 3 && lm_gen_next(g, &t, &text, &tl, err, sizeof(err)) == 0,
			  "lm_gen_next yields max_tokens tokens, then 0");
		lm_gen_free(g);
	}

	/* seeded sampling repeats */
	{
		int32_t		a[32],
					b[32];
		int			na = 0,
					nb = 0;

		gp.max_tokens = 32;
		gp.sampling.temperature = 1.0f;
		gp.sampling.seed = 99;
		g = lm_generate(ctx, tok, 0, prompt, 5, &gp, NULL, NULL, err, sizeof(err));
		if (g)
		{
			const int32_t *t = lm_gen_tokens(g, &na);

			memcpy(a, t, sizeof(int32_t) * na);
		}
		lm_gen_free(g);
		g = lm_generate(ctx, tok, 0, prompt, 5, &gp, NULL, NULL, err, sizeof(err));
		if (g)
		{
			const int32_t *t = lm_gen_tokens(g, &nb);

			memcpy(b, t, sizeof(int32_t) * nb);
		}
		lm_gen_free(g);
		CHECK(na > 0 && na == nb && memcmp(a, b, sizeof(int32_t) * na) == 0,
			  "sampling with the same seed gives the same %d tokens", na);

		/* the same after a prompt sequence 0 evaluated for a greedy generation that ran first */
		{
			lm_gen_params greedy = lm_gen_default_params();
			lm_gen	   *first = lm_generate(ctx, tok, 0, prompt, 5, &greedy, NULL, NULL, err, sizeof(err));

			g = first ? lm_gen_start_after(ctx, tok, 1, 0, prompt, 5, &gp, err, sizeof(err)) : NULL;
			nb = 0;
			if (g)
			{
				int32_t		t;

				while (lm_gen_next(g, &t, &text, &tl, err, sizeof(err)) == 1)
					;
				memcpy(b, lm_gen_tokens(g, &nb), sizeof(int32_t) * nb);
			}
			CHECK(g && na == nb && memcmp(a, b, sizeof(int32_t) * na) == 0,
				  "a generation started after another's prompt samples the same %d tokens (%s)", nb, g ? "" : err);
			lm_gen_free(g);
			lm_gen_free(first);
			g = lm_gen_start_after(ctx, tok, 0, 0, prompt, 5, &gp, err, sizeof(err));
			CHECK(g == NULL && strstr(err, "does not hold") != NULL, "a sequence cannot start after itself (%s)", err);
			lm_kv_seq_clear(lm_context_kv(ctx), 0);
			g = lm_gen_start_after(ctx, tok, 1, 0, prompt, 5, &gp, err, sizeof(err));
			CHECK(g == NULL && strstr(err, "does not hold") != NULL,
				  "nor after a sequence that does not hold the prompt (%s)", err);
		}
	}

	/* bad input */
	gp = lm_gen_default_params();
	g = lm_gen_start(ctx, tok, 0, prompt, 0, &gp, err, sizeof(err));
	CHECK(g == NULL && strstr(err, "prompt") != NULL, "an empty prompt is refused (%s)", err);

	lm_context_free(ctx);
	lm_tokenizer_free(tok);
	lm_model_free(m);
	return unit_done();
}
