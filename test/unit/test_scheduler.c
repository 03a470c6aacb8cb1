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
 *     batch, each label's tokens but the last in one batch of their own.
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
 * Submit requests [0, n) in order to a new scheduler over ctx and step until
 * all have finished; cancel request cancel_i (if >= 0) after cancel_step
 * steps; fire the abort check once in step abort_step (if > 0).
 */
static bool
run_sched(lm_context *ctx, const lm_tokenizer *tok, test_req *r, int n, int max_seqs, int step_tokens,
		  int cancel_i, int cancel_step, int abort_step, run_out *o)
{
	char		err[256] = "";
	lm_sched_params sp = lm_sched_default_params();
	lm_sched   *s;
	int64_t		ids[N_REQ];
	int			n_done = 0,
				steps = 0,
				n_embd = lm_context_model(ctx)->cfg.n_embd;
	abort_once	ab = {0, 0};
	bool		ok = true;

	memset(o, 0, sizeof(*o));
	sp.max_seqs = max_seqs;
	sp.step_tokens = step_tokens;
	s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
	if (!s)
	{
		printf("# lm_sched_create: %s\n", err);
		return false;
	}
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
	lm_sched_free(s);
	return ok && n_done == n;
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
	return unit_done();
}
