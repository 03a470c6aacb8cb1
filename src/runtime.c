/*
 * runtime.c — running a model from a backend.
 *
 * Engine state that outlives one call (the lm_context with its thread pool
 * and its KV block pool) hangs off the cached LmgenModel and is reused; it
 * is made again when a call needs more sequences or bigger internal steps
 * (a batch's, RuntimeBeginSteps: it then keeps them) or lmgen.threads
 * changed.
 * Memory follows the call: a call states the KV memory it needs at most
 * (checked against lmgen.max_kv_memory, which also caps the engine's block
 * pool), blocks are taken as the forward passes need them, and when the
 * call ends (or an ERROR unwinds it) the cache is emptied, blocks beyond
 * LMGEN_KV_KEEP and big output buffers are freed and malloc gives the pages
 * back to the system, so an idle backend holds little.  State of one call
 * (an lm_gen) is registered with a memory-context reset callback on the
 * calling context, so an ERROR or a cancel anywhere frees it.
 *
 * Cancellation: between generated tokens we call CHECK_FOR_INTERRUPTS()
 * (the engine's threads are idle then).  Inside one forward pass the
 * context's abort check looks at QueryCancelPending / ProcDiePending before
 * every job the engine hands its threads (a few per layer; internal steps
 * hold at most LMGEN_STEP_TOKENS tokens, a batch's step size once the
 * backend ran a batch, and fewer at long contexts, so no job runs long) and makes the engine return early; the caller then raises
 * the pending interrupt.  The check runs on the calling thread only; no
 * Postgres code runs on engine threads, and no ERROR longjmps through
 * engine frames.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "lmgen.h"
#include "runtime.h"
#include "chat_tokenize.h"
#include "sqlfuncs_common.h"

/* Tokens per internal forward step at most (the engine takes fewer at long contexts). */
#define LMGEN_STEP_TOKENS 32

/* KV cache bytes a backend keeps between calls (blocks for a short prompt). */
#define LMGEN_KV_KEEP ((size_t) 4 << 20)

/*
 * The model's context for n_seq sequences, internal steps of at least
 * n_batch tokens and lmgen.threads threads: the kept one when it is big
 * enough, else a new one.
 */
static lm_context *
RuntimeContext(LmgenModel *m, int n_seq, int n_batch)
{
	char		err[512];
	lm_context_params p;

	if (m->ctx && lm_context_n_seq_max(m->ctx) >= n_seq && lm_context_n_batch(m->ctx) >= n_batch &&
		lm_context_n_threads(m->ctx) == lmgen_threads)
		return m->ctx;
	p = lm_context_default_params();
	p.n_ctx = m->model->cfg.n_ctx_train;	/* a bound only: blocks are taken as needed */
	p.n_seq_max = Max(n_seq, 1);
	p.n_batch = n_batch;
	p.n_threads = lmgen_threads;
	if (m->ctx && lm_context_n_threads(m->ctx) == lmgen_threads)
	{
		/* never smaller than the kept one, so calls and batches in turn do not remake it */
		p.n_seq_max = Max(p.n_seq_max, lm_context_n_seq_max(m->ctx));
		p.n_batch = Max(p.n_batch, lm_context_n_batch(m->ctx));
	}
	lm_context_free(m->ctx);
	m->ctx = NULL;
	m->ctx = lm_context_create(m->model, &p, err, sizeof(err));
	if (m->ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not set up model \"%s\" for %d sequences: %s", m->name, p.n_seq_max, err)));
	lm_context_set_abort(m->ctx, QueryAbortPending, NULL);
	return m->ctx;
}

/* lmgen.max_kv_memory in bytes. */
static size_t
MaxKvBytes(void)
{
	return (size_t) lmgen_max_kv_memory << 20;
}

/* Megabytes, rounded up, for messages. */
static size_t
RoundUpMB(size_t bytes)
{
	return (bytes + ((size_t) 1 << 20) - 1) >> 20;
}

/* Give back what a call held: join its threads, empty the cache, free blocks and buffers beyond a keep size. */
static void
ReleaseCallMemory(void *arg)
{
	LmgenModel *m = arg;

	if (m->ctx == NULL)
		return;
	lm_context_stop_threads(m->ctx);	/* no engine thread outlives the call */
	lm_kv_clear(lm_context_kv(m->ctx));
	if (lm_context_trim(m->ctx, LMGEN_KV_KEEP) > 0)
	{
#ifdef __GLIBC__
		/* freed blocks may sit in the heap; hand the pages back */
		malloc_trim(0);
#endif
	}
}

/* ERROR when a call needs more KV memory than lmgen.max_kv_memory. */
void
CheckKvMemory(size_t kv_bytes, const char *what)
{
	if (kv_bytes > MaxKvBytes())
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s needs %zu MB of KV memory, more than lmgen.max_kv_memory (%d MB)",
						what, RoundUpMB(kv_bytes), lmgen_max_kv_memory),
				 errhint("Shorten the text, or ask a superuser to raise lmgen.max_kv_memory.")));
}

/* Start a call: context, empty cache capped at lmgen.max_kv_memory, release on unwind. */
RuntimeCall
RuntimeBegin(LmgenModel *m, int n_seq, size_t kv_bytes, const char *what)
{
	return RuntimeBeginSteps(m, n_seq, LMGEN_STEP_TOKENS, kv_bytes, what);
}

/* RuntimeBegin with internal steps of at least step_tokens tokens (batches). */
RuntimeCall
RuntimeBeginSteps(LmgenModel *m, int n_seq, int step_tokens, size_t kv_bytes, const char *what)
{
	RuntimeCall call;

	CheckKvMemory(kv_bytes, what);
	call.ctx = RuntimeContext(m, n_seq, step_tokens);
	lm_context_set_kv_budget(call.ctx, MaxKvBytes());
	lm_kv_clear(lm_context_kv(call.ctx));
	call.release = TrackEngineResource(m, ReleaseCallMemory);
	return call;
}

/* End a call: give its memory back now. */
void
RuntimeEnd(RuntimeCall *call)
{
	ReleaseEngineResource(call->release);
}

/* Raise the pending cancel/timeout, or ERROR with the engine's message. */
void
EngineError(const char *what, const char *err)
{
	CHECK_FOR_INTERRUPTS();
	if (QueryCancelPending || ProcDiePending)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling statement because an interrupt is pending")));
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("%s: %s", what, err)));
}

/* Append the tokens of one piece of text to a growing id array. */
static void
AppendTokens(LmgenModel *m, LmgenPrompt *p, int *cap, const char *s, size_t len,
			 bool add_special, bool parse_special)
{
	int			n;
	int32	   *ids = TokenizeText(m, s, len, add_special, parse_special, &n);

	if (p->n + n > *cap)
	{
		*cap = Max(*cap * 2, p->n + n);
		p->ids = repalloc_huge(p->ids, sizeof(int32) * *cap);
	}
	memcpy(p->ids + p->n, ids, sizeof(int32) * n);
	p->n += n;
	pfree(ids);
}

/* lm_chat_tokenize's malloc'd result freed with free(). */
static void
FreeIds(void *p)
{
	free(p);
}

/* Prompt for an instruction: chat template around user text, or plain text. */
LmgenPrompt
BuildInstructionPrompt(LmgenModel *m, const char *system, const char *user, size_t user_len,
					   bool use_template)
{
	LmgenPrompt p = {palloc(sizeof(int32) * 64), 0};
	int			cap = 64;
	lm_chat_family f = use_template ? m->chat_fallback : LM_CHAT_UNKNOWN;
	lm_chat_msg msgs[2];
	int			n = 0;
	char		err[256];
	int32_t    *ids;
	EngineResource *res;

	if (f == LM_CHAT_UNKNOWN)
	{
		/* plain text: the instruction, a blank line, the text */
		StringInfoData buf;

		initStringInfo(&buf);
		if (system)
			appendStringInfo(&buf, "%s\n\n", system);
		appendBinaryStringInfo(&buf, user, user_len);
		AppendTokens(m, &p, &cap, buf.data, buf.len, true, false);
		return p;
	}
	if (system)
		msgs[n++] = (lm_chat_msg) {"system", system};
	msgs[n++] = (lm_chat_msg) {"user", pnstrdup(user, user_len)};
	ids = lm_chat_tokenize_abortable(m->tok, f, msgs, n, true, &p.n, QueryAbortPending, NULL,
									 err, sizeof(err));
	if (ids == NULL)
		EngineError(psprintf("could not build the chat prompt for model \"%s\"", m->name), err);
	res = TrackEngineResource(ids, FreeIds);
	p.ids = repalloc_huge(p.ids, sizeof(int32) * Max(p.n, 1));
	memcpy(p.ids, ids, sizeof(int32) * p.n);
	ReleaseEngineResource(res);
	return p;
}

/* Append the text of n token ids to buf. */
static void
AppendDetokenized(LmgenModel *m, StringInfo buf, const int32 *ids, int n)
{
	lm_detok	d;
	char		piece[512];
	int			got;

	lm_detok_init(&d, m->tok);
	for (int i = 0; i < n; i++)
	{
		got = lm_detok_push(&d, ids[i], piece, sizeof(piece));
		if (got > 0)
			appendBinaryStringInfo(buf, piece, got);
	}
	got = lm_detok_finish(&d, piece, sizeof(piece));
	if (got > 0)
		appendBinaryStringInfo(buf, piece, got);
}

/* Make a prompt fit the context with room for reserve tokens. */
LmgenPrompt
FitPrompt(LmgenModel *m, PromptBuilder build, void *arg, const char *text, size_t len, int reserve,
		  const char *reserve_for, const char *shrink, int head_quarters)
{
	int			n_ctx = m->model->cfg.n_ctx_train;
	int			budget = n_ctx - reserve;
	LmgenPrompt p = build(m, arg, text, len);
	int			n_text;
	int32	   *text_ids;
	int			keep;

	if (p.n <= budget)
		return p;
	if (lmgen_context_overflow == LMGEN_OVERFLOW_ERROR || budget <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("prompt of %d tokens does not fit the context of model \"%s\"", p.n, m->name),
				 reserve > 0 ?
				 errdetail("The model's context holds %d tokens and %d are kept for %s.", n_ctx, reserve, reserve_for) :
				 errdetail("The model's context holds %d tokens.", n_ctx),
				 budget <= 0 ? errhint("Nothing is left for the text: %s.", shrink) :
				 reserve > 0 ? errhint("Shorten the text, %s, or SET lmgen.context_overflow = 'truncate' to cut the text.", shrink) :
				 errhint("Shorten the text, or SET lmgen.context_overflow = 'truncate' to cut the text.")));

	/*
	 * truncate: keep head_quarters/4 of the room from the text's start and
	 * the rest from its end (the middle goes), shrinking until it fits
	 */
	text_ids = TokenizeText(m, text, len, false, false, &n_text);
	keep = n_text - (p.n - budget);
	while (keep > 0)
	{
		int			head = (int) ((int64) keep * head_quarters / 4),
					tail = keep - head;
		StringInfoData buf;

		initStringInfo(&buf);
		AppendDetokenized(m, &buf, text_ids, head);
		if (tail > 0)
		{
			if (head > 0)
				appendStringInfoChar(&buf, '\n');
			AppendDetokenized(m, &buf, text_ids + n_text - tail, tail);
		}
		pfree(p.ids);
		p = build(m, arg, buf.data, buf.len);
		if (p.n <= budget)
			return p;
		keep -= Max(1, p.n - budget);
	}
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("the prompt of model \"%s\" does not fit its context even without the text", m->name),
			 reserve > 0 ? errhint("Nothing is left for the text: %s.", shrink) : 0));
	pg_unreachable();
}

/* ERROR unless max_tokens lies in 1..lmgen.max_tokens. */
void
CheckMaxTokens(int max_tokens)
{
	if (max_tokens < 1 || max_tokens > lmgen_max_tokens)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_tokens must be between 1 and %d, not %d", lmgen_max_tokens, max_tokens),
				 errhint("lmgen.max_tokens sets the upper limit; a superuser can raise it.")));
}

/* Engine memory tied to a memory context. */
struct EngineResource
{
	void	   *ptr;			/* engine object, NULL once released */
	void		(*free_fn) (void *);	/* how to free it */
	MemoryContextCallback cb;	/* runs when the memory context goes */
};

/* Memory-context callback: free the engine object if the call did not. */
static void
FreeEngineResource(void *arg)
{
	EngineResource *r = arg;

	if (r->ptr)
		r->free_fn(r->ptr);
	r->ptr = NULL;
}

/* Tie engine memory to the current memory context. */
EngineResource *
TrackEngineResource(void *ptr, void (*free_fn) (void *))
{
	EngineResource *r = palloc0(sizeof(EngineResource));

	r->ptr = ptr;
	r->free_fn = free_fn;
	r->cb.func = FreeEngineResource;
	r->cb.arg = r;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &r->cb);
	return r;
}

/* Free tracked engine memory now. */
void
ReleaseEngineResource(EngineResource *r)
{
	FreeEngineResource(r);
}

/* lm_gen_free with the signature TrackEngineResource wants. */
static void
FreeGen(void *p)
{
	lm_gen_free(p);
}

/* Evaluate a batch; ERROR (or the pending cancel) on failure. */
void
RunForward(LmgenModel *m, lm_context *ctx, const lm_batch *b)
{
	char		err[512];

	if (lm_model_forward(ctx, b, err, sizeof(err)) != 0)
		EngineError(psprintf("could not run model \"%s\"", m->name), err);
}

/* KV memory a generation needs at most: prompt and answer, up to the context. */
size_t
GenerationKvBytes(LmgenModel *m, const LmgenPrompt *prompt, const lm_gen_params *p)
{
	int			n_pos = Min(prompt->n + p->max_tokens, m->model->cfg.n_ctx_train);

	return lm_kv_bytes(m->model, n_pos, 1);
}

/*
 * Run n generations after one prompt, generation k with settings p[k] in
 * sequence k; the prompt is evaluated once (the others start after it,
 * lm_gen_start_after).  Texts palloc'd into texts[k], lengths into lens[k].
 */
void
RunGenerations(LmgenModel *m, const LmgenPrompt *prompt, const lm_gen_params *p, int n, char **texts,
			   size_t *lens)
{
	char		err[512];
	size_t		kv = 0;
	RuntimeCall call;

	for (int k = 0; k < n; k++)
		kv += GenerationKvBytes(m, prompt, &p[k]);
	call = RuntimeBegin(m, n, kv, "this generation");
	for (int k = 0; k < n; k++)
	{
		lm_gen	   *gen;
		EngineResource *res;
		const char *text;
		size_t		text_len;
		int32_t		token;
		int			rc;

		gen = k == 0 ? lm_gen_start(call.ctx, m->tok, 0, prompt->ids, prompt->n, &p[k], err, sizeof(err))
			: lm_gen_start_after(call.ctx, m->tok, k, 0, prompt->ids, prompt->n, &p[k], err, sizeof(err));
		if (gen == NULL)
			EngineError("could not start generating", err);
		res = TrackEngineResource(gen, FreeGen);
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			rc = lm_gen_next(gen, &token, &text, &text_len, err, sizeof(err));
			if (rc == 0)
				break;
			if (rc < 0)
				EngineError("generation failed", err);
		}
		text = lm_gen_text(gen, &text_len);
		texts[k] = palloc(text_len + 1);
		memcpy(texts[k], text, text_len);
		texts[k][text_len] = '\0';
		lens[k] = text_len;
		ReleaseEngineResource(res);
	}
	RuntimeEnd(&call);
}
