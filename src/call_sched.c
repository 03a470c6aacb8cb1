/*
 * call_sched.c — a model call on a model's engine scheduler, shared by the
 * background worker and local-mode batches (see call_sched.h).
 *
 * The scheduler knows requests, not calls: a classify call may be two score
 * requests, so every finished result is handed to the call that owns it
 * (SchedCallOwns), which completes when its last request is in.  Prompts,
 * decoding settings and result shaping are the per-kind functions local
 * mode runs (call.h), so a call gives the same bytes here as alone.
 *
 * Baselines being scored: a list, per process, of the classify baseline
 * requests in flight (scheduler, request id, cache key).  A classify call
 * that misses the baseline cache while its key is in the list is deferred;
 * the entry goes when the baseline's result is taken (after it is put in
 * the cache) or its call is cancelled, and all entries of a scheduler go
 * when it is freed (SchedCallsForget), so a deferred call never waits for
 * a request that will not finish.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "call_sched.h"
#include "embed_encoder.h"
#include "runtime.h"

/* A classify baseline being scored. */
typedef struct PendingBaseline
{
	lm_sched   *sched;			/* its scheduler */
	int64		id;				/* its score request */
	char	   *key;			/* the baseline cache key (TopMemoryContext) */
	int			key_len;
	struct PendingBaseline *next;
} PendingBaseline;

static PendingBaseline *pending_baselines = NULL;

/* True when sched is scoring the baseline of key. */
static bool
BaselinePending(lm_sched *sched, StringInfo key)
{
	for (PendingBaseline *p = pending_baselines; p; p = p->next)
		if (p->sched == sched && p->key_len == key->len && memcmp(p->key, key->data, key->len) == 0)
			return true;
	return false;
}

/* Note that request id of sched scores the baseline of key. */
static void
BaselineStarted(lm_sched *sched, int64 id, StringInfo key)
{
	PendingBaseline *p = MemoryContextAlloc(TopMemoryContext, sizeof(PendingBaseline));

	p->sched = sched;
	p->id = id;
	p->key = MemoryContextAlloc(TopMemoryContext, key->len);
	memcpy(p->key, key->data, key->len);
	p->key_len = key->len;
	p->next = pending_baselines;
	pending_baselines = p;
}

/* Forget the pending baselines of sched: request id, or all of them when id < 0. */
static void
BaselinesForget(lm_sched *sched, int64 id)
{
	PendingBaseline **link = &pending_baselines;

	while (*link)
	{
		PendingBaseline *p = *link;

		if (p->sched == sched && (id < 0 || p->id == id))
		{
			*link = p->next;
			pfree(p->key);
			pfree(p);
		}
		else
			link = &p->next;
	}
}

/* Forget what this module keeps about a scheduler that is being freed. */
void
SchedCallsForget(lm_sched *sched)
{
	BaselinesForget(sched, -1);
}

/* Submit a classify call: one score request per planned prompt; false when deferred. */
static bool
SubmitClassify(SchedCall *sc, char *err, size_t errlen)
{
	ClassifyScoring *cs = sc->classify = ClassifyScoringOf(sc->m, sc->call);

	if (cs->n_prompts == 2 && BaselinePending(sc->sched, cs->key))
	{
		sc->deferred = true;
		return false;
	}
	for (int t = 0; t < cs->n_prompts; t++)
	{
		int64		id = lm_sched_submit_score(sc->sched, cs->prompt[t].ids, cs->prompt[t].n,
											   (const int32 *const *) cs->label_ids, cs->label_n_ids,
											   cs->n_labels, err, errlen);

		if (id < 0)
			break;
		if (t < cs->n_prompts - 1)
		{
			sc->base_id = id;
			BaselineStarted(sc->sched, id, cs->key);
		}
		else
			sc->sched_id = id;
	}
	return true;
}

/* Submit a generate or summarize call: one request per generation, all after the same prompt. */
static void
SubmitGeneration(SchedCall *sc, size_t pool_bytes, const char *pool_setting, char *err, size_t errlen)
{
	LmgenPrompt prompt = CallPrompt(sc->m, sc->call);
	int			n = CallGenerations(sc->m, sc->call);
	lm_gen_params p[LMGEN_MAX_GENERATIONS];
	size_t		kv = 0;

	CallDecodings(sc->m, sc->call, n, p);
	for (int k = 0; k < n; k++)
		kv += GenerationKvBytes(sc->m, &prompt, &p[k]);
	CheckKvMemory(kv, "this generation");
	if (kv > pool_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("this generation needs more KV memory than %s (%zu MB)", pool_setting, pool_bytes >> 20),
				 errhint("Shorten the text or ask for fewer tokens, or raise %s.", pool_setting)));
	for (int k = 0; k < n; k++)
	{
		sc->gen_ids[k] = lm_sched_submit_generate(sc->sched, prompt.ids, prompt.n, &p[k], err, errlen);
		if (sc->gen_ids[k] < 0)
			break;
		sc->n_gen = k + 1;
	}
	sc->sched_id = sc->n_gen == n ? sc->gen_ids[0] : -1;
}

/* Keep generation res's text; true when every generation of the call is in. */
static bool
TakeText(SchedCall *sc, const lm_sched_result *res)
{
	for (int k = 0; k < sc->n_gen; k++)
		if (sc->gen_ids[k] == res->id && sc->gen_texts[k] == NULL)
		{
			/* the bytes as they are: a generation may hold a NUL (dropped later, as alone) */
			sc->gen_texts[k] = palloc(res->len + 1);
			memcpy(sc->gen_texts[k], res->text, res->len);
			sc->gen_texts[k][res->len] = '\0';
			sc->gen_lens[k] = res->len;
			sc->n_gen_taken++;
		}
	return sc->n_gen_taken == sc->n_gen;
}

/* Submit a call to a scheduler; false when deferred. */
bool
SchedCallSubmit(SchedCall *sc, const LmgenCall *c, LmgenModel *m, lm_sched *sched,
				size_t pool_bytes, const char *pool_setting)
{
	char		err[256];
	bool		submitted = true;

	memset(sc, 0, sizeof(*sc));
	sc->call = c;
	sc->m = m;
	sc->sched = sched;
	sc->sched_id = -1;
	sc->base_id = -1;
	err[0] = '\0';
	PG_TRY();
	{
		if (c->kind == LMGEN_CALL_CLASSIFY)
			submitted = SubmitClassify(sc, err, sizeof(err));
		else if (c->kind == LMGEN_CALL_EMBED)
		{
			LmgenPrompt prompt = EmbedPromptOf(m, c->body, c->body_len);

			CheckKvMemory(lm_kv_bytes(m->model, prompt.n, 1), "this embedding");
			sc->sched_id = lm_sched_submit_embed(sched, prompt.ids, prompt.n, err, sizeof(err));
		}
		else
			SubmitGeneration(sc, pool_bytes, pool_setting, err, sizeof(err));
		if (submitted && sc->sched_id < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not run model \"%s\": %s", m->name, err)));
	}
	PG_CATCH();
	{
		SchedCallCancel(sc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return submitted;
}

/* True when a deferred call may be submitted again: the baseline it waited for is no longer being scored. */
bool
SchedCallMayResubmit(const SchedCall *sc)
{
	return sc->deferred && !BaselinePending(sc->sched, sc->classify->key);
}

/* True when scheduler request id is one of sc's. */
bool
SchedCallOwns(const SchedCall *sc, int64 id)
{
	if (id < 0)
		return false;
	for (int k = 0; k < sc->n_gen; k++)
		if (sc->gen_ids[k] == id)
			return true;
	return sc->sched_id == id || sc->base_id == id;
}

/* Keep a classify prompt's label scores; true when every prompt of the call is scored. */
static bool
TakeScores(SchedCall *sc, const lm_sched_result *res)
{
	int			last = sc->classify->n_prompts - 1;
	int			t = res->id == sc->sched_id ? last : 0;

	sc->scores[t] = palloc(sizeof(double) * res->n_scores);
	memcpy(sc->scores[t], res->scores, sizeof(double) * res->n_scores);
	if (t < last)
		ClassifyBaselineScored(sc->classify, sc->scores[t]);
	return sc->scores[0] != NULL && sc->scores[last] != NULL;
}

/* Take a finished result of sc; true when the call is complete (result bytes in out). */
bool
SchedCallTake(SchedCall *sc, const lm_sched_result *res, StringInfo out)
{
	if (res->id == sc->base_id)
		BaselinesForget(sc->sched, res->id);
	sc->prompt_tokens += res->n_prompt;
	sc->generated_tokens += res->n_tokens;
	sc->queue_s = res->queue_s;
	if (res->status != LM_SCHED_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not run model \"%s\": %s", sc->m->name,
						res->status == LM_SCHED_CANCELLED ? "cancelled" : res->err)));
	switch (res->kind)
	{
		case LM_SCHED_SCORE:
			if (!TakeScores(sc, res))
				return false;
			ClassifyFinish(sc->classify, sc->scores, out);
			break;
		case LM_SCHED_EMBED:
			appendBinaryStringInfo(out, (const char *) res->embedding, sizeof(float) * res->n_embd);
			break;
		case LM_SCHED_GENERATE:
			if (!TakeText(sc, res))
				return false;
			CallFinishText(sc->m, sc->call, (const char *const *) sc->gen_texts, sc->gen_lens, sc->n_gen, out);
			break;
	}
	return true;
}

/* Cancel sc's requests still waiting or running. */
void
SchedCallCancel(SchedCall *sc)
{
	if (sc->sched == NULL)
		return;
	if (sc->base_id >= 0)
	{
		BaselinesForget(sc->sched, sc->base_id);
		lm_sched_cancel(sc->sched, sc->base_id);	/* ignored once finished */
	}
	if (sc->sched_id >= 0)
		lm_sched_cancel(sc->sched, sc->sched_id);
	for (int k = 0; k < sc->n_gen; k++)
		lm_sched_cancel(sc->sched, sc->gen_ids[k]);
}

/* Run fn(arg) catching an ERROR other than a cancel (in a scratch memory context when asked); NULL when it returned. */
ErrorData *
CatchCallError(void (*fn) (void *arg), void *arg, bool scratch)
{
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext run = scratch ? AllocSetContextCreate(cxt, "lmgen call", ALLOCSET_DEFAULT_SIZES) : cxt;
	ErrorData  *edata = NULL;

	MemoryContextSwitchTo(run);
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		{
			if (scratch)
				MemoryContextDelete(run);
			PG_RE_THROW();
		}
		FlushErrorState();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	if (scratch)
		MemoryContextDelete(run);	/* its engine state (lm_gen, the call's KV) goes now */
	return edata;
}

/* Run one call alone with its model open (CatchCallError's fn; arg is a CallAlone). */
void
RunCallAlone(void *arg)
{
	CallAlone  *one = arg;

	CallExecute(one->m, one->call, one->out);
}

/* What an encoder batch needs. */
typedef struct EncoderBatch
{
	LmgenModel *m;
	const char **texts;
	size_t	   *lens;
	int			n;
	float	   *vectors;		/* n rows of n_embd */
} EncoderBatch;

/* Run the encoder batch (CatchCallError's fn). */
static void
EncoderRunBatch(void *arg)
{
	EncoderBatch *b = arg;

	EncoderEmbedTexts(b->m, b->texts, b->lens, b->n, b->vectors);
}

/* Run n embed calls of an encoder model in one batch. */
void
EncoderEmbedCalls(LmgenModel *m, const LmgenCall *const *calls, int n, StringInfo *out, ErrorData **errors)
{
	int			E = m->model->cfg.n_embd;
	EncoderBatch b = {m, palloc(sizeof(char *) * Max(n, 1)), palloc(sizeof(size_t) * Max(n, 1)), n,
	palloc_extended(sizeof(float) * E * Max(n, 1), MCXT_ALLOC_HUGE)};
	ErrorData  *batch_error;

	for (int i = 0; i < n; i++)
	{
		b.texts[i] = calls[i]->body;
		b.lens[i] = calls[i]->body_len;
		errors[i] = NULL;
	}
	batch_error = CatchCallError(EncoderRunBatch, &b, true);
	for (int i = 0; i < n; i++)
	{
		if (batch_error == NULL)
			appendBinaryStringInfo(out[i], (const char *) (b.vectors + (size_t) E * i), sizeof(float) * E);
		else
		{
			/* one by one, so each call gets its own error */
			CallAlone	one = {m, calls[i], out[i]};

			CHECK_FOR_INTERRUPTS();
			errors[i] = CatchCallError(RunCallAlone, &one, true);
		}
	}
	pfree(b.texts);
	pfree(b.lens);
	pfree(b.vectors);
}
