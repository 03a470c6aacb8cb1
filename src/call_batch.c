/*
 * call_batch.c — model calls of many rows at once (see call_batch.h): the
 * table of batchable functions, the batch runner, and the array forms.
 *
 * Worker mode hands every call to the background worker before waiting for
 * any (request.c), and the worker batches them with everyone else's.
 *
 * Local mode runs the calls in this backend's engine, grouped by the model
 * they name (groups in order of their first call; the model of each group
 * is opened once):
 *   - a decoder model's calls go to an engine scheduler over the model's
 *     reusable context (runtime.c: made for LOCAL_BATCH_SEQS sequences and
 *     kept, its KV pool capped at lmgen.max_kv_memory and given back when
 *     the batch ends, its threads joined), submitted with the worker's code
 *     (call_sched.c), stepped until all are finished, with
 *     CHECK_FOR_INTERRUPTS() between steps and the context's abort check
 *     inside them; the scheduler admits as many sequences as the KV budget
 *     allows and queues the rest;
 *   - an encoder model's (bert) embed calls run as one EncoderEmbedTexts
 *     batch, which packs the texts into shared forward passes.
 * A group of one call runs as CallRun would run it alone.
 *
 * Errors.  Running the calls one by one raises the first failing call's
 * ERROR, after the calls before it ran.  Here each call's own error (its
 * prompt, KV memory, engine result, result shaping) is caught and kept;
 * once a call fails, the calls after it are cancelled (their results could
 * not matter), the ones before it run to their end, and the first error in
 * array order is raised again as it was.  A cancel or statement_timeout is
 * raised at once; the engine state of the batch is tied to the memory
 * context, so an ERROR anywhere frees the scheduler and the KV blocks and
 * joins the threads.  Errors that are not one call's own (a model that
 * cannot be opened) are raised at once as well.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "lmgen.h"
#include "call_batch.h"
#include "call_sched.h"
#include "embed_encoder.h"
#include "runtime.h"
#include "sqlfuncs_common.h"

extern Datum lmgen_generate(PG_FUNCTION_ARGS);
extern Datum lmgen_summarize(PG_FUNCTION_ARGS);
extern Datum lmgen_classify(PG_FUNCTION_ARGS);
extern Datum lmgen_embed(PG_FUNCTION_ARGS);

/* Sequences of a local batch's scheduler (more calls wait in its queue). */
#define LOCAL_BATCH_SEQS 64

/* Token budget of one step of a local batch. */
#define LOCAL_STEP_TOKENS 256

static const LmgenBatchable batchable[] = {
	{"generate", lmgen_generate, GenerateCallOf, TextResult},
	{"summarize", lmgen_summarize, SummarizeCallOf, TextResult},
	{"classify", lmgen_classify, ClassifyCallOf, ClassifyResult},
	{"embed", lmgen_embed, EmbedCallOf, EmbedResult},
};

/* The batchable model function whose C entry point is fn, or NULL. */
const LmgenBatchable *
BatchableFunction(PGFunction fn)
{
	for (int i = 0; i < lengthof(batchable); i++)
		if (batchable[i].fn == fn)
			return &batchable[i];
	return NULL;
}

/* A batch being run in this backend. */
typedef struct LocalBatch
{
	LmgenCall  *calls;			/* the calls */
	int			n;				/* count */
	StringInfo *out;			/* their result bytes */
	ErrorData **errors;			/* their errors (NULL: none) */
	int			first_error;	/* the first failed call (n: none yet); calls after it need not run */
} LocalBatch;

/* Keep call i's error. */
static void
KeepError(LocalBatch *b, int i, ErrorData *e)
{
	b->errors[i] = e;
	b->first_error = Min(b->first_error, i);
}

/* A local scheduler for a batch: the scheduler, and what is being done with it. */
typedef struct LocalSched
{
	LocalBatch *b;
	LmgenModel *m;
	lm_sched   *sched;
	int		   *idx;			/* the group's calls (indexes into b) */
	int			g;				/* count */
	SchedCall  *sc;				/* (g) each call there */
	bool	   *submitted;		/* (g) submitted once (it may be deferred) */
	bool	   *finished;		/* (g) complete, failed or not needed */
	int			k;				/* the call being submitted or taken */
	const lm_sched_result *res; /* the result being taken */
} LocalSched;

/* The scheduler and its baseline entries go (engine resource callback). */
static void
FreeLocalSched(void *p)
{
	SchedCallsForget(p);
	lm_sched_free(p);
}

/* Submit call k of the group (CatchCallError's fn). */
static void
SubmitLocal(void *arg)
{
	LocalSched *ls = arg;
	int			k = ls->k;

	(void) SchedCallSubmit(&ls->sc[k], &ls->b->calls[ls->idx[k]], ls->m, ls->sched,
						   (size_t) lmgen_max_kv_memory << 20, "lmgen.max_kv_memory");
}

/* Take result res for call k of the group (CatchCallError's fn). */
static void
TakeLocal(void *arg)
{
	LocalSched *ls = arg;
	int			k = ls->k;

	if (SchedCallTake(&ls->sc[k], ls->res, ls->b->out[ls->idx[k]]))
		ls->finished[k] = true;
}

/* Call k of the group failed: keep its error, and cancel its other requests and the calls after it. */
static void
LocalFailed(LocalSched *ls, int k, ErrorData *e)
{
	KeepError(ls->b, ls->idx[k], e);
	if (ls->submitted[k])
		SchedCallCancel(&ls->sc[k]);	/* a headline's other generations; finished ones are ignored */
	ls->finished[k] = true;
	for (int j = 0; j < ls->g; j++)
		if (!ls->finished[j] && ls->idx[j] > ls->b->first_error)
		{
			if (ls->submitted[j])
				SchedCallCancel(&ls->sc[j]);
			ls->finished[j] = true;
		}
}

/* Submit the group's calls not submitted yet, and the deferred ones whose baseline is in. */
static void
SubmitPending(LocalSched *ls)
{
	for (int k = 0; k < ls->g; k++)
	{
		ErrorData  *e;

		if (ls->finished[k] || (ls->submitted[k] && !SchedCallMayResubmit(&ls->sc[k])))
			continue;
		CHECK_FOR_INTERRUPTS();
		ls->k = k;
		e = CatchCallError(SubmitLocal, ls, false);
		ls->submitted[k] = true;
		if (e)
			LocalFailed(ls, k, e);
	}
}

/* Hand the scheduler's finished requests to their calls. */
static void
TakeFinished(LocalSched *ls)
{
	lm_sched_result res;

	while (lm_sched_take_finished(ls->sched, &res))
	{
		for (int k = 0; k < ls->g; k++)
			if (!ls->finished[k] && SchedCallOwns(&ls->sc[k], res.id))
			{
				ErrorData  *e;

				ls->k = k;
				ls->res = &res;
				e = CatchCallError(TakeLocal, ls, false);
				if (e)
					LocalFailed(ls, k, e);
				break;
			}
		lm_sched_release(ls->sched, res.id);
	}
}

/* Run a group of calls of decoder model m through a scheduler in this backend. */
static void
RunLocalScheduler(LocalBatch *b, LmgenModel *m, int *idx, int g)
{
	LocalSched	ls = {b, m, NULL, idx, g};
	lm_sched_params sp = lm_sched_default_params();
	RuntimeCall call;
	EngineResource *res;
	char		err[512];

	/* the context is kept for LOCAL_BATCH_SEQS sequences, so batches of any size reuse it */
	call = RuntimeBeginSteps(m, LOCAL_BATCH_SEQS, LOCAL_STEP_TOKENS, 0, "this batch");
	sp.max_seqs = Min(g, LOCAL_BATCH_SEQS);
	sp.step_tokens = LOCAL_STEP_TOKENS;
	ls.sched = lm_sched_create(call.ctx, m->tok, &sp, err, sizeof(err));
	if (ls.sched == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not set up model \"%s\" for a batch: %s", m->name, err)));
	res = TrackEngineResource(ls.sched, FreeLocalSched);
	ls.sc = palloc0(sizeof(SchedCall) * g);
	ls.submitted = palloc0(sizeof(bool) * g);
	ls.finished = palloc0(sizeof(bool) * g);
	for (;;)
	{
		int			rc;

		SubmitPending(&ls);
		if (lm_sched_n_running(ls.sched) + lm_sched_n_waiting(ls.sched) == 0)
			break;
		CHECK_FOR_INTERRUPTS();
		rc = lm_sched_step(ls.sched, err, sizeof(err));
		if (rc == -2)
		{
			/* the abort check stopped the step: raise the pending cancel */
			CHECK_FOR_INTERRUPTS();
			if (QueryAbortPending(NULL))
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("canceling statement because an interrupt is pending")));
		}
		/* an engine error (-1) finishes the step's requests with its message: taken as their errors */
		TakeFinished(&ls);
	}
	for (int k = 0; k < g; k++)
		if (!ls.finished[k])
			elog(ERROR, "lmgen batch call %d of model \"%s\" did not finish", idx[k] + 1, m->name);
	ReleaseEngineResource(res);
	RuntimeEnd(&call);
}

/* Run a group of calls of encoder model m: the embed calls in one batch, others alone. */
static void
RunLocalEncoder(LocalBatch *b, LmgenModel *m, int *idx, int g)
{
	const LmgenCall **calls = palloc(sizeof(LmgenCall *) * g);
	StringInfo *out = palloc(sizeof(StringInfo) * g);
	ErrorData **errors = palloc(sizeof(ErrorData *) * g);
	int		   *which = palloc(sizeof(int) * g);
	int			n = 0;

	for (int k = 0; k < g; k++)
	{
		int			i = idx[k];

		if (i > b->first_error)
			continue;
		if (b->calls[i].kind == LMGEN_CALL_EMBED)
		{
			calls[n] = &b->calls[i];
			out[n] = b->out[i];
			which[n++] = i;
		}
		else if (i < b->first_error)
		{
			CallAlone	one = {m, &b->calls[i], b->out[i]};
			ErrorData  *e = CatchCallError(RunCallAlone, &one, true);

			if (e)
				KeepError(b, i, e);
		}
	}
	EncoderEmbedCalls(m, calls, n, out, errors);
	for (int k = 0; k < n; k++)
		if (errors[k])
			KeepError(b, which[k], errors[k]);
}

/* True when two calls name the same model. */
static bool
SameModel(const LmgenCall *a, const LmgenCall *b)
{
	if (a->model_name == NULL || b->model_name == NULL)
		return a->model_name == b->model_name;
	return strcmp(a->model_name, b->model_name) == 0;
}

/* Run the calls in this backend, model by model; call i's error in b->errors[i]. */
static void
RunLocal(LocalBatch *b)
{
	bool	   *grouped = palloc0(sizeof(bool) * b->n);
	int		   *idx = palloc(sizeof(int) * b->n);

	for (int i = 0; i < b->n && i <= b->first_error; i++)
	{
		LmgenModel *m;
		int			g = 0;

		if (grouped[i])
			continue;
		for (int j = i; j < b->n && j <= b->first_error; j++)
			if (!grouped[j] && SameModel(&b->calls[i], &b->calls[j]))
			{
				grouped[j] = true;
				idx[g++] = j;
			}
		m = ModelAcquire(b->calls[i].model_name);
		if (g == 1)
		{
			CallAlone	one = {m, &b->calls[i], b->out[i]};
			ErrorData  *e = CatchCallError(RunCallAlone, &one, true);

			if (e)
				KeepError(b, i, e);
		}
		else if (m->model->cfg.encoder)
			RunLocalEncoder(b, m, idx, g);
		else
			RunLocalScheduler(b, m, idx, g);
	}
}

/* Run n calls together; call i's result bytes in out[i]. */
void
CallRunBatch(LmgenCall *calls, int n, StringInfo *out)
{
	LocalBatch	b;

	if (n <= 0)
		return;
	if (n == 1)
	{
		CallRun(&calls[0], out[0]);
		return;
	}
	if (CallsUseWorker())
	{
		for (int i = 0; i < n; i++)
		{
			LmgenModel *m = ModelLookup(calls[i].model_name);

			calls[i].model_name = m->name;
			calls[i].model_path = m->path;
		}
		RequestRunBatch(calls, n, out);
		return;
	}
	b.calls = calls;
	b.n = n;
	b.out = out;
	b.errors = palloc0(sizeof(ErrorData *) * n);
	b.first_error = n;
	RunLocal(&b);
	if (b.first_error < n)
		ReThrowError(b.errors[b.first_error]);
}

/* Parse each element of array argument 0 into a call and run them together; the element count. */
int
CallArrayRun(FunctionCallInfo fcinfo, CallArgsFn args, LmgenCall **calls, StringInfo **out, bool **isnull)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	LOCAL_FCINFO(row, FUNC_MAX_ARGS);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	LmgenCall  *run;
	StringInfo *run_out;
	int			n_run = 0;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the texts must be a one-dimensional array, not %d dimensions", ARR_NDIM(arr))));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	*calls = palloc0(sizeof(LmgenCall) * Max(n, 1));
	*out = palloc0(sizeof(StringInfo) * Max(n, 1));
	*isnull = palloc(sizeof(bool) * Max(n, 1));
	run = palloc(sizeof(LmgenCall) * Max(n, 1));
	run_out = palloc(sizeof(StringInfo) * Max(n, 1));

	/* the per-row parser sees a call of the per-row function with the element as argument 0 */
	InitFunctionCallInfoData(*row, fcinfo->flinfo, fcinfo->nargs, fcinfo->fncollation, NULL, NULL);
	for (int a = 1; a < fcinfo->nargs; a++)
		row->args[a] = fcinfo->args[a];
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		row->args[0].value = elems[i];
		row->args[0].isnull = nulls[i];
		(*isnull)[i] = !args(row, &(*calls)[i]);
		if ((*isnull)[i])
			continue;
		(*out)[i] = makeStringInfo();
		run[n_run] = (*calls)[i];
		run_out[n_run++] = (*out)[i];
	}
	CallRunBatch(run, n_run, run_out);
	/* CallRunBatch may have resolved the model names */
	for (int i = 0, k = 0; i < n; i++)
		if (!(*isnull)[i])
			(*calls)[i] = run[k++];
	return n;
}

/* The array form returning a text[] of the per-element results, in input order. */
Datum
CallArrayFunction(FunctionCallInfo fcinfo, CallArgsFn args, CallResultFn result)
{
	ArrayType  *arr;
	LmgenCall  *calls;
	StringInfo *out;
	bool	   *isnull;
	Datum	   *values;
	int			n,
				lbound;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	arr = PG_GETARG_ARRAYTYPE_P(0);
	lbound = ARR_NDIM(arr) == 1 ? ARR_LBOUND(arr)[0] : 1;
	n = CallArrayRun(fcinfo, args, &calls, &out, &isnull);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	values = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		values[i] = isnull[i] ? (Datum) 0 : result(&calls[i], out[i]);
	PG_RETURN_ARRAYTYPE_P(construct_md_array(values, isnull, 1, &n, &lbound, TEXTOID, -1, false, TYPALIGN_INT));
}
