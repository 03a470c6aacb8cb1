/*
 * worker.c — lmgen's background worker: one engine for every session.
 *
 * With shared_preload_libraries = 'lmgen' the postmaster starts this worker
 * (and restarts it one second after it exits).  It connects to no database:
 * backends resolve model names through the registry as the calling user and
 * hand over the model's file path, and the worker keeps the models it has
 * opened keyed by file identity (model_cache.c, ModelByFile), so one copy
 * of each model serves every database.
 *
 * The loop takes QUEUED request slots (protocol in shmem.c), reads each
 * call from its DSM segment (call.c) and runs it with the same execution
 * code as local mode, under PG_TRY: an ERROR fails only that call, and its
 * SQLSTATE, message, detail and hint travel back to the backend, which
 * raises them as its own.  The result goes back through the segment's
 * shm_mq.  A backend that stops waiting (cancel, timeout, exit) marks its
 * slot cancelled; the engine's abort check sees that flag, so the call
 * stops within one forward-pass job and its memory is released.  Anything
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
#include "request.h"
#include "shmem.h"

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

/* Set the worker's state for lmgen.status(). */
static void
SetWorkerState(LmgenWorkerState st)
{
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	lmgen_shared->worker_state = st;
	lmgen_shared->models_loaded = ModelsOpenByFile();
	LWLockRelease(lmgen_shared->lock);
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

/* The worker lets go of a slot (see shmem.c); true when the backend had stopped waiting. */
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

/* Run one request to its end and send its result; cxt is reset afterwards by the caller. */
static void
ServeRequest(int i, uint64 id, dsm_handle h, TimestampTz queued_at)
{
	dsm_segment *seg = dsm_attach(h);
	char	   *base;
	shm_mq_handle *mqh;
	LmgenCall	call;
	StringInfoData res;
	TimestampTz started = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	bool		failed = false;
	bool		cancelled;
	char	   *path = "";
	char	   *name = "";

	if (seg == NULL)
	{
		/* the backend already went away with its segment */
		LetGo(i, id);
		return;
	}
	base = dsm_segment_address(seg);
	shm_mq_set_sender((shm_mq *) (base + REQUEST_QUEUE_OFFSET(((RequestHeader *) base)->payload_len)), MyProc);
	mqh = shm_mq_attach((shm_mq *) (base + REQUEST_QUEUE_OFFSET(((RequestHeader *) base)->payload_len)), seg, NULL);
	initStringInfo(&res);
	lmgen_call_cancel = &lmgen_shared->slots[i].cancel;
	PG_TRY();
	{
		LmgenModel *m;

		call = CallDeserialize(base + REQUEST_PAYLOAD_OFFSET, ((RequestHeader *) base)->payload_len);
		path = call.model_path;
		name = call.model_name;
		/* the caller's settings that shape the call */
		lmgen_context_overflow = call.context_overflow;
		lmgen_max_kv_memory = call.max_kv_memory;
		m = ModelByFile(call.model_name, call.model_path);
		ResultBeginOk(&res);
		CallExecute(m, &call, &res);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		resetStringInfo(&res);
		ResultError(&res, edata);
		failed = true;
	}
	PG_END_TRY();
	lmgen_call_cancel = NULL;
	cancelled = lmgen_shared->slots[i].cancel;
	if (!cancelled)
		(void) shm_mq_send(mqh, res.len, res.data, false, true);
	dsm_detach(seg);
	cancelled = LetGo(i, id) || cancelled;
	CountCall(path, name, failed, cancelled, (double) (started - queued_at) / 1e6, SecondsSince(started), 0, 0);
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

	call_cxt = AllocSetContextCreate(TopMemoryContext, "lmgen worker call", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(call_cxt);
	WarmDefaultModel();
	MemoryContextReset(call_cxt);

	for (;;)
	{
		uint64		id;
		dsm_handle	h;
		TimestampTz queued_at;
		int			i;

		CHECK_FOR_INTERRUPTS();
		i = TakeQueued(&id, &h, &queued_at);
		if (i < 0)
		{
			SetWorkerState(LMGEN_WORKER_IDLE);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		SetWorkerState(LMGEN_WORKER_BUSY);
		ServeRequest(i, id, h, queued_at);
		MemoryContextReset(call_cxt);
	}
}
