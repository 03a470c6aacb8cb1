/*
 * scheduler.c — continuous batching over one context (see scheduler.h).
 *
 * Requests.  Every request lives in one array, in submit order, from
 * submit until it is released; its state moves WAITING -> RUNNING ->
 * FINISHED -> TAKEN (or straight to FINISHED when cancelled or failed while
 * waiting).  A running request holds one sequence slot (its sequence id in
 * the context is the slot's index) and a KV reservation.  Submit copies the
 * prompt and builds the request's lm_sequence at once (which copies the stop
 * strings and checks the parameters), so a bad request fails at submit and a
 * running one never fails on its own parameters.
 *
 * Admission (at the start of each step).  Waiting requests are taken in
 * submit order while a slot is free and their worst case of KV blocks
 * (prompt + max_tokens positions, at most n_ctx; the prompt for an embed)
 * fits beside the worst cases of the running ones in the context's budget.
 * The first one that does not fit stops admission (first come, first
 * served: a long request is not overtaken forever by short ones).  Because
 * the reservations are worst cases, a running sequence never needs a block
 * the pool cannot give, so lm_kv_reserve (all or nothing) fails only when
 * memory itself runs out.  A worst case beyond the whole budget can never
 * run: submit refuses it.
 *
 * Shared prompt prefixes (share_prefixes).  The KV of a position depends
 * only on the tokens up to it and on its value order, and every prompt
 * token of a prompt of several tokens carries the prompt order, so two
 * prompts that begin with the same k tokens have the same bits in their
 * first k positions.  After admission, each new request settles where its
 * prompt starts (settle_prefix), in submit order, against two kinds of
 * source: the running requests whose own start is settled (their prompt
 * positions computed so far, n_done: never generated positions, whose
 * order differs, nor label positions of a scoring request), and the
 * prefixes kept in idle slots.  It takes the longest common prefix one of
 * them holds now (lm_kv_seq_share: the blocks are referenced, not copied;
 * the partial last block is copied by lm_kv_reserve when the request
 * writes its next position into it) and evaluates the rest, at most all
 * but its last prompt token, whose logits it needs (a scoring request
 * likewise).  An embedding never starts from a shared prefix: it pools
 * every position's hidden state, which the KV does not hold; it can be a
 * source.  When a running request will compute a longer common prefix than
 * any source holds now, and it is at least SCHED_WAIT_MIN tokens (a chat
 * template and an instruction, not just BOS), the new request waits for it
 * instead of computing the same positions in the same step: it holds its
 * slot and reservation but no blocks, is in no batch, and settles again at
 * each step; so 16 requests admitted together with a common 40-token prefix
 * evaluate it once, by the oldest, and the others join one step later.
 * A request waits only for one whose own start is settled (never for a
 * waiting one), so there is no cycle; if that one is cancelled, the
 * waiters settle again and the oldest of them computes the prefix.
 *
 * Kept prefixes.  A request that ends well leaves the prompt positions it
 * shared with others (or its whole prompt, when it shared none) in its
 * idle slot (kept_store), with its tokens, unless a kept prefix already
 * covers them; prompt blocks of a batch are thus kept once.  A later
 * request starts from them as from a running one; an admission prefers an
 * empty slot, else the idle slot whose kept prefix it shares most (reused
 * in place: lm_kv_seq_keep), else the least recently used one, and a slot's
 * kept prefix stays readable until its new request has settled, so the
 * requests admitted with it can still share it.  Kept prefixes never hold
 * back a running request: admission ignores them (the worst cases alone
 * must fit the budget, as without sharing), and before each pass the
 * scheduler reserves the batch's blocks itself (lm_context_reserve_kv),
 * dropping the least recently used kept prefix while the reservation fails.
 * Without them the worst cases fit, so the reservation then succeeds as it
 * always did (sharing among running requests only lowers their use).
 *
 * A step's batch.  First one decode token for every running generation
 * that has its prompt behind it (the token sampled at the end of the last
 * step, asking for logits, decode value order), then prompt chunks of the
 * running requests that still have prompt to evaluate, oldest first, until
 * the batch holds step_tokens tokens (decode tokens are never held back, so
 * the budget can be exceeded by them alone).  A prompt token asks for
 * nothing, except the last one of a generation's prompt (logits: the first
 * token is sampled from them) and every token of an embedding (hidden state
 * only: no vocabulary projection); all carry the prompt value order when
 * the prompt has several tokens, whatever chunk they fall in, which is what
 * makes chunked prefill bit-identical to one pass (context.h).  A scoring
 * request, its prompt done, puts one label per step into the batch (all
 * its tokens but the last, each asking for logits, at the positions after
 * the prompt: the forward pass rewinds the sequence over the previous
 * label), with the value order classify always gave them.
 *
 * After the forward pass.  Generations sample from their logits and take
 * the token (lm_sequence_next: text, stop strings, budget, context); one
 * that ends is finished.  Embeddings add their tokens' hidden states to
 * their pool in token order and finish after the last prompt chunk.
 * Scoring requests add log p(next label token) per logits row (lm_logprob),
 * in token order per label, and finish after their last label.  A
 * finished request gives its sequence's blocks back to the pool (but a
 * kept prefix) and its slot and reservation to the next waiting request at
 * once.
 *
 * Failures.  lm_model_forward returning -1 (out of memory, or the model
 * file changed under the weights) fails every request that had tokens in
 * the batch with the engine's message; the others are untouched, and the
 * scheduler stays usable.  -2 (the context's abort check) rewinds every
 * sequence in the batch to its length before the step (the forward pass may
 * have kept its first internal steps) and changes nothing else, so calling
 * lm_sched_step again redoes the same step.
 *
 * Cancellation is immediate: the request is finished as cancelled (a
 * generation keeps the text it had), its blocks and slot are given back,
 * and it is never in a batch again.  Between steps nothing runs, so this
 * is safe at any call.
 *
 * Results.  lm_sched_take_finished hands out the oldest finished request;
 * the pointers in the result (text, tokens, embedding) point into the
 * request, which stays until lm_sched_release (or lm_sched_free).  A
 * cancelled or failed request keeps no prefix.
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "sampler.h"
#include "sequence.h"
#include "threads.h"

/* Default token budget of a step. */
#define SCHED_DEFAULT_STEP_TOKENS 256

/* A request waits for a prefix another one is computing only when it is at least this long. */
#define SCHED_WAIT_MIN LM_KV_BLOCK

/* Where a request is. */
typedef enum req_state
{
	REQ_WAITING,				/* queued for admission */
	REQ_RUNNING,				/* holds a sequence slot */
	REQ_FINISHED,				/* ended, not yet taken */
	REQ_TAKEN					/* handed out, not yet released */
} req_state;

/* One request. */
typedef struct sched_req
{
	int64_t		id;				/* returned by submit */
	lm_sched_kind kind;			/* generate or embed */
	req_state	state;			/* see above */
	int32_t    *prompt;			/* (n_prompt) copy of the prompt ids */
	int			n_prompt;		/* prompt tokens */
	int			n_done;			/* prompt positions in its KV (evaluated or shared) */
	int			n_reused;		/* prompt positions shared from another request's KV */
	int			lent;			/* longest prefix another request shared from it */
	bool		prefix_open;	/* admitted, its prefix not settled yet (not in a batch: waits for it) */
	int			seq;			/* sequence slot while running, else -1 */
	int32_t		kv_blocks;		/* worst-case blocks reserved while running */
	lm_sequence *gen;			/* generate: sampler, text, stop rules */
	bool		decoding;		/* generate: next_token waits to be evaluated */
	int32_t		next_token;		/* generate: the token the next step evaluates */
	int32_t		next_pos;		/* generate: at this position */
	lm_embed_pool pool;			/* embed: sum of hidden states */
	float	   *embedding;		/* embed: (n_embd) the result */
	int32_t   **lab_ids;		/* score: (n_labels) copies of the labels' ids */
	int		   *lab_n;			/* score: (n_labels) their lengths */
	int			n_labels;		/* score: labels */
	int			lab;			/* score: the next label with tokens to evaluate (n_labels = none) */
	int			lab_done;		/* score: its tokens evaluated */
	double	   *scores;			/* score: (n_labels) log-likelihoods, accumulating */
	lm_sched_status status;		/* once finished */
	char		err[256];		/* message of LM_SCHED_ERROR */
	int64_t		fin_order;		/* order of finishing (take_finished hands out the oldest) */
	double		t_submit;		/* lm_now_s() at submit */
	double		t_admit;		/* at admission (0 = never admitted) */
	double		t_end;			/* at the end */
	int			b_first;		/* this step: index of its first token in the batch, -1 if none */
	int			b_n;			/* this step: its tokens in the batch */
} sched_req;

/* The prompt prefix of a finished request kept in its idle slot's sequence. */
typedef struct sched_prefix
{
	int32_t    *ids;			/* (n) its tokens; NULL = the slot keeps none */
	int			n;				/* positions the slot's sequence holds */
	int64_t		used;			/* clock of its last use (the least recent goes first) */
} sched_prefix;

/* A scheduler. */
struct lm_sched
{
	lm_context *ctx;			/* borrowed */
	const lm_tokenizer *tok;	/* borrowed, may be NULL */
	int			max_seqs;		/* slots */
	int			step_tokens;	/* token budget of a step */
	bool		share;			/* share prompt prefixes */
	int			n_vocab;		/* model vocabulary */
	int			n_embd;			/* model width */
	sched_req **req;			/* (n_req) requests in submit order */
	int			n_req;			/* requests held */
	int			req_cap;		/* entries allocated */
	sched_req **slot;			/* (max_seqs) the running request of each slot, or NULL */
	sched_prefix *kept;			/* (max_seqs) the prefix kept in each slot (while idle, or until its
								 * new request has settled its own prefix) */
	int64_t		clock;			/* ticks at each use of a kept prefix */
	int32_t		kv_reserved;	/* sum of running requests' kv_blocks */
	lm_batch   *batch;			/* (max_seqs + step_tokens) the step's batch */
	int64_t		next_id;		/* id of the next submit */
	int64_t		next_fin;		/* fin_order of the next finish */
	lm_sched_stats st;			/* counters (KV fields filled on demand) */
};

/* Defaults. */
lm_sched_params
lm_sched_default_params(void)
{
	lm_sched_params p = {0, SCHED_DEFAULT_STEP_TOKENS, true};

	return p;
}

/* Create a scheduler over a context. */
lm_sched *
lm_sched_create(lm_context *ctx, const lm_tokenizer *tok, const lm_sched_params *pp, char *err, size_t errlen)
{
	lm_sched_params p = pp ? *pp : lm_sched_default_params();
	lm_sched   *s;

	if (p.max_seqs <= 0)
		p.max_seqs = lm_context_n_seq_max(ctx);
	if (p.step_tokens <= 0)
		p.step_tokens = SCHED_DEFAULT_STEP_TOKENS;
	if (p.max_seqs > lm_context_n_seq_max(ctx))
	{
		snprintf(err, errlen, "max_seqs %d exceeds the context's %d sequences", p.max_seqs,
				 lm_context_n_seq_max(ctx));
		return NULL;
	}
	if (p.step_tokens > 1 << 20)
	{
		snprintf(err, errlen, "step_tokens %d is too large (max %d)", p.step_tokens, 1 << 20);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	s->ctx = ctx;
	s->tok = tok;
	s->max_seqs = p.max_seqs;
	s->step_tokens = p.step_tokens;
	s->share = p.share_prefixes;
	s->n_vocab = lm_context_model(ctx)->cfg.n_vocab;
	s->n_embd = lm_context_model(ctx)->cfg.n_embd;
	s->slot = calloc(p.max_seqs, sizeof(sched_req *));
	s->kept = calloc(p.max_seqs, sizeof(sched_prefix));
	s->batch = lm_batch_create(p.max_seqs + p.step_tokens);
	if (!s->slot || !s->kept || !s->batch)
		goto oom;
	for (int q = 0; q < s->max_seqs; q++)
		lm_kv_seq_clear(lm_context_kv(ctx), q);
	return s;

oom:
	snprintf(err, errlen, "out of memory creating a scheduler");
	lm_sched_free(s);
	return NULL;
}

/* Free one request. */
static void
req_free(sched_req *r)
{
	if (!r)
		return;
	free(r->prompt);
	lm_sequence_free(r->gen);
	lm_embed_pool_free(&r->pool);
	free(r->embedding);
	for (int k = 0; r->lab_ids && k < r->n_labels; k++)
		free(r->lab_ids[k]);
	free(r->lab_ids);
	free(r->lab_n);
	free(r->scores);
	free(r);
}

/* Free a scheduler. */
void
lm_sched_free(lm_sched *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n_req; i++)
	{
		if (s->req[i]->seq >= 0)
			lm_kv_seq_clear(lm_context_kv(s->ctx), s->req[i]->seq);
		req_free(s->req[i]);
	}
	for (int q = 0; s->kept && q < s->max_seqs; q++)
		if (s->kept[q].ids)
		{
			lm_kv_seq_clear(lm_context_kv(s->ctx), q);
			free(s->kept[q].ids);
		}
	free(s->req);
	free(s->slot);
	free(s->kept);
	lm_batch_free(s->batch);
	free(s);
}

/* Blocks of KV cache the budget allows (INT32_MAX when there is no budget). */
static int32_t
budget_blocks(const lm_sched *s)
{
	const lm_kv *kv = lm_context_kv(s->ctx);
	size_t		n;

	if (kv->budget == 0)
		return INT32_MAX;
	n = kv->budget / kv->block_bytes;
	return n > INT32_MAX ? INT32_MAX : (int32_t) n;
}

/*
 * Check a prompt, compute the worst-case blocks of n_pos positions and make
 * a request for it; NULL with a message.
 */
static sched_req *
req_new(lm_sched *s, lm_sched_kind kind, const int32_t *prompt, int n, int64_t n_pos, char *err, size_t errlen)
{
	const lm_kv *kv = lm_context_kv(s->ctx);
	int			n_ctx = lm_context_n_ctx(s->ctx);
	int32_t		blocks;
	sched_req  *r;

	if (!prompt || n < 1 || n > n_ctx)
	{
		snprintf(err, errlen, "prompt has %d tokens; it needs 1 to %d (the context size)", n, n_ctx);
		return NULL;
	}
	for (int i = 0; i < n; i++)
		if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
		{
			snprintf(err, errlen, "prompt token %d has id %d, outside the vocabulary 0..%d", i, prompt[i],
					 s->n_vocab - 1);
			return NULL;
		}
	if (n_pos > n_ctx)
		n_pos = n_ctx;
	blocks = (int32_t) ((n_pos + LM_KV_BLOCK - 1) / LM_KV_BLOCK);
	if (blocks > budget_blocks(s))
	{
		snprintf(err, errlen, "the request needs up to %.1f MB of KV cache (%d positions), more than the "
				 "whole pool of %.1f MB", (double) blocks * kv->block_bytes / (1 << 20), (int) n_pos,
				 (double) kv->budget / (1 << 20));
		return NULL;
	}
	if (s->n_req == s->req_cap)
	{
		int			cap = s->req_cap ? 2 * s->req_cap : 16;
		sched_req **a = realloc(s->req, sizeof(sched_req *) * cap);

		if (!a)
			goto oom;
		s->req = a;
		s->req_cap = cap;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		goto oom;
	r->prompt = malloc(sizeof(int32_t) * n);
	if (!r->prompt)
	{
		free(r);
		goto oom;
	}
	memcpy(r->prompt, prompt, sizeof(int32_t) * n);
	r->kind = kind;
	r->state = REQ_WAITING;
	r->n_prompt = n;
	r->seq = -1;
	r->kv_blocks = blocks;
	r->b_first = -1;
	r->t_submit = lm_now_s();
	return r;

oom:
	snprintf(err, errlen, "out of memory queuing a request");
	return NULL;
}

/* Give a new request its id and queue it. */
static int64_t
req_queue(lm_sched *s, sched_req *r)
{
	r->id = s->next_id++;
	s->req[s->n_req++] = r;
	return r->id;
}

/* Queue a generation. */
int64_t
lm_sched_submit_generate(lm_sched *s, const int32_t *prompt, int n, const lm_gen_params *p,
						 char *err, size_t errlen)
{
	sched_req  *r;

	if (!p)
	{
		snprintf(err, errlen, "no generation parameters");
		return -1;
	}
	r = req_new(s, LM_SCHED_GENERATE, prompt, n, (int64_t) n + (p->max_tokens > 0 ? p->max_tokens : 0), err, errlen);
	if (!r)
		return -1;
	r->gen = lm_sequence_create(s->tok, s->n_vocab, lm_context_n_ctx(s->ctx), prompt, n, p, err, errlen);
	if (!r->gen)
	{
		req_free(r);
		return -1;
	}
	return req_queue(s, r);
}

/* Queue an embedding. */
int64_t
lm_sched_submit_embed(lm_sched *s, const int32_t *prompt, int n, char *err, size_t errlen)
{
	sched_req  *r = req_new(s, LM_SCHED_EMBED, prompt, n, n, err, errlen);

	if (!r)
		return -1;
	if (!lm_embed_pool_init(&r->pool, s->n_embd) || !(r->embedding = malloc(sizeof(float) * s->n_embd)))
	{
		req_free(r);
		snprintf(err, errlen, "out of memory queuing an embedding");
		return -1;
	}
	return req_queue(s, r);
}

/* The first label from k on that has tokens to evaluate after the prompt (two or more), or n_labels. */
static int
next_label(const sched_req *r, int k)
{
	while (k < r->n_labels && r->lab_n[k] < 2)
		k++;
	return k;
}

/* Queue the scoring of labels after a prompt. */
int64_t
lm_sched_submit_score(lm_sched *s, const int32_t *prompt, int n, const int32_t *const *labels,
					  const int *n_ids, int n_labels, char *err, size_t errlen)
{
	sched_req  *r;
	int			longest = 1;

	if (n_labels < 1 || !labels || !n_ids)
	{
		snprintf(err, errlen, "scoring needs at least one label (got %d)", n_labels);
		return -1;
	}
	for (int k = 0; k < n_labels; k++)
	{
		if (n_ids[k] < 1 || !labels[k])
		{
			snprintf(err, errlen, "label %d has no tokens", k);
			return -1;
		}
		for (int j = 0; j < n_ids[k]; j++)
			if (labels[k][j] < 0 || labels[k][j] >= s->n_vocab)
			{
				snprintf(err, errlen, "label %d token %d has id %d, outside the vocabulary 0..%d", k, j,
						 labels[k][j], s->n_vocab - 1);
				return -1;
			}
		if (n_ids[k] > longest)
			longest = n_ids[k];
	}
	/* the prompt, then the longest label but its last token */
	r = req_new(s, LM_SCHED_SCORE, prompt, n, (int64_t) n + longest - 1, err, errlen);
	if (!r)
		return -1;
	if (n + longest - 1 > lm_context_n_ctx(s->ctx))
	{
		snprintf(err, errlen, "the prompt (%d tokens) and the longest label (%d) do not fit the context of %d",
				 n, longest, lm_context_n_ctx(s->ctx));
		req_free(r);
		return -1;
	}
	r->n_labels = n_labels;
	r->lab_ids = calloc(n_labels, sizeof(int32_t *));
	r->lab_n = malloc(sizeof(int) * n_labels);
	r->scores = calloc(n_labels, sizeof(double));
	if (!r->lab_ids || !r->lab_n || !r->scores)
		goto oom;
	for (int k = 0; k < n_labels; k++)
	{
		r->lab_n[k] = n_ids[k];
		if (!(r->lab_ids[k] = malloc(sizeof(int32_t) * n_ids[k])))
			goto oom;
		memcpy(r->lab_ids[k], labels[k], sizeof(int32_t) * n_ids[k]);
	}
	r->lab = next_label(r, 0);
	return req_queue(s, r);

oom:
	req_free(r);
	snprintf(err, errlen, "out of memory queuing a scoring request");
	return -1;
}

/* Tokens a and b have in common at their start, at most n. */
static int
common_prefix(const int32_t *a, const int32_t *b, int n)
{
	int			k = 0;

	while (k < n && a[k] == b[k])
		k++;
	return k;
}

/* Forget the prefix kept in slot q (the caller clears or reuses the sequence). */
static void
kept_forget(lm_sched *s, int q)
{
	free(s->kept[q].ids);
	s->kept[q].ids = NULL;
	s->kept[q].n = 0;
}

/* True when some slot keeps a prefix. */
static bool
any_kept(const lm_sched *s)
{
	for (int q = 0; q < s->max_seqs; q++)
		if (s->kept[q].ids)
			return true;
	return false;
}

/* Drop the least recently used prefix kept in an idle slot; false when none is kept. */
static bool
kept_evict(lm_sched *s)
{
	int			q = -1;

	for (int k = 0; k < s->max_seqs; k++)
		if (s->kept[k].ids && !s->slot[k] && (q < 0 || s->kept[k].used < s->kept[q].used))
			q = k;
	if (q < 0)
		return false;
	lm_kv_seq_clear(lm_context_kv(s->ctx), q);
	kept_forget(s, q);
	s->st.prefix_evictions++;
	return true;
}

/*
 * A request that ended well leaves its prompt's KV in its slot for later
 * requests: the prefix it shared with others (taken or lent) when that was
 * SCHED_WAIT_MIN tokens or more (the bodies after it are its own), else its
 * whole prompt (the next call may repeat it); nothing when a kept prefix
 * already covers that, and a kept prefix the new one covers is dropped.
 * Only prompt positions are kept (never generated ones: their value order
 * differs).
 */
static void
kept_store(lm_sched *s, sched_req *r)
{
	lm_kv	   *kv = lm_context_kv(s->ctx);
	int			q = r->seq,
				keep = r->n_reused > r->lent ? r->n_reused : r->lent;

	if (keep < SCHED_WAIT_MIN)
		keep = r->n_prompt;
	if (keep > r->n_done)
		keep = r->n_done;
	if (!s->share || r->n_prompt < 2 || keep < 2)
	{
		lm_kv_seq_clear(kv, q);
		return;
	}
	for (int k = 0; k < s->max_seqs; k++)
	{
		sched_prefix *e = &s->kept[k];

		if (!e->ids || k == q || s->slot[k])
			continue;
		if (e->n >= keep && common_prefix(e->ids, r->prompt, keep) == keep)
		{
			e->used = ++s->clock;
			lm_kv_seq_clear(kv, q);
			return;
		}
		if (keep >= e->n && common_prefix(e->ids, r->prompt, e->n) == e->n)
		{
			lm_kv_seq_clear(kv, k);
			kept_forget(s, k);
		}
	}
	lm_kv_seq_keep(kv, q, keep);
	s->kept[q].ids = r->prompt;	/* the request needs its prompt no more */
	r->prompt = NULL;
	s->kept[q].n = keep;
	s->kept[q].used = ++s->clock;
}

/* End a request: give back its sequence, slot and reservation; count it. */
static void
req_finish(lm_sched *s, sched_req *r, lm_sched_status status, const char *msg)
{
	if (r->seq >= 0)
	{
		if (s->kept[r->seq].ids)
			kept_forget(s, r->seq);
		if (status == LM_SCHED_OK)
			kept_store(s, r);
		else
			lm_kv_seq_clear(lm_context_kv(s->ctx), r->seq);
		s->slot[r->seq] = NULL;
		s->kv_reserved -= r->kv_blocks;
		r->seq = -1;
	}
	if (r->gen && status != LM_SCHED_OK)
		lm_sequence_cancel(r->gen);
	if (r->kind == LM_SCHED_EMBED && status == LM_SCHED_OK)
		lm_embed_pool_finish(&r->pool, r->embedding);
	r->status = status;
	if (msg)
		snprintf(r->err, sizeof(r->err), "%s", msg);
	r->state = REQ_FINISHED;
	r->fin_order = s->next_fin++;
	r->t_end = lm_now_s();
	s->st.finished++;
	if (status == LM_SCHED_CANCELLED)
		s->st.cancelled++;
	else if (status == LM_SCHED_ERROR)
		s->st.errors++;
}

/* The request with this id, or NULL. */
static sched_req *
req_find(const lm_sched *s, int64_t id, int *index)
{
	for (int i = 0; i < s->n_req; i++)
		if (s->req[i]->id == id)
		{
			if (index)
				*index = i;
			return s->req[i];
		}
	return NULL;
}

/* Cancel a request now. */
void
lm_sched_cancel(lm_sched *s, int64_t id)
{
	sched_req  *r = req_find(s, id, NULL);

	if (r && (r->state == REQ_WAITING || r->state == REQ_RUNNING))
		req_finish(s, r, LM_SCHED_CANCELLED, NULL);
}

/* True when a request may start from a shared prefix (an embedding needs every position's state). */
static bool
can_share(const lm_sched *s, const sched_req *r)
{
	return s->share && r->kind != LM_SCHED_EMBED && r->n_prompt >= 2;
}

/*
 * A slot for a request: an empty one, else the idle slot whose kept prefix
 * it shares most (the least recently used on a tie); -1 when every slot runs.
 */
static int
pick_slot(const lm_sched *s, const sched_req *r)
{
	int			q = -1,
				best = -1;

	for (int k = 0; k < s->max_seqs; k++)
		if (!s->slot[k] && !s->kept[k].ids)
			return k;
	for (int k = 0; k < s->max_seqs; k++)
	{
		int			c;

		if (s->slot[k])
			continue;
		c = can_share(s, r) ? common_prefix(r->prompt, s->kept[k].ids,
											 s->kept[k].n < r->n_prompt - 1 ? s->kept[k].n : r->n_prompt - 1) : 0;
		if (c > best || (c == best && s->kept[k].used < s->kept[q].used))
			q = k, best = c;
	}
	return q;
}

/*
 * Admit waiting requests in submit order while a slot and their KV worst
 * case fit.  A slot's kept prefix stays until its new request settles its
 * own prefix (settle_prefixes), so requests admitted together may share it.
 */
static void
admit(lm_sched *s)
{
	int32_t		limit = budget_blocks(s);

	for (int i = 0; i < s->n_req; i++)
	{
		sched_req  *r = s->req[i];
		int			q;

		if (r->state != REQ_WAITING)
			continue;
		q = pick_slot(s, r);
		if (q < 0 || (int64_t) s->kv_reserved + r->kv_blocks > limit)
			return;
		r->state = REQ_RUNNING;
		r->seq = q;
		r->prefix_open = true;
		r->t_admit = lm_now_s();
		s->slot[q] = r;
		s->kv_reserved += r->kv_blocks;
		if (!s->kept[q].ids)
			lm_kv_seq_clear(lm_context_kv(s->ctx), q);
	}
}

/*
 * Settle where a newly admitted (or waiting) request's prompt starts.  Its
 * candidates: every kept prefix (its own slot's too) and every running
 * request whose own prefix is settled, for the tokens its prompt has in
 * common with theirs — never r's last prompt token, whose logits it needs,
 * and only prompt positions, which all carry the prompt value order.  When
 * a running request will compute a longer common prefix (SCHED_WAIT_MIN
 * tokens or more) than any source has ready now, r waits for it (holding
 * nothing); otherwise it shares the longest ready prefix and evaluates the
 * rest.  A request's KV at a position depends only on the tokens up to it,
 * so the shared positions hold the very bits it would have computed.
 */
static void
settle_prefix(lm_sched *s, sched_req *r)
{
	lm_kv	   *kv = lm_context_kv(s->ctx);
	int			q = r->seq,
				most = r->n_prompt - 1,
				ready = 0,
				src = -1,
				coming = 0;
	bool		from_running = false;

	for (int k = 0; can_share(s, r) && k < s->max_seqs; k++)
	{
		const sched_req *x = s->slot[k];
		int			c;

		if (s->kept[k].ids)
		{
			c = common_prefix(r->prompt, s->kept[k].ids, s->kept[k].n < most ? s->kept[k].n : most);
			if (c > ready || (c == ready && c > 0 && k == q))
				ready = c, src = k, from_running = false;
		}
		if (x && x != r && !x->prefix_open && x->n_prompt >= 2)
		{
			c = common_prefix(r->prompt, x->prompt, x->n_prompt < most ? x->n_prompt : most);
			if (c > coming)
				coming = c;
			if (x->n_done < c)
				c = x->n_done;
			if (c > ready)
				ready = c, src = k, from_running = true;
		}
	}
	if (coming > ready && coming >= SCHED_WAIT_MIN)
	{
		/* wait for the running request that computes it; hold nothing meanwhile */
		if (s->kept[q].ids)
		{
			lm_kv_seq_clear(kv, q);
			kept_forget(s, q);
		}
		return;
	}
	if (ready > 0 && src == q)
		lm_kv_seq_keep(kv, q, ready);
	else if (ready > 0 && !lm_kv_seq_share(kv, src, q, ready))
		ready = 0;				/* out of memory for the block table: evaluate it all */
	if (ready == 0)
		lm_kv_seq_clear(kv, q);
	if (s->kept[q].ids)
		kept_forget(s, q);
	if (ready > 0 && from_running && s->slot[src]->lent < ready)
		s->slot[src]->lent = ready;
	else if (ready > 0 && src != q)
		s->kept[src].used = ++s->clock;
	s->st.prompt_tokens_reused += ready - r->n_done;
	r->n_done = ready;
	r->n_reused = ready;
	r->prefix_open = false;
}

/* Settle the prefixes of the running requests that have not started, in submit order. */
static void
settle_prefixes(lm_sched *s)
{
	for (int i = 0; i < s->n_req; i++)
		if (s->req[i]->state == REQ_RUNNING && s->req[i]->prefix_open)
			settle_prefix(s, s->req[i]);
}

/* Build the step's batch: decode tokens first, then prompt chunks within step_tokens. */
static void
build_batch(lm_sched *s)
{
	lm_batch   *b = s->batch;

	lm_batch_clear(b);
	for (int i = 0; i < s->n_req; i++)
	{
		sched_req  *r = s->req[i];

		r->b_first = -1;
		r->b_n = 0;
		if (r->state == REQ_RUNNING && r->decoding)
		{
			r->b_first = b->n_tokens;
			r->b_n = 1;
			lm_batch_add_token(b, r->next_token, r->next_pos, r->seq, LM_OUT_LOGITS, LM_PREFILL_NO);
		}
	}
	for (int i = 0; i < s->n_req && b->n_tokens < s->step_tokens; i++)
	{
		sched_req  *r = s->req[i];
		int			k,
					order;

		if (r->state != REQ_RUNNING || r->prefix_open)
			continue;
		if (r->n_done < r->n_prompt)
		{
			/* a prompt chunk */
			k = r->n_prompt - r->n_done;
			if (k > s->step_tokens - b->n_tokens)
				k = s->step_tokens - b->n_tokens;
			order = r->n_prompt > 1 ? LM_PREFILL_YES : LM_PREFILL_NO;
			r->b_first = b->n_tokens;
			r->b_n = k;
			for (int j = r->n_done; j < r->n_done + k; j++)
			{
				lm_out		out = r->kind == LM_SCHED_EMBED ? LM_OUT_HIDDEN :
					(j == r->n_prompt - 1 ? LM_OUT_LOGITS : LM_OUT_NONE);

				lm_batch_add_token(b, r->prompt[j], j, r->seq, out, order);
			}
		}
		else if (r->kind == LM_SCHED_SCORE && r->lab < r->n_labels)
		{
			/* a chunk of a label (all but its last token), after the prompt */
			const int32_t *ids = r->lab_ids[r->lab];

			k = r->lab_n[r->lab] - 1 - r->lab_done;
			if (k > s->step_tokens - b->n_tokens)
				k = s->step_tokens - b->n_tokens;
			order = r->lab_n[r->lab] > 2 ? LM_PREFILL_YES : LM_PREFILL_NO;
			r->b_first = b->n_tokens;
			r->b_n = k;
			for (int j = r->lab_done; j < r->lab_done + k; j++)
				lm_batch_add_token(b, ids[j], r->n_prompt + j, r->seq, LM_OUT_LOGITS, order);
		}
	}
}

/* Add a scoring request's terms from the logits of its tokens in this step; finish it after the last. */
static void
score_take(lm_sched *s, sched_req *r)
{
	const float *lg;
	lm_lognorm	z;

	if (r->n_done < r->n_prompt)
	{
		r->n_done += r->b_n;
		s->st.prompt_tokens += r->b_n;
		if (r->n_done < r->n_prompt)
			return;
		/* every label's first token after the prompt */
		lg = lm_context_logits(s->ctx, r->b_first + r->b_n - 1);
		z = lm_lognorm_of(lg, s->n_vocab);
		for (int k = 0; k < r->n_labels; k++)
			r->scores[k] = lm_logprob(lg, z, r->lab_ids[k][0]);
	}
	else
	{
		/* token j + 1 of the current label after its tokens up to j */
		for (int t = 0; t < r->b_n; t++)
		{
			int			j = r->lab_done + t;

			lg = lm_context_logits(s->ctx, r->b_first + t);
			z = lm_lognorm_of(lg, s->n_vocab);
			r->scores[r->lab] += lm_logprob(lg, z, r->lab_ids[r->lab][j + 1]);
		}
		r->lab_done += r->b_n;
		s->st.prompt_tokens += r->b_n;
		if (r->lab_done == r->lab_n[r->lab] - 1)
		{
			r->lab = next_label(r, r->lab + 1);
			r->lab_done = 0;
		}
	}
	if (r->lab == r->n_labels)
		req_finish(s, r, LM_SCHED_OK, NULL);
}

/* Take a generation's sampled token; finish it when it has ended. */
static void
gen_take(lm_sched *s, sched_req *r)
{
	char		msg[256];
	const char *text;
	size_t		len;
	int			rc = lm_sequence_next(r->gen, &r->next_token, &r->next_pos, &text, &len, msg, sizeof(msg));

	if (rc == 1)
		s->st.generated_tokens++;
	if (rc < 0)
		req_finish(s, r, LM_SCHED_ERROR, msg);
	else if (lm_sequence_reason(r->gen) != LM_GEN_RUNNING)
		req_finish(s, r, LM_SCHED_OK, NULL);
	else
		r->decoding = true;
}

/* Sample request r's next token from batch token i's logits (with the device's argmax, where it ran on one). */
static void
sample_from(lm_sched *s, sched_req *r, int i)
{
	lm_sequence_sample_hinted(r->gen, lm_context_logits(s->ctx, i),
							  lm_context_device(s->ctx) ? lm_context_argmax(s->ctx, i) : -1);
}

/* Advance the requests of a successful step by their outputs. */
static void
consume_outputs(lm_sched *s)
{
	for (int i = 0; i < s->n_req; i++)
	{
		sched_req  *r = s->req[i];

		if (r->state != REQ_RUNNING || r->b_first < 0)
			continue;
		if (r->kind == LM_SCHED_GENERATE && r->decoding)
		{
			sample_from(s, r, r->b_first);
			gen_take(s, r);
		}
		else if (r->kind == LM_SCHED_GENERATE)
		{
			r->n_done += r->b_n;
			s->st.prompt_tokens += r->b_n;
			if (r->n_done == r->n_prompt)
			{
				sample_from(s, r, r->b_first + r->b_n - 1);
				gen_take(s, r);
			}
		}
		else if (r->kind == LM_SCHED_SCORE)
			score_take(s, r);
		else
		{
			for (int t = 0; t < r->b_n; t++)
				lm_embed_pool_add(&r->pool, lm_context_hidden(s->ctx, r->b_first + t));
			r->n_done += r->b_n;
			s->st.prompt_tokens += r->b_n;
			if (r->n_done == r->n_prompt)
				req_finish(s, r, LM_SCHED_OK, NULL);
		}
	}
}

/* One forward pass over every running sequence. */
int
lm_sched_step(lm_sched *s, char *err, size_t errlen)
{
	lm_batch   *b = s->batch;
	int			n_seqs = 0,
				rc;

	admit(s);
	settle_prefixes(s);
	build_batch(s);
	if (b->n_tokens == 0)
		return 0;
	/* kept prefixes give way to the running requests' blocks (the pass then reserves nothing new) */
	while (any_kept(s) && !lm_context_reserve_kv(s->ctx, b, err, errlen) && kept_evict(s))
		;
	rc = lm_model_forward(s->ctx, b, err, errlen);
	if (rc == -2)
	{
		/* back to where the step found them: the work is redone next time */
		for (int i = 0; i < s->n_req; i++)
			if (s->req[i]->state == REQ_RUNNING && s->req[i]->b_first >= 0)
				lm_kv_seq_keep(lm_context_kv(s->ctx), s->req[i]->seq, b->pos[s->req[i]->b_first]);
		return -2;
	}
	for (int i = 0; i < s->n_req; i++)
		if (s->req[i]->state == REQ_RUNNING && s->req[i]->b_first >= 0)
		{
			n_seqs++;
			if (rc != 0)
				req_finish(s, s->req[i], LM_SCHED_ERROR, err);
		}
	s->st.steps++;
	s->st.seqs_sum += n_seqs;
	if (n_seqs > s->st.seqs_max)
		s->st.seqs_max = n_seqs;
	if (rc != 0)
		return -1;
	consume_outputs(s);
	return b->n_tokens;
}

/* Hand out the oldest finished request. */
bool
lm_sched_take_finished(lm_sched *s, lm_sched_result *out)
{
	sched_req  *r = NULL;

	for (int i = 0; i < s->n_req; i++)
		if (s->req[i]->state == REQ_FINISHED && (!r || s->req[i]->fin_order < r->fin_order))
			r = s->req[i];
	if (!r)
		return false;
	r->state = REQ_TAKEN;
	memset(out, 0, sizeof(*out));
	out->id = r->id;
	out->kind = r->kind;
	out->status = r->status;
	snprintf(out->err, sizeof(out->err), "%s", r->err);
	if (r->gen)
	{
		out->text = lm_sequence_text(r->gen, &out->len);
		out->tokens = lm_sequence_tokens(r->gen, &out->n_tokens);
		out->reason = lm_sequence_reason(r->gen);
	}
	if (r->kind == LM_SCHED_EMBED && r->status == LM_SCHED_OK)
	{
		out->embedding = r->embedding;
		out->n_embd = s->n_embd;
	}
	if (r->kind == LM_SCHED_SCORE && r->status == LM_SCHED_OK)
	{
		out->scores = r->scores;
		out->n_scores = r->n_labels;
	}
	out->n_prompt = r->n_prompt;
	out->n_reused = r->n_reused;
	out->queue_s = (r->t_admit > 0 ? r->t_admit : r->t_end) - r->t_submit;
	out->run_s = r->t_admit > 0 ? r->t_end - r->t_admit : 0.0;
	return true;
}

/* Free a finished request (taken or not); others are left alone. */
void
lm_sched_release(lm_sched *s, int64_t id)
{
	int			i;
	sched_req  *r = req_find(s, id, &i);

	if (!r || (r->state != REQ_TAKEN && r->state != REQ_FINISHED))
		return;
	req_free(r);
	memmove(s->req + i, s->req + i + 1, sizeof(sched_req *) * (s->n_req - i - 1));
	s->n_req--;
}

/* Requests holding a sequence. */
int
lm_sched_n_running(const lm_sched *s)
{
	int			n = 0;

	for (int q = 0; q < s->max_seqs; q++)
		n += s->slot[q] != NULL;
	return n;
}

/* Requests waiting for admission. */
int
lm_sched_n_waiting(const lm_sched *s)
{
	int			n = 0;

	for (int i = 0; i < s->n_req; i++)
		n += s->req[i]->state == REQ_WAITING;
	return n;
}

/* Counters and KV memory. */
void
lm_sched_get_stats(const lm_sched *s, lm_sched_stats *out)
{
	const lm_kv *kv = lm_context_kv(s->ctx);

	*out = s->st;
	out->kv_block_bytes = kv->block_bytes;
	out->kv_reserved = (size_t) s->kv_reserved * kv->block_bytes;
	out->kv_in_use = lm_kv_bytes_in_use(kv);
	out->kv_budget = kv->budget;
	out->prefixes_cached = 0;
	for (int q = 0; q < s->max_seqs; q++)
		out->prefixes_cached += s->kept[q].ids != NULL;
}
