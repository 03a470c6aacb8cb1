/*
 * test_scheduler.c — the continuous-batching scheduler (scheduler.h) and the
 * forward-pass properties it rests on, on stories260K (../shared, skipped
 * when absent) and on small llamas written by test/gguf_writer.py (F32 and
 * Q8_0, so these checks run without ../shared too):
 *
 *   - a prompt fed in chunks of 1, 7 or 64 tokens gives logits bit-identical
 *     to one pass when its tokens carry the prompt value order
 *     (LM_PREFILL_YES), and differs when a chunk of one token infers the
 *     order from the batch (LM_PREFILL_AUTO, the cause of the bug);
 *   - 16 requests of different prompt lengths, max_tokens, greedy and seeded
 *     sampling, stop strings, run together with step_tokens 1, 7, 64 and
 *     512, give tokens and text byte-identical to lm_generate() alone;
 *   - an embedding among generations equals lm_embed() alone;
 *   - cancelling a running request gives its KV blocks back at once and
 *     leaves the others' answers unchanged;
 *   - with a KV budget too small for all requests at once they queue, never
 *     exceed the budget, and all finish with the same answers;
 *   - a request that can never fit fails at submit with a message;
 *   - a step stopped by the abort check changes nothing: the next steps give
 *     the same answers;
 *   - label scores (classify) through the scheduler, alone, among
 *     generations and with step_tokens 1, equal bit for bit the way
 *     classify computed them before its trie scorer: the prompt in one
 *     batch, each label's tokens but the last in one batch of their own;
 *   - shared prompt prefixes: 16 requests whose prompts begin with the same
 *     40 tokens give byte-identical answers with share_prefixes off and on
 *     at step_tokens 1, 7, 64 and 512, and with it on evaluate the prefix
 *     once (lm_sched_stats.prompt_tokens / prompt_tokens_reused), through 16
 *     slots or 4; generations share the prefix an embedding computed; the
 *     request computing the prefix is cancelled while the others wait for
 *     it; a step that took the prefix is stopped by the abort check; a
 *     second batch starts from the prefix the first left; under a
 *     12-block KV budget that prefix is dropped for running requests and
 *     admission does not wait for it; label scorings share a prefix.
 *
 * LMGEN_SCHED_MODEL=path runs the same checks on another model too (by hand:
 * the installed SmolLM2 and Gemma 3 take minutes).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "embed.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "scheduler.h"
#include "tokenizer.h"
#include "unit.h"

#define N_REQ 16
#define N_CTX 160
#define MAX_PROMPT 80

/* One test request and what it gave alone. */
typedef struct test_req
{
	int32_t		prompt[MAX_PROMPT];	/* ids, BOS first */
	int			n_prompt;		/* length */
	lm_gen_params gp;			/* settings */
	bool		embed;			/* an embedding instead of a generation */
	int32_t    *ref_tok;		/* generated ids alone */
	int			ref_n;			/* count */
	char	   *ref_text;		/* text alone */
	lm_gen_stop ref_reason;		/* stop reason alone */
	float	   *ref_emb;		/* embedding alone */
} test_req;

/* What a scheduler run gave for each request. */
typedef struct run_out
{
	bool		done[N_REQ];	/* finished */
	bool		same[N_REQ];	/* equal to the request alone */
	int			status[N_REQ];	/* lm_sched_status */
	int			max_running;	/* most requests running at once */
	int			max_waiting;	/* most waiting at once */
	size_t		max_in_use;		/* most KV bytes in use after a step */
	lm_sched_stats st;			/* counters at the end */
} run_out;

static const char *const stop_strings[] = {" the", "!"};

/* Requests of different prompt lengths and settings: greedy, seeded sampling, stop strings, embeddings. */
static void
make_requests(test_req *r, int n_vocab, int32_t bos, bool with_embeds)
{
	for (int i = 0; i < N_REQ; i++)
	{
		memset(&r[i], 0, sizeof(r[i]));
		r[i].n_prompt = 1 + (i * 23) % 70;
		r[i].prompt[0] = bos;
		for (int k = 1; k < r[i].n_prompt; k++)
			r[i].prompt[k] = 3 + (k * 37 + i * 11) % (n_vocab - 3);
		r[i].gp = lm_gen_default_params();
		r[i].gp.max_tokens = 1 + (i * 7) % 40;
		if (i % 3 == 1)
		{
			r[i].gp.sampling.temperature = 0.8f;
			r[i].gp.sampling.top_p = 0.9f;
			r[i].gp.sampling.top_k = 40;
			r[i].gp.sampling.seed = 1000 + i;
		}
		if (i % 4 == 2)
		{
			r[i].gp.stop = stop_strings;
			r[i].gp.n_stop = 2;
		}
		r[i].embed = with_embeds && (i == 5 || i == 12);
	}
	r[15].gp.max_tokens = 200;	/* runs into the end of the context */
	r[15].n_prompt = 70;
	for (int k = 1; k < 70; k++)
		r[15].prompt[k] = 3 + (k * 5) % (n_vocab - 3);
}

#define PREFIX_LEN 40

/*
 * 16 requests whose prompts share their first PREFIX_LEN tokens (BOS and a
 * fixed text, as a chat template and an instruction would) and then differ
 * from the first body token on: bodies of 3 to 27 tokens, greedy and seeded
 * sampling, stop strings; `variant` changes the prefix, `with_embeds` makes
 * requests 0 and 9 embeddings (0 is then the one that computes the prefix).
 */
static void
make_prefix_requests(test_req *r, int n_vocab, int32_t bos, int variant, bool with_embeds)
{
	for (int i = 0; i < N_REQ; i++)
	{
		int			body = 3 + (i * 7) % 25;

		memset(&r[i], 0, sizeof(r[i]));
		r[i].n_prompt = PREFIX_LEN + body;
		r[i].prompt[0] = bos;
		for (int k = 1; k < PREFIX_LEN; k++)
			r[i].prompt[k] = 3 + (k * 41 + variant * 97) % (n_vocab - 3);
		for (int k = 0; k < body; k++)
			r[i].prompt[PREFIX_LEN + k] = 3 + (i * 13 + k * (17 + variant) + 5) % (n_vocab - 3);
		r[i].gp = lm_gen_default_params();
		r[i].gp.max_tokens = 1 + (i * 5 + variant) % 20;
		if (i % 3 == 1)
		{
			r[i].gp.sampling.temperature = 0.8f;
			r[i].gp.sampling.seed = 77 + i;
		}
		if (i % 4 == 2)
		{
			r[i].gp.stop = stop_strings;
			r[i].gp.n_stop = 2;
		}
		r[i].embed = with_embeds && (i == 0 || i == 9);
	}
}

/* Prompt tokens of requests [0, n). */
static int64_t
prompt_total(const test_req *r, int n)
{
	int64_t		t = 0;

	for (int i = 0; i < n; i++)
		t += r[i].n_prompt;
	return t;
}

/* Compute each request alone: lm_generate / lm_embed on a one-sequence context. */
static bool
run_alone(lm_model *m, const lm_tokenizer *tok, test_req *r)
{
	char		err[256];
	lm_context_params cp = lm_context_default_params();
	lm_context *ctx;
	bool		ok = true;

	cp.n_ctx = N_CTX;
	cp.n_threads = 1;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	if (!ctx)
		return false;
	for (int i = 0; i < N_REQ && ok; i++)
	{
		if (r[i].embed)
		{
			r[i].ref_emb = malloc(sizeof(float) * m->cfg.n_embd);
			ok = lm_embed(ctx, 0, r[i].prompt, r[i].n_prompt, r[i].ref_emb, err, sizeof(err)) == 0;
		}
		else
		{
			lm_gen	   *g = lm_generate(ctx, tok, 0, r[i].prompt, r[i].n_prompt, &r[i].gp, NULL, NULL,
										err, sizeof(err));
			const int32_t *t;
			size_t		len;
			const char *text;

			ok = g != NULL;
			if (!ok)
				break;
			t = lm_gen_tokens(g, &r[i].ref_n);
			r[i].ref_tok = malloc(sizeof(int32_t) * (r[i].ref_n + 1));
			memcpy(r[i].ref_tok, t, sizeof(int32_t) * r[i].ref_n);
			text = lm_gen_text(g, &len);
			r[i].ref_text = malloc(len + 1);
			memcpy(r[i].ref_text, text, len + 1);
			r[i].ref_reason = lm_gen_stop_reason(g);
			lm_gen_free(g);
		}
	}
	if (!ok)
		printf("# alone: %s\n", err);
	lm_context_free(ctx);
	return ok;
}

/* Free the references. */
static void
free_requests(test_req *r)
{
	for (int i = 0; i < N_REQ; i++)
	{
		free(r[i].ref_tok);
		free(r[i].ref_text);
		free(r[i].ref_emb);
	}
}

/* True when a finished result equals the request alone. */
static bool
same_as_alone(const test_req *r, const lm_sched_result *res, int n_embd)
{
	if (res->status != LM_SCHED_OK)
		return false;
	if (r->embed)
		return res->embedding && res->n_embd == n_embd &&
			memcmp(res->embedding, r->ref_emb, sizeof(float) * n_embd) == 0;
	return res->n_tokens == r->ref_n && memcmp(res->tokens, r->ref_tok, sizeof(int32_t) * r->ref_n) == 0 &&
		res->len == strlen(r->ref_text) && memcmp(res->text, r->ref_text, res->len) == 0 &&
		res->reason == r->ref_reason;
}

/* Abort check that fires once, at its n-th call. */
typedef struct abort_once
{
	int			calls;			/* calls so far */
	int			at;				/* fire at this call (0 = never) */
} abort_once;

/* Abort callback. */
static bool
abort_at(void *arg)
{
	abort_once *a = arg;

	return ++a->calls == a->at;
}

/*
 * Submit requests [0, n) in order to scheduler s over ctx and step until all
 * have finished; cancel request cancel_i (if >= 0) after cancel_step steps;
 * fire the abort check once in step abort_step (if > 0).
 */
static bool
run_on(lm_context *ctx, lm_sched *s, test_req *r, int n, int cancel_i, int cancel_step, int abort_step,
	   run_out *o)
{
	char		err[256] = "";
	int64_t		ids[N_REQ];
	int			n_done = 0,
				steps = 0,
				n_embd = lm_context_model(ctx)->cfg.n_embd;
	abort_once	ab = {0, 0};
	bool		ok = true;

	memset(o, 0, sizeof(*o));
	for (int i = 0; i < n; i++)
	{
		ids[i] = r[i].embed ? lm_sched_submit_embed(s, r[i].prompt, r[i].n_prompt, err, sizeof(err)) :
			lm_sched_submit_generate(s, r[i].prompt, r[i].n_prompt, &r[i].gp, err, sizeof(err));
		if (ids[i] < 0)
		{
			printf("# submit %d: %s\n", i, err);
			ok = false;
		}
	}
	while (ok && n_done < n && steps < 100000)
	{
		lm_sched_result res;
		int			rc;
		lm_sched_stats st;

		if (steps == cancel_step && cancel_i >= 0)
			lm_sched_cancel(s, ids[cancel_i]);
		if (steps == abort_step && abort_step > 0)
		{
			ab.calls = 0;
			ab.at = 4;
			lm_context_set_abort(ctx, abort_at, &ab);
		}
		rc = lm_sched_step(s, err, sizeof(err));
		if (steps == abort_step && abort_step > 0)
		{
			lm_context_set_abort(ctx, NULL, NULL);
			if (rc != -2)
			{
				printf("# the abort check did not stop step %d (rc %d)\n", steps, rc);
				ok = false;
			}
		}
		else if (rc < 0)
		{
			printf("# step: %s\n", err);
			ok = false;
		}
		steps++;
		if (lm_sched_n_running(s) > o->max_running)
			o->max_running = lm_sched_n_running(s);
		if (lm_sched_n_waiting(s) > o->max_waiting)
			o->max_waiting = lm_sched_n_waiting(s);
		lm_sched_get_stats(s, &st);
		if (st.kv_in_use > o->max_in_use)
			o->max_in_use = st.kv_in_use;
		while (lm_sched_take_finished(s, &res))
		{
			for (int i = 0; i < n; i++)
				if (ids[i] == res.id)
				{
					o->done[i] = true;
					o->status[i] = res.status;
					o->same[i] = same_as_alone(&r[i], &res, n_embd);
				}
			lm_sched_release(s, res.id);
			n_done++;
		}
		if (rc == 0 && n_done < n && lm_sched_n_running(s) == 0 && lm_sched_n_waiting(s) == 0)
			break;
	}
	lm_sched_get_stats(s, &o->st);
	return ok && n_done == n;
}

/* run_on with a new scheduler of max_seqs slots, step_tokens and shared prefixes on or off. */
static bool
run_sched_share(lm_context *ctx, const lm_tokenizer *tok, test_req *r, int n, int max_seqs, int step_tokens,
				bool share, int cancel_i, int cancel_step, int abort_step, run_out *o)
{
	char		err[256] = "";
	lm_sched_params sp = lm_sched_default_params();
	lm_sched   *s;
	bool		ok;

	sp.max_seqs = max_seqs;
	sp.step_tokens = step_tokens;
	sp.share_prefixes = share;
	s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
	if (!s)
	{
		printf("# lm_sched_create: %s\n", err);
		memset(o, 0, sizeof(*o));
		return false;
	}
	ok = run_on(ctx, s, r, n, cancel_i, cancel_step, abort_step, o);
	lm_sched_free(s);
	return ok;
}

/* run_sched_share with the default (shared prefixes). */
static bool
run_sched(lm_context *ctx, const lm_tokenizer *tok, test_req *r, int n, int max_seqs, int step_tokens,
		  int cancel_i, int cancel_step, int abort_step, run_out *o)
{
	return run_sched_share(ctx, tok, r, n, max_seqs, step_tokens, true, cancel_i, cancel_step, abort_step, o);
}

/* Count of requests [0, n) that finished identical to their run alone. */
static int
count_same(const run_out *o, int n)
{
	int			k = 0;

	for (int i = 0; i < n; i++)
		k += o->done[i] && o->same[i];
	return k;
}

/* Logits after a 60-token prompt fed in chunks of `chunk` tokens with value order `order`. */
static bool
chunked_logits(lm_model *m, int chunk, int order, float *out)
{
	char		err[256];
	lm_context_params cp = lm_context_default_params();
	lm_context *ctx;
	lm_batch   *b = lm_batch_create(64);
	bool		ok;

	cp.n_ctx = 128;
	cp.n_threads = 2;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	ok = ctx && b;
	for (int i0 = 0; ok && i0 < 60; i0 += chunk)
	{
		lm_batch_clear(b);
		for (int i = i0; i < 60 && i < i0 + chunk; i++)
			lm_batch_add_token(b, 3 + (i * 37) % (m->cfg.n_vocab - 3), i, 0,
							   i == 59 ? LM_OUT_LOGITS : LM_OUT_NONE, order);
		ok = lm_model_forward(ctx, b, err, sizeof(err)) == 0;
		if (ok && i0 + chunk >= 60)
			memcpy(out, lm_context_logits(ctx, b->n_tokens - 1), sizeof(float) * m->cfg.n_vocab);
	}
	lm_batch_free(b);
	lm_context_free(ctx);
	return ok;
}

/*
 * Chunked prefill gives one-pass bits with explicit prompt order; when
 * show_cause, also that one-token chunks inferring the order differ (on
 * stories260K and the F32 llama; the small Q8_0 llama happens to give the
 * same logits either way).
 */
static void
check_chunked_prefill(lm_model *m, const char *name, bool show_cause)
{
	int			V = m->cfg.n_vocab;
	float	   *l = malloc(sizeof(float) * V * 5);
	static const int chunks[] = {1, 7, 64};
	bool		ok = chunked_logits(m, 60, LM_PREFILL_YES, l);

	for (int c = 0; c < 3; c++)
	{
		bool		ok_c = ok && chunked_logits(m, chunks[c], LM_PREFILL_YES, l + V * (c + 1));

		CHECK(ok_c && memcmp(l, l + V * (c + 1), sizeof(float) * V) == 0,
			  "%s: a 60-token prompt in chunks of %d gives logits bit-identical to one pass", name, chunks[c]);
	}
	if (show_cause)
	{
		ok = ok && chunked_logits(m, 1, LM_PREFILL_AUTO, l + V * 4);
		CHECK(ok && memcmp(l, l + V * 4, sizeof(float) * V) != 0,
			  "%s: one-token chunks that infer their value order from the batch differ (why tokens carry it)", name);
	}
	free(l);
}

#define N_LABELS 7

/* Label k: 1 to 5 tokens; labels 2..4 share their first two tokens. */
static int
make_label(int k, int n_vocab, int32_t *ids)
{
	static const int len[N_LABELS] = {1, 2, 3, 3, 5, 2, 4};

	for (int j = 0; j < len[k]; j++)
		ids[j] = 3 + ((k >= 2 && k <= 4 && j < 2 ? 2 : k) * 53 + j * 29) % (n_vocab - 3);
	return len[k];
}

/*
 * Label scores computed the way classify did before its trie scorer: the
 * prompt as one batch; each label's tokens but the last as one batch after
 * it (value order inferred from the batch); lm_logprob terms in token order.
 */
static bool
scores_reference(lm_context *ctx, const int32_t *prompt, int n, int32_t lab[][8], const int *lab_n, double *out)
{
	char		err[256];
	int			V = lm_context_model(ctx)->cfg.n_vocab;
	lm_batch   *b = lm_batch_create(n + 8);
	bool		ok = b != NULL;
	const float *lg;
	lm_lognorm	z;

	lm_kv_seq_clear(lm_context_kv(ctx), 0);
	for (int i = 0; ok && i < n; i++)
		lm_batch_add(b, prompt[i], i, 0, i == n - 1);
	ok = ok && lm_model_forward(ctx, b, err, sizeof(err)) == 0;
	if (ok)
	{
		lg = lm_context_logits(ctx, n - 1);
		z = lm_lognorm_of(lg, V);
		for (int k = 0; k < N_LABELS; k++)
			out[k] = lm_logprob(lg, z, lab[k][0]);
	}
	for (int k = 0; ok && k < N_LABELS; k++)
	{
		if (lab_n[k] < 2)
			continue;
		lm_batch_clear(b);
		for (int j = 0; j < lab_n[k] - 1; j++)
			lm_batch_add(b, lab[k][j], n + j, 0, true);
		ok = lm_model_forward(ctx, b, err, sizeof(err)) == 0;
		for (int j = 0; ok && j < lab_n[k] - 1; j++)
		{
			lg = lm_context_logits(ctx, j);
			z = lm_lognorm_of(lg, V);
			out[k] += lm_logprob(lg, z, lab[k][j + 1]);
		}
	}
	lm_batch_free(b);
	return ok;
}

/* Scores through the scheduler: alone, after the 16 other requests, or with step_tokens 1. */
static bool
scores_sched(lm_context *ctx, const lm_tokenizer *tok, test_req *others, int step_tokens,
			 const int32_t *prompt, int n, int32_t lab[][8], const int *lab_n, double *out)
{
	char		err[256];
	lm_sched_params sp = lm_sched_default_params();
	lm_sched   *s;
	const int32_t *labels[N_LABELS];
	int64_t		id;
	lm_sched_result res;
	bool		got = false;

	sp.step_tokens = step_tokens;
	s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
	if (!s)
		return false;
	for (int k = 0; k < N_LABELS; k++)
		labels[k] = lab[k];
	for (int i = 0; others && i < 8; i++)
		if (others[i].embed)
			lm_sched_submit_embed(s, others[i].prompt, others[i].n_prompt, err, sizeof(err));
		else
			lm_sched_submit_generate(s, others[i].prompt, others[i].n_prompt, &others[i].gp, err, sizeof(err));
	id = lm_sched_submit_score(s, prompt, n, labels, lab_n, N_LABELS, err, sizeof(err));
	for (int guard = 0; id >= 0 && !got && guard < 100000; guard++)
	{
		if (lm_sched_step(s, err, sizeof(err)) < 0)
			break;
		while (lm_sched_take_finished(s, &res))
		{
			if (res.id == id && res.status == LM_SCHED_OK && res.n_scores == N_LABELS)
			{
				memcpy(out, res.scores, sizeof(double) * N_LABELS);
				got = true;
			}
			lm_sched_release(s, res.id);
		}
	}
	if (id < 0)
		printf("# submit_score: %s\n", err);
	lm_sched_free(s);
	return got;
}

/* Label scores through the scheduler equal the old batch-per-label computation, bit for bit. */
static void
check_scores(lm_context *ctx, const lm_tokenizer *tok, test_req *others, const char *name)
{
	int			V = lm_context_model(ctx)->cfg.n_vocab;
	int32_t		prompt[40],
				lab[N_LABELS][8];
	int			lab_n[N_LABELS];
	double		ref[N_LABELS] = {0},
				got[N_LABELS] = {0};
	bool		ok;

	prompt[0] = lm_tokenizer_bos(tok);
	for (int i = 1; i < 40; i++)
		prompt[i] = 3 + (i * 71) % (V - 3);
	for (int k = 0; k < N_LABELS; k++)
		lab_n[k] = make_label(k, V, lab[k]);
	ok = scores_reference(ctx, prompt, 40, lab, lab_n, ref);
	CHECK(ok, "%s: reference label scores", name);
	ok = ok && scores_sched(ctx, tok, NULL, 64, prompt, 40, lab, lab_n, got);
	CHECK(ok && memcmp(ref, got, sizeof(ref)) == 0,
		  "%s: %d label scores (1 to 5 tokens) through the scheduler alone equal the per-label batches bit for bit "
		  "(first %.6f vs %.6f)", name, N_LABELS, ref[0], got[0]);
	ok = ok && scores_sched(ctx, tok, others, 64, prompt, 40, lab, lab_n, got);
	CHECK(ok && memcmp(ref, got, sizeof(ref)) == 0,
		  "%s: label scores among 8 generations and embeddings are unchanged", name);
	ok = ok && scores_sched(ctx, tok, others, 1, prompt, 40, lab, lab_n, got);
	CHECK(ok && memcmp(ref, got, sizeof(ref)) == 0,
		  "%s: label scores with step_tokens 1 (prompt and labels one token per step) are unchanged", name);
}

/* Label scores of 4 prompts with a common PREFIX_LEN-token prefix, submitted together, equal each alone. */
static void
check_prefix_scores(lm_context *ctx, const lm_tokenizer *tok, const char *name)
{
	char		err[256];
	int			V = lm_context_model(ctx)->cfg.n_vocab,
				n = PREFIX_LEN + 5,
				got_n = 0;
	int32_t		pr[4][PREFIX_LEN + 5],
				lab[N_LABELS][8];
	const int32_t *labels[N_LABELS];
	int			lab_n[N_LABELS];
	double		ref[4][N_LABELS],
				got[4][N_LABELS];
	int64_t		ids[4];
	lm_sched_params sp = lm_sched_default_params();
	lm_sched   *s;
	lm_sched_stats st = {0};
	bool		ok = true;

	for (int k = 0; k < N_LABELS; k++)
	{
		lab_n[k] = make_label(k, V, lab[k]);
		labels[k] = lab[k];
	}
	for (int t = 0; t < 4; t++)
	{
		pr[t][0] = lm_tokenizer_bos(tok);
		for (int i = 1; i < n; i++)
			pr[t][i] = 3 + (i < PREFIX_LEN ? i * 59 : i * 31 + t * 101) % (V - 3);
		ok = ok && scores_sched(ctx, tok, NULL, 64, pr[t], n, lab, lab_n, ref[t]);
	}
	sp.step_tokens = 16;
	s = ok ? lm_sched_create(ctx, tok, &sp, err, sizeof(err)) : NULL;
	for (int t = 0; s && t < 4; t++)
		ids[t] = lm_sched_submit_score(s, pr[t], n, labels, lab_n, N_LABELS, err, sizeof(err));
	for (int guard = 0; s && got_n < 4 && guard < 10000; guard++)
	{
		lm_sched_result res;

		if (lm_sched_step(s, err, sizeof(err)) < 0)
			break;
		while (lm_sched_take_finished(s, &res))
		{
			for (int t = 0; t < 4; t++)
				if (res.id == ids[t] && res.status == LM_SCHED_OK && res.n_scores == N_LABELS)
				{
					memcpy(got[t], res.scores, sizeof(got[t]));
					got_n++;
				}
			lm_sched_release(s, res.id);
		}
	}
	if (s)
		lm_sched_get_stats(s, &st);
	lm_sched_free(s);
	CHECK(got_n == 4 && memcmp(ref, got, sizeof(ref)) == 0 && st.prompt_tokens_reused == 3 * PREFIX_LEN,
		  "%s: 4 label scorings with a common %d-token prefix share it (%lld positions reused) and score "
		  "bit for bit as alone", name, PREFIX_LEN, (long long) st.prompt_tokens_reused);
}

/*
 * 16 requests of 8 distinct 20-token prompts, 28 tokens each whatever they
 * generate (3 blocks of KV apiece): fills a budget of 12 blocks with 4.
 */
static void
make_block_requests(test_req *r, int n_vocab, int32_t bos)
{
	for (int i = 0; i < N_REQ; i++)
	{
		memset(&r[i], 0, sizeof(r[i]));
		r[i].n_prompt = 20;
		r[i].prompt[0] = bos;
		for (int k = 1; k < 20; k++)
			r[i].prompt[k] = 3 + (k * 29 + i * 83) % (n_vocab - 3);
		r[i].gp = lm_gen_default_params();
		r[i].gp.max_tokens = 28;
		r[i].gp.ignore_eog = true;
	}
}

/*
 * Shared prompt prefixes: answers byte-identical with sharing off and on at
 * every step size, the common prefix evaluated once, prefixes kept from
 * finished requests reused by the next batch and dropped when a tight KV
 * budget needs their blocks (admission never waits for them), and the
 * request computing a prefix cancelled while the others wait for it.
 */
static void
check_prefixes(lm_model *m, const lm_tokenizer *tok, lm_context *ctx, const char *name)
{
	char		err[256];
	test_req   *r = calloc(N_REQ, sizeof(test_req)),
			   *e = calloc(N_REQ, sizeof(test_req)),
			   *d = calloc(N_REQ, sizeof(test_req));
	int32_t		bos = lm_tokenizer_bos(tok);
	int			V = m->cfg.n_vocab;
	static const int steps[] = {1, 7, 64, 512};
	run_out		o,
				o2;
	int64_t		total;
	bool		ok;

	if (!r || !e || !d)
		goto done;
	make_prefix_requests(r, V, bos, 0, false);
	make_prefix_requests(e, V, bos, 1, true);
	make_block_requests(d, V, bos);
	ok = run_alone(m, tok, r) && run_alone(m, tok, e) && run_alone(m, tok, d);
	CHECK(ok, "%s: requests with a common %d-token prefix run alone", name, PREFIX_LEN);
	if (!ok)
		goto done;
	total = prompt_total(r, N_REQ);

	for (int k = 0; k < 4; k++)
	{
		ok = run_sched_share(ctx, tok, r, N_REQ, N_REQ, steps[k], false, -1, 0, 0, &o);
		CHECK(ok && count_same(&o, N_REQ) == N_REQ && o.st.prompt_tokens == total &&
			  o.st.prompt_tokens_reused == 0,
			  "%s: sharing off, step_tokens %d: 16 answers byte-identical to alone, all %lld prompt tokens "
			  "evaluated (%lld)", name, steps[k], (long long) total, (long long) o.st.prompt_tokens);
		ok = run_sched_share(ctx, tok, r, N_REQ, N_REQ, steps[k], true, -1, 0, 0, &o);
		CHECK(ok && count_same(&o, N_REQ) == N_REQ && o.st.prompt_tokens == total - 15 * PREFIX_LEN &&
			  o.st.prompt_tokens_reused == 15 * PREFIX_LEN,
			  "%s: sharing on, step_tokens %d: 16 answers byte-identical to alone (%d) and the %d-token prefix "
			  "evaluated once (%lld prompt tokens evaluated, %lld reused)", name, steps[k],
			  count_same(&o, N_REQ), PREFIX_LEN, (long long) o.st.prompt_tokens,
			  (long long) o.st.prompt_tokens_reused);
	}

	/* 4 slots: later requests start from running ones and from the prefix the finished ones left */
	ok = run_sched_share(ctx, tok, r, N_REQ, 4, 64, true, -1, 0, 0, &o);
	CHECK(ok && count_same(&o, N_REQ) == N_REQ && o.st.prompt_tokens_reused == 15 * PREFIX_LEN &&
		  o.st.prefixes_cached == 1,
		  "%s: 16 through 4 slots: byte-identical (%d), prefix evaluated once (%lld reused), one prefix kept "
		  "at the end (%d)", name, count_same(&o, N_REQ), (long long) o.st.prompt_tokens_reused,
		  o.st.prefixes_cached);

	/* embeddings need every position's state: they evaluate their whole prompt, and may compute the prefix */
	ok = run_sched_share(ctx, tok, e, N_REQ, N_REQ, 64, true, -1, 0, 0, &o);
	CHECK(ok && count_same(&o, N_REQ) == N_REQ && o.st.prompt_tokens_reused == 14 * PREFIX_LEN,
		  "%s: 14 generations share the prefix an embedding computed; all 16 byte-identical (%d, %lld reused)",
		  name, count_same(&o, N_REQ), (long long) o.st.prompt_tokens_reused);

	/* the request computing the prefix is cancelled while 5 others wait for it */
	ok = run_sched_share(ctx, tok, r, 6, 6, 7, true, 0, 2, 0, &o);
	CHECK(ok && o.status[0] == LM_SCHED_CANCELLED && count_same(&o, 6) == 5 &&
		  o.st.prompt_tokens_reused == 4 * PREFIX_LEN && lm_kv_bytes_in_use(lm_context_kv(ctx)) == 0,
		  "%s: cancelling the request that computes the prefix while 5 wait: the next computes it, the other "
		  "4 share it (%lld reused), all 5 byte-identical to alone (%d)", name,
		  (long long) o.st.prompt_tokens_reused, count_same(&o, 6));

	/* the abort check stops the step in which the 15 others start from the prefix */
	ok = run_sched_share(ctx, tok, r, N_REQ, N_REQ, 64, true, -1, 0, 1, &o);
	CHECK(ok && count_same(&o, N_REQ) == N_REQ && o.st.prompt_tokens_reused == 15 * PREFIX_LEN,
		  "%s: a step stopped by the abort check right after 15 requests took the prefix changes nothing "
		  "(%d byte-identical, %lld reused)", name, count_same(&o, N_REQ), (long long) o.st.prompt_tokens_reused);

	/*
	 * one scheduler, two batches: the second starts from the prefix the first
	 * left (request 0, finished before anyone shared from it, left its whole
	 * prompt: its repeat in the second batch reuses all but the last token)
	 */
	{
		lm_sched_params sp = lm_sched_default_params();
		lm_sched   *s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
		int64_t		reused1 = 0;
		int			kept1 = 0;

		ok = s && run_on(ctx, s, r, N_REQ, -1, 0, 0, &o);
		reused1 = o.st.prompt_tokens_reused;
		kept1 = o.st.prefixes_cached;
		ok = ok && run_on(ctx, s, r, N_REQ, -1, 0, 0, &o2);
		CHECK(ok && count_same(&o2, N_REQ) == N_REQ && kept1 == 1 &&
			  o2.st.prompt_tokens_reused - reused1 == N_REQ * PREFIX_LEN + r[0].n_prompt - 1 - PREFIX_LEN,
			  "%s: a second batch starts from the prefix the first left (%d kept; %lld positions reused by the "
			  "16 of the second batch); byte-identical (%d)", name, kept1,
			  (long long) (o2.st.prompt_tokens_reused - reused1), count_same(&o2, N_REQ));
		lm_sched_free(s);
	}

	/* a tight budget: the kept prefix gives way; admission does not wait for it */
	{
		size_t		bb = lm_kv_block_bytes(m);
		lm_sched_params sp = lm_sched_default_params();
		lm_sched   *s;
		int			kept1;

		lm_kv_trim(lm_context_kv(ctx), 0);
		lm_context_set_kv_budget(ctx, 12 * bb);
		s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
		ok = s && run_on(ctx, s, r, 4, -1, 0, 0, &o);
		kept1 = o.st.prefixes_cached;
		ok = ok && run_on(ctx, s, d, 8, -1, 0, 0, &o2);
		CHECK(ok && count_same(&o, 4) == 4 && count_same(&o2, 8) == 8 && kept1 == 1 && o2.max_running == 4 &&
			  o2.st.prefix_evictions >= 1 && o2.max_in_use <= 12 * bb,
			  "%s: KV budget of 12 blocks with a prefix kept: 4 requests of 3 blocks run at once (%d), the kept "
			  "prefix is dropped for them (%lld evictions), use stays within the budget (%zu of %zu bytes), "
			  "answers byte-identical (%d of 4, %d of 8)", name, o2.max_running,
			  (long long) o2.st.prefix_evictions, o2.max_in_use, 12 * bb, count_same(&o, 4), count_same(&o2, 8));
		lm_sched_free(s);
		lm_context_set_kv_budget(ctx, 0);
	}
	check_prefix_scores(ctx, tok, name);
done:
	if (r)
		free_requests(r);
	if (e)
		free_requests(e);
	if (d)
		free_requests(d);
	free(r);
	free(e);
	free(d);
}

/* Everything on one model. */
static void
check_model(const char *path, const char *name, bool show_cause)
{
	char		err[256] = "";
	lm_model   *m = lm_model_open(path, err, sizeof(err));
	lm_tokenizer *tok = m ? lm_tokenizer_load(m->gguf, err, sizeof(err)) : NULL;
	lm_context_params cp = lm_context_default_params();
	lm_context *ctx = NULL;
	test_req   *r = calloc(N_REQ, sizeof(test_req));
	run_out		o;
	static const int steps[] = {1, 7, 64, 512};
	bool		ok;

	cp.n_ctx = N_CTX;
	cp.n_seq_max = N_REQ;
	cp.n_batch = 48;			/* a step of 512 tokens runs as several internal steps */
	cp.n_threads = 2;
	if (tok)
		ctx = lm_context_create(m, &cp, err, sizeof(err));
	if (!ctx || !r)
	{
		CHECK(false, "%s: model, tokenizer and a 16-sequence context (%s)", name, err);
		goto done;
	}
	check_chunked_prefill(m, name, show_cause);

	make_requests(r, m->cfg.n_vocab, lm_tokenizer_bos(tok), true);
	ok = run_alone(m, tok, r);
	CHECK(ok, "%s: the 16 requests run alone (lm_generate, lm_embed)", name);
	if (!ok)
		goto done;

	/* alone through the scheduler, one at a time */
	{
		int			same = 0;

		for (int i = 0; i < N_REQ; i++)
		{
			ok = run_sched(ctx, tok, r + i, 1, 1, 64, -1, 0, 0, &o);
			same += ok && count_same(&o, 1) == 1;
		}
		CHECK(same == N_REQ, "%s: each request alone in the scheduler equals lm_generate / lm_embed (%d of %d)",
			  name, same, N_REQ);
	}

	/* all 16 together, at every step size */
	for (int k = 0; k < 4; k++)
	{
		ok = run_sched(ctx, tok, r, N_REQ, N_REQ, steps[k], -1, 0, 0, &o);
		/* (with step_tokens 1 decode tokens take every step: prompts wait until no sequence decodes) */
		CHECK(ok && count_same(&o, N_REQ) == N_REQ && (steps[k] == 1 || o.st.seqs_max > 1),
			  "%s: 16 requests together (2 embeddings), step_tokens %d: all byte-identical to alone "
			  "(%d of %d; up to %d sequences per step, %lld steps)",
			  name, steps[k], count_same(&o, N_REQ), N_REQ, o.st.seqs_max, (long long) o.st.steps);
	}
	CHECK(lm_kv_bytes_in_use(lm_context_kv(ctx)) == 0, "%s: every block is back in the pool afterwards", name);

	/* cancellation: request 15 (long) cancelled after 10 steps */
	{
		size_t		before,
					after;
		lm_sched   *s;
		lm_sched_params sp = lm_sched_default_params();
		lm_sched_result res;
		int64_t		id0,
					id1;

		sp.step_tokens = 64;
		s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
		id0 = s ? lm_sched_submit_generate(s, r[15].prompt, r[15].n_prompt, &r[15].gp, err, sizeof(err)) : -1;
		id1 = s ? lm_sched_submit_generate(s, r[3].prompt, r[3].n_prompt, &r[3].gp, err, sizeof(err)) : -1;
		for (int i = 0; s && i < 4; i++)
			lm_sched_step(s, err, sizeof(err));
		before = lm_kv_bytes_in_use(lm_context_kv(ctx));
		if (s)
			lm_sched_cancel(s, id0);
		after = lm_kv_bytes_in_use(lm_context_kv(ctx));
		CHECK(s && id0 >= 0 && id1 >= 0 && before > after &&
			  lm_kv_seq_len(lm_context_kv(ctx), 0) == 0 && lm_sched_n_running(s) <= 1,
			  "%s: cancelling a running request gives its KV blocks back at once (%zu -> %zu bytes)",
			  name, before, after);
		CHECK(s && lm_sched_take_finished(s, &res) && res.id == id0 && res.status == LM_SCHED_CANCELLED,
			  "%s: the cancelled request finishes with status cancelled", name);
		if (s)
			lm_sched_release(s, id0);
		lm_sched_free(s);
		CHECK(lm_kv_bytes_in_use(lm_context_kv(ctx)) == 0, "%s: freeing the scheduler clears its sequences", name);

		ok = run_sched(ctx, tok, r, N_REQ, N_REQ, 7, 9, 6, 0, &o);
		CHECK(ok && o.done[9] && o.status[9] == LM_SCHED_CANCELLED && count_same(&o, N_REQ) == N_REQ - 1,
			  "%s: with one of 16 cancelled mid-way the other 15 answers are unchanged (%d of 15)",
			  name, count_same(&o, N_REQ) - (o.same[9] ? 1 : 0));
	}

	/* a step stopped by the abort check changes nothing */
	ok = run_sched(ctx, tok, r, N_REQ, N_REQ, 64, -1, 0, 3, &o);
	CHECK(ok && count_same(&o, N_REQ) == N_REQ,
		  "%s: a step stopped by the abort check returns -2 and changes nothing (%d of %d answers unchanged)",
		  name, count_same(&o, N_REQ), N_REQ);

	check_scores(ctx, tok, r, name);

	/* a KV budget too small for all at once: they queue and all finish the same */
	{
		size_t		bb = lm_kv_block_bytes(m);
		size_t		budget = 24 * bb;	/* the longest worst case is 10 blocks */
		lm_sched   *s;
		lm_sched_params sp = lm_sched_default_params();
		test_req	big = r[15];
		int64_t		id;

		lm_kv_trim(lm_context_kv(ctx), 0);
		lm_context_set_kv_budget(ctx, budget);
		ok = run_sched(ctx, tok, r, N_REQ, N_REQ, 64, -1, 0, 0, &o);
		CHECK(ok && count_same(&o, N_REQ) == N_REQ && o.max_waiting > 0 && o.max_running < N_REQ &&
			  o.max_in_use <= budget,
			  "%s: KV budget of 24 blocks: requests queue (up to %d waiting, %d running) within the budget "
			  "(%zu of %zu bytes) and all 16 finish byte-identical to alone (%d)",
			  name, o.max_waiting, o.max_running, o.max_in_use, budget, count_same(&o, N_REQ));

		/* one that can never fit (max_tokens near INT_MAX: no overflow in the worst case) */
		big.gp.max_tokens = INT_MAX - 5;
		s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
		lm_context_set_kv_budget(ctx, 5 * bb);
		err[0] = 0;
		id = s ? lm_sched_submit_generate(s, big.prompt, big.n_prompt, &big.gp, err, sizeof(err)) : 0;
		CHECK(s && id == -1 && strstr(err, "KV") != NULL,
			  "%s: a request that can never fit the KV budget fails at submit (\"%s\")", name, err);
		err[0] = 0;
		id = s ? lm_sched_submit_embed(s, big.prompt, 0, err, sizeof(err)) : 0;
		CHECK(s && id == -1 && err[0] != 0, "%s: an empty prompt fails at submit (\"%s\")", name, err);
		lm_context_set_kv_budget(ctx, 0);
		err[0] = 0;
		id = s ? lm_sched_submit_generate(s, big.prompt, big.n_prompt, &big.gp, err, sizeof(err)) : -1;
		CHECK(s && id >= 0, "%s: without a KV budget the same request is accepted (its worst case is the context) %s",
			  name, err);
		lm_sched_free(s);
	}
	check_prefixes(m, tok, ctx, name);
done:
	if (r)
		free_requests(r);
	free(r);
	lm_context_free(ctx);
	lm_tokenizer_free(tok);
	lm_model_free(m);
}

/* Write a small llama with test/gguf_writer.py; false when python3 or the writer fails. */
static bool
write_model(const char *path, const char *args)
{
	char		cmd[1024];

	snprintf(cmd, sizeof(cmd), "python3 test/gguf_writer.py %s %s >/dev/null 2>&1", path, args);
	return system(cmd) == 0;
}

int
main(void)
{
	const char *shared = unit_shared_dir();
	char		path[512],
				dir[] = "/tmp/lmgen-sched-XXXXXX";

	snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
	if (unit_readable(path))
		check_model(path, "stories260K", true);
	else
		SKIP("stories260K not found (set LMGEN_SHARED): its scheduler checks skipped");

	if (!mkdtemp(dir))
		CHECK(false, "temporary directory for generated models");
	else
	{
		snprintf(path, sizeof(path), "%s/words-f32.gguf", dir);
		if (write_model(path, "--llama-tiny F32 --vocab words --seed 3 --n-ctx 512"))
			check_model(path, "generated llama F32", true);
		else
			CHECK(false, "test/gguf_writer.py writes a small llama (python3 needed)");
		remove(path);
		snprintf(path, sizeof(path), "%s/words-q8.gguf", dir);
		if (write_model(path, "--llama-tiny Q8_0 --vocab words --seed 7 --n-ctx 512 --n-embd 128 --n-head 4 "
						"--n-head-kv 2 --n-ff 256 --n-layer 3"))
			check_model(path, "generated llama Q8_0", false);
		else
			CHECK(false, "test/gguf_writer.py writes a small Q8_0 llama");
		remove(path);
		rmdir(dir);
	}
	/* any other model, by hand: LMGEN_SCHED_MODEL=path (e.g. the installed Gemma 3) */
	if (getenv("LMGEN_SCHED_MODEL") && *getenv("LMGEN_SCHED_MODEL"))
		check_model(getenv("LMGEN_SCHED_MODEL"), getenv("LMGEN_SCHED_MODEL"), false);
	return unit_done();
}
