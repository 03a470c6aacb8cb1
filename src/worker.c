/*
 * worker.c — lmgen's background worker: one engine for every session.
 *
 * With shared_preload_libraries = 'lmgen' the postmaster starts this worker
 * (and restarts it one second after it exits).  It connects to no database:
 * backends resolve model names through the registry as the calling user and
 * hand over the model's file path, and the worker keeps the models it has
 * opened keyed by file identity (model_cache.c, ModelByFile), so one copy
 * of each model serves every database.  Their weights are in shared memory
 * (model_shared.c), mapped by the backends too; when a model's file is
 * replaced on disk, the calls in flight finish on the old copy, new calls
 * open the file as it is now, and the old copy is closed once no call uses
 * it (ModelsCloseRetired).
 *
 * The loop (continuous batching):
 *   1. admit: take every QUEUED request slot (protocol in shmem.c), read
 *      the call from its DSM segment (call.c), open the model and submit
 *      the call to the model's scheduler (engine scheduler.h) with the
 *      code local-mode batches use (call_sched.c: prompts built as in
 *      local mode; a classify call is one score request per prompt,
 *      finished when all are scored, and waits while another call scores
 *      the same baseline).  The embed calls of a sentence encoder (no
 *      scheduler: it has its own batches) that arrive in one round run
 *      right after it as one EncoderEmbedTexts batch;
 *   2. drop the requests whose backend stopped waiting (cancel, timeout,
 *      exit): the scheduler frees their KV blocks at once;
 *   3. step: one forward pass per model with work, over every running
 *      sequence (decode tokens and prefill chunks in one batch, under the
 *      step's token budget); requests that arrived meanwhile join at the
 *      next step;
 *   4. hand out: each finished request's result goes into its shm_mq
 *      (never blocking: a result larger than the queue goes out in pieces
 *      over the next iterations as the backend reads), which wakes the
 *      backend.
 * Decoder models run on a compute device when the worker found one at start
 * (worker_device.c: probe in a child, lmgen.device): their scheduler's
 * context is a device context (context.h) over the model's weights
 * uploaded once, with many more sequences at once than on the CPU.  A
 * failed device step fails the requests of that step; a device that turns
 * unhealthy fails every call still on it, is closed, and later calls run
 * on the CPU (DeviceLost).
 *
 * Each call's preparation runs under PG_TRY: an ERROR fails only that call,
 * and its SQLSTATE, message, detail and hint travel back to the backend,
 * which raises them as its own; an engine error in a step fails the
 * requests of that step with the engine's message.  Anything
 * the worker cannot recover from outside a call is a FATAL exit, so only
 * the worker restarts; SIGTERM (pg_terminate_backend, shutdown) ends it the
 * same way, and an exit callback fails every call in flight so that every
 * waiting backend raises an ERROR at once.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "lmgen.h"
#include "call.h"
#include "call_sched.h"
#include "request.h"
#include "shmem.h"
#include "scheduler.h"
#include "sqlfuncs_common.h"
#include "worker_device.h"

PGDLLEXPORT void LmgenWorkerMain(Datum arg);

/* Cancel flag of the call the worker is running (read by QueryAbortPending), or NULL. */
volatile bool *lmgen_call_cancel = NULL;

/* Register the worker (only while preloading). */
void
WorkerInit(void)
{
	BackgroundWorker w;

	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_ConsistentState;
	w.bgw_restart_time = 1;
	strlcpy(w.bgw_library_name, "lmgen", sizeof(w.bgw_library_name));
	strlcpy(w.bgw_function_name, "LmgenWorkerMain", sizeof(w.bgw_function_name));
	strlcpy(w.bgw_name, "lmgen worker", sizeof(w.bgw_name));
	strlcpy(w.bgw_type, "lmgen worker", sizeof(w.bgw_type));
	RegisterBackgroundWorker(&w);
}

/* Exit callback: fail every call in flight, wake its backend, and say there is no worker. */
static void
WorkerExit(int code, Datum arg)
{
	Latch	   *wake[LMGEN_MAX_MAX_REQUESTS];
	int			n_wake = 0;

	LWLockReleaseAll();
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < lmgen_shared->n_slots; i++)
	{
		LmgenSlot  *s = &lmgen_shared->slots[i];

		if (s->state != LMGEN_SLOT_QUEUED && s->state != LMGEN_SLOT_ACTIVE)
			continue;
		if (s->cancel)
			s->state = LMGEN_SLOT_FREE;
		else
		{
			s->state = LMGEN_SLOT_FAILED;
			strlcpy(s->errmsg, "the background worker exited while the call was in progress",
					sizeof(s->errmsg));
			wake[n_wake++] = s->backend_latch;
		}
	}
	lmgen_shared->worker_pid = 0;
	lmgen_shared->worker_latch = NULL;
	lmgen_shared->worker_state = LMGEN_WORKER_STOPPED;
	lmgen_shared->worker_generation++;
	lmgen_shared->active = 0;
	lmgen_shared->queued = 0;
	lmgen_shared->models_loaded = 0;
	LWLockRelease(lmgen_shared->lock);
	for (int i = 0; i < n_wake; i++)
		SetLatch(wake[i]);
	ConditionVariableBroadcast(&lmgen_shared->slot_freed);
}

/* Take the oldest QUEUED slot and mark it ACTIVE; its index, or -1 when none. */
static int
TakeQueued(uint64 *id, dsm_handle *h, TimestampTz *queued_at)
{
	int			best = -1;

	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < lmgen_shared->n_slots; i++)
	{
		LmgenSlot  *s = &lmgen_shared->slots[i];

		if (s->state == LMGEN_SLOT_QUEUED &&
			(best < 0 || s->request_id < lmgen_shared->slots[best].request_id))
			best = i;
	}
	if (best >= 0)
	{
		LmgenSlot  *s = &lmgen_shared->slots[best];

		s->state = LMGEN_SLOT_ACTIVE;
		*id = s->request_id;
		*h = s->handle;
		*queued_at = s->queued_at;
	}
	LWLockRelease(lmgen_shared->lock);
	return best;
}

/* The worker lets go of a slot (see shmem.c); true when the backend had let go first. */
static bool
LetGo(int i, uint64 id)
{
	LmgenSlot  *s = &lmgen_shared->slots[i];
	bool		cancelled = false;
	Latch	   *latch = NULL;

	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	if (s->request_id == id && s->state == LMGEN_SLOT_ACTIVE)
	{
		cancelled = s->cancel;
		s->state = cancelled ? LMGEN_SLOT_FREE : LMGEN_SLOT_DONE;
		latch = s->backend_latch;
	}
	LWLockRelease(lmgen_shared->lock);
	if (cancelled)
		ConditionVariableBroadcast(&lmgen_shared->slot_freed);
	else if (latch)
		SetLatch(latch);
	return cancelled;
}

/* Add one finished call to its model's statistics. */
static void
CountCall(const char *path, const char *name, bool failed, bool cancelled, double queue_s, double busy_s,
		  int64 prompt_tokens, int64 generated_tokens)
{
	LmgenModelStats *st;

	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	st = ModelStatsEntry(path, name);
	if (st)
	{
		st->requests++;
		st->errors += failed && !cancelled;
		st->cancelled += cancelled;
		st->queue_s += queue_s;
		st->busy_s += busy_s;
		st->prompt_tokens += prompt_tokens;
		st->generated_tokens += generated_tokens;
	}
	LWLockRelease(lmgen_shared->lock);
}

/* Seconds from t0 to now. */
static double
SecondsSince(TimestampTz t0)
{
	return (double) (GetCurrentTimestamp() - t0) / 1e6;
}

/* A model the worker batches for: its own context (KV pool lmgen.kv_cache_size) and scheduler. */
typedef struct WorkerModel
{
	LmgenModel *m;				/* the model_cache entry */
	lm_context *ctx;			/* the scheduler's context (engine, malloc) */
	lm_device_model *dm;		/* the model's weights and KV pool on the device, or NULL: the CPU */
	lm_sched   *sched;			/* the scheduler (engine, malloc) */
	lm_sched_stats seen;		/* counters already added to the shared statistics */
	struct WorkerModel *next;
} WorkerModel;

/* A request the worker holds, by slot index. */
typedef struct WorkerRequest
{
	bool		used;			/* this slot's request is held */
	uint64		id;				/* slot's request_id */
	MemoryContext cxt;			/* everything of the request */
	dsm_segment *seg;			/* its segment, attached */
	shm_mq_handle *mqh;			/* the result queue, as sender */
	LmgenCall	call;			/* the call */
	WorkerModel *wm;			/* scheduler it runs in, or NULL */
	SchedCall	sc;				/* the call there */
	LmgenModel *encoder;		/* an encoder's embed call waiting for this round's batch, or NULL */
	double		busy_s;			/* seconds of work outside a scheduler (encoder batches: its share) */
	StringInfoData result;		/* the result message, once ready */
	bool		ready;			/* result holds the whole message */
	bool		failed;			/* the call ended with an ERROR */
	TimestampTz queued_at;		/* when the backend submitted it */
	TimestampTz started;		/* when the worker took it */
	double		queue_s;		/* seconds before it ran (the scheduler's queue included) */
} WorkerRequest;

static WorkerRequest *requests;	/* lmgen_shared->n_slots of them */
static WorkerModel *worker_models = NULL;

/* Tokens per forward pass of the worker's scheduler. */
#define WORKER_STEP_TOKENS 256

/* Sequences the worker's scheduler runs at once, at most. */
#define WORKER_MAX_SEQS 64

/* On a compute device: sequences at once (lmgen.max_requests permitting), and tokens per device call. */
#define WORKER_DEVICE_MAX_SEQS 1024
#define WORKER_DEVICE_BATCH 512

/* On a compute device: prompt tokens a step takes beside its decode tokens (one per running sequence). */
#define WORKER_DEVICE_PROMPT_TOKENS 2048

/* Fail a held request with an error message (sent at the next hand-out). */
static void
FailRequest(WorkerRequest *r, int sqlstate, const char *msg)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	resetStringInfo(&r->result);
	ResultErrorText(&r->result, sqlstate, msg);
	r->ready = true;
	r->failed = true;
	MemoryContextSwitchTo(old);
}

/* model_close_hook: the model's engine objects go; so do its scheduler and the requests in it. */
static void
DropWorkerModel(LmgenModel *m)
{
	for (WorkerModel **link = &worker_models; *link; link = &(*link)->next)
	{
		WorkerModel *wm = *link;

		if (wm->m != m)
			continue;
		for (int i = 0; i < lmgen_shared->n_slots; i++)
			if (requests[i].used && requests[i].wm == wm && !requests[i].ready)
			{
				requests[i].wm = NULL;
				FailRequest(&requests[i], ERRCODE_DATA_CORRUPTED,
							psprintf("model file of model \"%s\" changed on disk during the call", m->name));
			}
		SchedCallsForget(wm->sched);
		lm_sched_free(wm->sched);
		lm_context_free(wm->ctx);
		WorkerDeviceUnload(wm->dm);
		*link = wm->next;
		pfree(wm);
		return;
	}
}

/* The worker's scheduler over model m, made on first use; ERROR when it cannot be made. */
static WorkerModel *
WorkerModelFor(LmgenModel *m)
{
	WorkerModel *wm;
	lm_context_params cp = lm_context_default_params();
	lm_sched_params sp = lm_sched_default_params();
	char		err[512];

	for (wm = worker_models; wm; wm = wm->next)
		if (wm->m == m)
			return wm;
	cp.n_ctx = m->model->cfg.n_ctx_train;
	cp.n_seq_max = Min(lmgen_shared->n_slots, WORKER_MAX_SEQS);
	cp.n_batch = WORKER_STEP_TOKENS;
	cp.n_threads = lmgen_threads;
	wm = MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerModel));
	wm->m = m;
	if (WorkerDeviceOps())
	{
		/* on the device: hundreds of sequences, the pool sized by lmgen.gpu_memory_fraction */
		int			n_seq = Min(lmgen_shared->n_slots, WORKER_DEVICE_MAX_SEQS);

		wm->dm = WorkerDeviceUpload(m->name, m->model, WORKER_DEVICE_BATCH, n_seq, cp.n_ctx);
		if (wm->dm)
		{
			cp.n_seq_max = n_seq;
			cp.n_batch = WORKER_DEVICE_BATCH;
			cp.device = WorkerDeviceOps();
			cp.device_model = wm->dm;
		}
	}
	wm->ctx = lm_context_create(m->model, &cp, err, sizeof(err));
	if (wm->ctx == NULL)
	{
		WorkerDeviceUnload(wm->dm);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not set up model \"%s\" in the background worker: %s", m->name, err)));
	}
	lm_context_set_abort(wm->ctx, QueryAbortPending, NULL);
	/* on the device the pool is the budget */
	lm_context_set_kv_budget(wm->ctx, wm->dm ? 0 : (size_t) lmgen_kv_cache_size << 20);
	sp.max_seqs = cp.n_seq_max;
	sp.share_prefixes = lmgen_worker_share_prefixes;
	/* on the device a step holds every decode token and a few device calls of prompt, so prompts never wait */
	sp.step_tokens = wm->dm ? cp.n_seq_max + WORKER_DEVICE_PROMPT_TOKENS : WORKER_STEP_TOKENS;
	wm->sched = lm_sched_create(wm->ctx, m->tok, &sp, err, sizeof(err));
	if (wm->sched == NULL)
	{
		lm_context_free(wm->ctx);
		WorkerDeviceUnload(wm->dm);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not set up model \"%s\" in the background worker: %s", m->name, err)));
	}
	wm->next = worker_models;
	worker_models = wm;
	return wm;
}

/*
 * Prepare a call: submit it to its model's scheduler, or, for an encoder,
 * queue it for this round's batch (ERROR fails the call).
 */
static void
PrepareCall(WorkerRequest *r)
{
	LmgenCall  *c = &r->call;
	LmgenModel *m;

	/* the caller's settings that shape the call */
	lmgen_context_overflow = c->context_overflow;
	lmgen_max_kv_memory = c->max_kv_memory;
	m = ModelByFile(c->model_name, c->model_path);
	if (m->model->cfg.encoder && c->kind == LMGEN_CALL_EMBED)
	{
		r->encoder = m;			/* runs with this round's other embed calls of m */
		return;
	}
	if (m->model->cfg.encoder)
	{
		/* no scheduler: run it whole (an encoder gives no text: this raises local mode's error) */
		ResultBeginOk(&r->result);
		CallExecute(m, c, &r->result);
		r->ready = true;
		return;
	}
	r->wm = WorkerModelFor(m);
	if (r->wm->dm)
		(void) SchedCallSubmit(&r->sc, c, m, r->wm->sched, lm_context_kv(r->wm->ctx)->budget,
							   "lmgen.gpu_memory_fraction");
	else
		(void) SchedCallSubmit(&r->sc, c, m, r->wm->sched, (size_t) lmgen_kv_cache_size << 20,
							   "lmgen.kv_cache_size");
}

/* Put the error being handled into a held request's result (in a PG_CATCH block). */
static void
FailWithCurrentError(WorkerRequest *r)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(r->cxt);
	edata = CopyErrorData();
	FlushErrorState();
	resetStringInfo(&r->result);
	ResultError(&r->result, edata);
	r->ready = true;
	r->failed = true;
}

/* Read (when deserialize) and prepare slot i's call; an ERROR fails only this call. */
static void
PrepareCaught(int i, bool deserialize)
{
	WorkerRequest *r = &requests[i];
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	char	   *base = dsm_segment_address(r->seg);

	lmgen_call_cancel = &lmgen_shared->slots[i].cancel;
	PG_TRY();
	{
		if (deserialize)
			r->call = CallDeserialize(base + REQUEST_PAYLOAD_OFFSET, ((RequestHeader *) base)->payload_len);
		PrepareCall(r);
	}
	PG_CATCH();
	{
		FailWithCurrentError(r);
	}
	PG_END_TRY();
	lmgen_call_cancel = NULL;
	MemoryContextSwitchTo(old);
}

/* Take a QUEUED slot's request: attach its segment, read and prepare the call. */
static void
AdmitRequest(int i, uint64 id, dsm_handle h, TimestampTz queued_at)
{
	WorkerRequest *r = &requests[i];
	char	   *base;
	shm_mq	   *mq;
	MemoryContext old;

	memset(r, 0, sizeof(*r));
	r->id = id;
	r->sc.sched_id = -1;
	r->sc.base_id = -1;
	r->queued_at = queued_at;
	r->started = GetCurrentTimestamp();
	r->seg = dsm_attach(h);
	if (r->seg == NULL)
	{
		/* the backend already went away with its segment */
		LetGo(i, id);
		return;
	}
	dsm_pin_mapping(r->seg);
	r->used = true;
	r->cxt = AllocSetContextCreate(TopMemoryContext, "lmgen worker request", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(r->cxt);
	base = dsm_segment_address(r->seg);
	mq = (shm_mq *) (base + REQUEST_QUEUE_OFFSET(((RequestHeader *) base)->payload_len));
	shm_mq_set_sender(mq, MyProc);
	r->mqh = shm_mq_attach(mq, r->seg, NULL);
	initStringInfo(&r->result);
	MemoryContextSwitchTo(old);
	PrepareCaught(i, true);
}

/* Submit again the calls deferred while another call scores their baseline. */
static void
RetryDeferred(void)
{
	for (int i = 0; i < lmgen_shared->n_slots; i++)
		if (requests[i].used && !requests[i].ready && SchedCallMayResubmit(&requests[i].sc))
			PrepareCaught(i, false);
}

/*
 * Run this round's embed calls of encoder models: those of one model in
 * one batch (each call's result, or its error, as it would be alone).
 */
static void
RunEncoderCalls(void)
{
	int			n_slots = lmgen_shared->n_slots;
	const LmgenCall **calls = palloc(sizeof(LmgenCall *) * n_slots);
	StringInfo *out = palloc(sizeof(StringInfo) * n_slots);
	ErrorData **errors = palloc(sizeof(ErrorData *) * n_slots);
	int		   *which = palloc(sizeof(int) * n_slots);

	for (int i = 0; i < n_slots; i++)
	{
		LmgenModel *m = requests[i].used ? requests[i].encoder : NULL;
		TimestampTz t0 = GetCurrentTimestamp();
		int			n = 0;

		if (m == NULL || requests[i].ready)
			continue;
		for (int j = i; j < n_slots; j++)
			if (requests[j].used && requests[j].encoder == m && !requests[j].ready)
			{
				WorkerRequest *r = &requests[j];

				r->encoder = NULL;
				r->queue_s = (double) (t0 - r->queued_at) / 1e6;
				ResultBeginOk(&r->result);
				calls[n] = &r->call;
				out[n] = &r->result;
				which[n++] = j;
			}
		PG_TRY();
		{
			EncoderEmbedCalls(m, calls, n, out, errors);
		}
		PG_CATCH();
		{
			/* not a call's own error (they are in errors[]): every call of the batch gets it */
			ErrorData  *edata = CopyErrorData();

			FlushErrorState();
			for (int k = 0; k < n; k++)
				errors[k] = edata;
		}
		PG_END_TRY();
		for (int k = 0; k < n; k++)
		{
			WorkerRequest *r = &requests[which[k]];

			r->busy_s = SecondsSince(t0) / n;
			if (errors[k])
			{
				MemoryContext old = MemoryContextSwitchTo(r->cxt);

				resetStringInfo(&r->result);
				ResultError(&r->result, errors[k]);
				r->failed = true;
				MemoryContextSwitchTo(old);
			}
			r->ready = true;
		}
	}
}

/* Admit every QUEUED slot, oldest first. */
static void
AdmitQueued(void)
{
	uint64		id;
	dsm_handle	h;
	TimestampTz queued_at;
	int			i;

	while ((i = TakeQueued(&id, &h, &queued_at)) >= 0)
	{
		CHECK_FOR_INTERRUPTS();
		AdmitRequest(i, id, h, queued_at);
	}
	RunEncoderCalls();
}

/* Let go of a held request (delivered: its whole result was sent): detach, free or mark the slot, count it. */
static void
FinishRequest(int i, bool delivered)
{
	WorkerRequest *r = &requests[i];
	bool		cancelled = !delivered;

	if (r->wm)
		SchedCallCancel(&r->sc);	/* finished requests are ignored */
	dsm_detach(r->seg);
	(void) LetGo(i, r->id);
	CountCall(r->call.model_path ? r->call.model_path : "", r->call.model_name ? r->call.model_name : "",
			  r->failed, cancelled, r->queue_s,
			  r->wm ? 0.0 : r->busy_s > 0 ? r->busy_s : SecondsSince(r->started),
			  r->sc.prompt_tokens, r->sc.generated_tokens);
	MemoryContextDelete(r->cxt);
	r->used = false;
}

/* Drop the requests whose backend stopped waiting. */
static void
DropCancelled(void)
{
	bool		cancel[LMGEN_MAX_MAX_REQUESTS];

	LWLockAcquire(lmgen_shared->lock, LW_SHARED);
	for (int i = 0; i < lmgen_shared->n_slots; i++)
		cancel[i] = requests[i].used && lmgen_shared->slots[i].cancel;
	LWLockRelease(lmgen_shared->lock);
	for (int i = 0; i < lmgen_shared->n_slots; i++)
		if (cancel[i])
			FinishRequest(i, false);
}

/* The held request with scheduler id id in wm, or NULL. */
static WorkerRequest *
RequestOf(WorkerModel *wm, int64 id)
{
	for (int i = 0; i < lmgen_shared->n_slots; i++)
		if (requests[i].used && requests[i].wm == wm && SchedCallOwns(&requests[i].sc, id))
			return &requests[i];
	return NULL;
}

/* Hand a finished scheduler result to its call; an ERROR fails only this request. */
static void
TakeResult(WorkerRequest *r, const lm_sched_result *res)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	PG_TRY();
	{
		resetStringInfo(&r->result);
		ResultBeginOk(&r->result);
		if (SchedCallTake(&r->sc, res, &r->result))
			r->ready = true;
		else
			resetStringInfo(&r->result);
	}
	PG_CATCH();
	{
		FailWithCurrentError(r);
	}
	PG_END_TRY();
	r->queue_s = (double) (r->started - r->queued_at) / 1e6 + r->sc.queue_s;
	MemoryContextSwitchTo(old);
}

/* Turn the scheduler's finished requests into result messages. */
static void
CollectFinished(WorkerModel *wm)
{
	lm_sched_result res;

	while (lm_sched_take_finished(wm->sched, &res))
	{
		WorkerRequest *r = RequestOf(wm, res.id);

		if (r && !r->ready)
			TakeResult(r, &res);
		lm_sched_release(wm->sched, res.id);
	}
}

/* Add a scheduler's new step counters to its model's statistics. */
static void
CountSteps(WorkerModel *wm, double busy_s)
{
	lm_sched_stats now;
	LmgenModelStats *st;

	lm_sched_get_stats(wm->sched, &now);
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	st = ModelStatsEntry(wm->m->path, wm->m->name);
	if (st)
	{
		st->busy_s += busy_s;
		st->steps += now.steps - wm->seen.steps;
		st->prompt_tokens_reused += now.prompt_tokens_reused - wm->seen.prompt_tokens_reused;
		st->batch_seqs += now.seqs_sum - wm->seen.seqs_sum;
		if (now.steps > wm->seen.steps)
			st->max_batch = Max(st->max_batch, now.seqs_max);
	}
	if (now.steps > wm->seen.steps)
		lmgen_shared->batch_mean = (double) (now.seqs_sum - wm->seen.seqs_sum) / (now.steps - wm->seen.steps);
	LWLockRelease(lmgen_shared->lock);
	wm->seen = now;
}

/*
 * The device turned unhealthy: fail every call still on it, drop the
 * schedulers of its models (their next calls make CPU ones) and close it.
 */
static void
DeviceLost(const char *why)
{
	WorkerModel **link = &worker_models;

	while (*link)
	{
		WorkerModel *wm = *link;

		if (!wm->dm)
		{
			link = &wm->next;
			continue;
		}
		for (int i = 0; i < lmgen_shared->n_slots; i++)
			if (requests[i].used && requests[i].wm == wm)
			{
				/* a finished call keeps its result; its scheduler goes */
				requests[i].wm = NULL;
				if (!requests[i].ready)
					FailRequest(&requests[i], ERRCODE_SYSTEM_ERROR,
								psprintf("the compute device failed during the call: %s", why));
			}
		SchedCallsForget(wm->sched);
		lm_sched_free(wm->sched);
		lm_context_free(wm->ctx);
		WorkerDeviceUnload(wm->dm);
		*link = wm->next;
		pfree(wm);
	}
	WorkerDeviceClose(why);
}

/* One step of every model with work; true when any ran. */
static bool
RunSteps(void)
{
	bool		ran = false;
	char		lost[512] = "";

	for (WorkerModel *wm = worker_models; wm; wm = wm->next)
	{
		char		err[512];
		TimestampTz t0;
		int			rc;

		if (lm_sched_n_running(wm->sched) + lm_sched_n_waiting(wm->sched) == 0)
			continue;
		t0 = GetCurrentTimestamp();
		rc = lm_sched_step(wm->sched, err, sizeof(err));
		if (rc == -2)
			CHECK_FOR_INTERRUPTS(); /* shutdown; else a cancel, handled next round */
		else if (rc == -1)
			ereport(LOG, (errmsg("lmgen worker: a step of model \"%s\" failed: %s", wm->m->name, err)));
		ran |= rc != 0;
		CountSteps(wm, SecondsSince(t0));
		CollectFinished(wm);
		if (rc == -1 && wm->dm && !WorkerDeviceHealthy())
			strlcpy(lost, err, sizeof(lost));
	}
	if (lost[0])
		DeviceLost(lost);
	return ran;
}

/* Send the ready results (without blocking); true when some are still unsent. */
static bool
SendResults(void)
{
	bool		pending = false;

	for (int i = 0; i < lmgen_shared->n_slots; i++)
	{
		WorkerRequest *r = &requests[i];
		shm_mq_result res;

		if (!r->used || !r->ready)
			continue;
		res = shm_mq_send(r->mqh, r->result.len, r->result.data, true, true);
		if (res == SHM_MQ_WOULD_BLOCK)
			pending = true;
		else
			FinishRequest(i, res == SHM_MQ_SUCCESS);
	}
	return pending;
}

/* Publish the worker's state and scheduler counts for lmgen.status(). */
static void
PublishState(void)
{
	int			running = 0,
				waiting = 0;
	int64		used = 0,
				free_blocks = 0;

	for (WorkerModel *wm = worker_models; wm; wm = wm->next)
	{
		lm_sched_stats st;

		lm_sched_get_stats(wm->sched, &st);
		running += lm_sched_n_running(wm->sched);
		waiting += lm_sched_n_waiting(wm->sched);
		if (st.kv_block_bytes > 0)
		{
			used += st.kv_in_use / st.kv_block_bytes;
			free_blocks += (st.kv_budget - Min(st.kv_budget, st.kv_in_use)) / st.kv_block_bytes;
		}
	}
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	lmgen_shared->worker_state = running + waiting > 0 ? LMGEN_WORKER_BUSY : LMGEN_WORKER_IDLE;
	lmgen_shared->models_loaded = ModelsOpenByFile();
	lmgen_shared->active = running;
	lmgen_shared->queued = waiting;
	lmgen_shared->kv_blocks_used = used;
	lmgen_shared->kv_blocks_free = free_blocks;
	LWLockRelease(lmgen_shared->lock);
}

/* True when a request the worker holds runs on model m (for ModelsCloseRetired). */
static bool
ModelInUse(LmgenModel *m)
{
	for (int i = 0; i < lmgen_shared->n_slots; i++)
		if (requests[i].used && ((requests[i].wm && requests[i].wm->m == m) || requests[i].encoder == m))
			return true;
	return false;
}

/* True when the worker holds any request. */
static bool
AnyHeld(void)
{
	for (int i = 0; i < lmgen_shared->n_slots; i++)
		if (requests[i].used)
			return true;
	return false;
}

/* Open the default model file at start, so the first call does not wait for it. */
static void
WarmDefaultModel(void)
{
	char	   *path = psprintf("%s/default.gguf", lmgen_model_dir ? lmgen_model_dir : "");
	char		real[PATH_MAX];
	MemoryContext cxt = CurrentMemoryContext;

	if (realpath(path, real) == NULL)
		return;
	PG_TRY();
	{
		ModelByFile("default", real);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(LOG, (errmsg("lmgen worker could not open the default model: %s", edata->message)));
	}
	PG_END_TRY();
}

/* Threads of the worker's engine: lmgen.worker_threads, or one per core. */
static int
WorkerThreads(void)
{
	long		cores = sysconf(_SC_NPROCESSORS_ONLN);

	if (lmgen_worker_threads > 0)
		return lmgen_worker_threads;
	return (int) Max(1, Min(cores, LMGEN_MAX_THREADS));
}

/* Entry point of the background worker. */
void
LmgenWorkerMain(Datum arg)
{
	MemoryContext call_cxt;

	pqsignal(SIGTERM, die);
	/* a cancel is for calls, which backends cancel through their slots; not for the worker */
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();
	lmgen_threads = WorkerThreads();
	/* no database: shows the worker in pg_stat_activity */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	before_shmem_exit(WorkerExit, (Datum) 0);
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	lmgen_shared->worker_pid = MyProcPid;
	lmgen_shared->worker_latch = MyLatch;
	lmgen_shared->worker_generation++;
	lmgen_shared->worker_state = LMGEN_WORKER_STARTING;
	LWLockRelease(lmgen_shared->lock);

	requests = MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerRequest) * lmgen_shared->n_slots);
	model_close_hook = DropWorkerModel;
	WorkerDeviceStart();
	call_cxt = AllocSetContextCreate(TopMemoryContext, "lmgen worker", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(call_cxt);
	WarmDefaultModel();
	PublishState();

	for (;;)
	{
		bool		ran;
		bool		unsent;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(call_cxt);
		AdmitQueued();
		RetryDeferred();
		DropCancelled();
		ran = RunSteps();
		unsent = SendResults();
		ModelsCloseRetired(ModelInUse);
		PublishState();
		if (ran)
			continue;
		if (!AnyHeld())
		{
			/* idle: no engine thread waits while nothing runs */
			for (WorkerModel *wm = worker_models; wm; wm = wm->next)
				lm_context_stop_threads(wm->ctx);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (unsent ? WL_TIMEOUT : 0),
						 unsent ? 100L : -1L, PG_WAIT_EXTENSION);
	}
}
