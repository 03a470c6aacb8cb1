/*
 * request.c — the backend side of worker mode: hand a call to lmgen's
 * background worker and wait for its result.
 *
 * Each call is serialized into a DSM segment of its own (so a prompt of any
 * size fits) together with a shm_mq for the result (so a result of any size
 * comes back, in pieces if need be), and a request slot in shared memory
 * points the worker at the segment (protocol: shmem.c).  A batch of calls
 * (RequestRunBatch; one call is a batch of one) hands over as many calls as
 * there are free slots before waiting, then waits on its latch: the queue
 * sets it as a result arrives, the worker when a slot fails, and any
 * backend that frees a slot (this backend is on the slot_freed wait list
 * while calls wait for slots).  Each result read frees its slot for the
 * next call, so a batch larger than lmgen.max_requests, or one that meets
 * other backends' calls, goes through in turns and never deadlocks: the
 * worker never waits for a backend, and a backend waiting for a slot
 * still reads its own results.  A call's segment counts against
 * PostgreSQL's limit on dynamic shared memory segments (64 + 5 per backend
 * slot, for the whole server): when none can be made, the call waits as
 * for a slot, while the calls in flight (this backend's and others') end
 * and give theirs back, so a large lmgen.max_requests with large batches
 * is slower, never an ERROR.  Every wakeup, and at least every
 * REQUEST_POLL_MS, runs CHECK_FOR_INTERRUPTS(), so a cancel or
 * statement_timeout ends the wait at once; the wait shows in
 * pg_stat_activity as wait_event_type "Extension".  Whatever ends the wait
 * (results, ERROR, cancel, backend exit), every slot is let go on the way
 * out: a request the worker is running is marked cancelled and dropped at
 * its next step.  The calls after a failed one are dropped the same way
 * as soon as its failure arrives: only the first failing call's error is
 * raised, as running the calls one by one would.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "call.h"
#include "request.h"
#include "shmem.h"

/* Longest sleep between checks of the slot and the worker (ms). */
#define REQUEST_POLL_MS 100

/* Seconds a request waits for a worker that is not running before it fails. */
#define REQUEST_NO_WORKER_S 10

/* The slots this backend holds (index, request id), for the exit callback. */
static int *held_slot = NULL;
static uint64 *held_id = NULL;
static int	n_held = 0;
static bool exit_callback_registered = false;

/* Set the worker's latch, if a worker runs. */
static void
WakeWorker(void)
{
	Latch	   *latch;

	LWLockAcquire(lmgen_shared->lock, LW_SHARED);
	latch = lmgen_shared->worker_pid != 0 ? lmgen_shared->worker_latch : NULL;
	LWLockRelease(lmgen_shared->lock);
	if (latch)
		SetLatch(latch);
}

/* Take a free slot for the request in segment h and mark it QUEUED; its index, or -1 when all are taken. */
static int
TryTakeSlot(dsm_handle h, uint64 *id)
{
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < lmgen_shared->n_slots; i++)
	{
		LmgenSlot  *s = &lmgen_shared->slots[i];

		if (s->state != LMGEN_SLOT_FREE)
			continue;
		s->backend_pid = MyProcPid;
		s->backend_latch = MyLatch;
		s->handle = h;
		s->queued_at = GetCurrentTimestamp();
		s->cancel = false;
		s->errmsg[0] = '\0';
		s->request_id = *id = lmgen_shared->next_request_id++;
		s->state = LMGEN_SLOT_QUEUED;
		LWLockRelease(lmgen_shared->lock);
		held_slot[n_held] = i;
		held_id[n_held++] = *id;
		WakeWorker();
		return i;
	}
	LWLockRelease(lmgen_shared->lock);
	return -1;
}

/* Let go of the slot (see shmem.c): free it now, or mark it cancelled for the worker. */
static void
ReleaseSlot(int i, uint64 id)
{
	LmgenSlot  *s = &lmgen_shared->slots[i];
	bool		freed = false;
	bool		cancelled = false;

	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	if (s->request_id == id)
	{
		if (s->state == LMGEN_SLOT_ACTIVE)
			s->cancel = cancelled = true;
		else if (s->state != LMGEN_SLOT_FREE)
		{
			s->state = LMGEN_SLOT_FREE;
			freed = true;
		}
	}
	LWLockRelease(lmgen_shared->lock);
	if (freed)
		ConditionVariableBroadcast(&lmgen_shared->slot_freed);
	if (cancelled)
		WakeWorker();
}

/* Let go of held slot h (index into held_slot). */
static void
ReleaseHeld(int h)
{
	ReleaseSlot(held_slot[h], held_id[h]);
	held_slot[h] = held_slot[--n_held];
	held_id[h] = held_id[n_held];
}

/* Let go of every slot this backend holds. */
static void
ReleaseAllHeld(void)
{
	while (n_held > 0)
		ReleaseHeld(n_held - 1);
}

/* Exit callback: a backend that exits while waiting (FATAL skips PG_FINALLY) lets go of its slots. */
static void
ReleaseSlotAtExit(int code, Datum arg)
{
	if (n_held > 0 && lmgen_shared != NULL)
	{
		LWLockReleaseAll();
		ReleaseAllHeld();
	}
}

/* ERROR unless the request may still be answered: slot failed, or no worker for too long. */
static void
CheckRequestAlive(int i, uint64 id, TimestampTz *no_worker_since)
{
	LmgenSlot  *s = &lmgen_shared->slots[i];
	LmgenSlotState state;
	char		msg[LMGEN_ERRMSG_LEN];
	bool		worker;

	LWLockAcquire(lmgen_shared->lock, LW_SHARED);
	state = s->request_id == id ? s->state : LMGEN_SLOT_FAILED;
	strlcpy(msg, s->request_id == id ? s->errmsg : "request slot was reused", sizeof(msg));
	worker = lmgen_shared->worker_pid != 0;
	LWLockRelease(lmgen_shared->lock);

	if (state == LMGEN_SLOT_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("lmgen background worker failed the call: %s", msg),
				 errhint("The worker is restarted automatically; run the call again.")));
	if (worker)
		*no_worker_since = 0;
	else if (*no_worker_since == 0)
		*no_worker_since = GetCurrentTimestamp();
	else if (TimestampDifferenceExceeds(*no_worker_since, GetCurrentTimestamp(), REQUEST_NO_WORKER_S * 1000))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lmgen background worker is not running"),
				 errdetail("No worker took the call within %d seconds.", REQUEST_NO_WORKER_S),
				 errhint("Check the server log, or SET lmgen.execution = 'local' to run calls in this session.")));
}

/* A length-prefixed string from a result message (NULL for -1); ERROR when short. */
static const char *
ResultString(const char **p, const char *end)
{
	int64		n;
	char	   *s;

	if (end - *p < (ptrdiff_t) sizeof(n))
		elog(ERROR, "malformed lmgen result");
	memcpy(&n, *p, sizeof(n));
	*p += sizeof(n);
	if (n < 0)
		return NULL;
	if (end - *p < n)
		elog(ERROR, "malformed lmgen result");
	s = pnstrdup(*p, n);
	*p += n;
	return s;
}

/* Decode a result message into out, or raise the error it carries. */
static void
DecodeResult(const StringInfo msg, StringInfo out)
{
	const char *p = msg->data;
	const char *end = msg->data + msg->len;
	int32		status;
	int32		sqlstate;
	const char *message,
			   *detail,
			   *hint;

	if (msg->len < (int) sizeof(status))
		elog(ERROR, "malformed lmgen result");
	memcpy(&status, p, sizeof(status));
	p += sizeof(status);
	if (status == 0)
	{
		appendBinaryStringInfo(out, p, end - p);
		return;
	}
	if (end - p < (ptrdiff_t) sizeof(sqlstate))
		elog(ERROR, "malformed lmgen result");
	memcpy(&sqlstate, p, sizeof(sqlstate));
	p += sizeof(sqlstate);
	message = ResultString(&p, end);
	detail = ResultString(&p, end);
	hint = ResultString(&p, end);
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg_internal("%s", message ? message : "lmgen background worker failed the call"),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/* One call of a batch handed to the worker. */
typedef struct InFlight
{
	int			call;			/* its index in the batch */
	int			slot;			/* its slot */
	uint64		id;				/* its request id */
	dsm_segment *seg;			/* its segment */
	shm_mq_handle *mqh;			/* its result queue, as receiver */
	TimestampTz no_worker_since;	/* since when no worker runs (0: one runs) */
} InFlight;

/*
 * A call's segment: the serialized call and an empty result queue this
 * backend receives from; NULL while the server has no segment to spare.
 */
static dsm_segment *
RequestSegment(const LmgenCall *c, shm_mq_handle **mqh)
{
	StringInfoData req;
	dsm_segment *seg;
	char	   *base;
	shm_mq	   *mq;

	initStringInfo(&req);
	CallSerialize(c, &req);
	seg = dsm_create(REQUEST_QUEUE_OFFSET(req.len) + LMGEN_RESULT_QUEUE_SIZE, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		pfree(req.data);
		return NULL;
	}
	base = dsm_segment_address(seg);
	((RequestHeader *) base)->payload_len = req.len;
	memcpy(base + REQUEST_PAYLOAD_OFFSET, req.data, req.len);
	pfree(req.data);
	mq = shm_mq_create(base + REQUEST_QUEUE_OFFSET(((RequestHeader *) base)->payload_len),
					   LMGEN_RESULT_QUEUE_SIZE);
	shm_mq_set_receiver(mq, MyProc);
	*mqh = shm_mq_attach(mq, seg, NULL);
	return seg;
}

/* True when a result message says the call failed. */
static bool
ResultFailed(const StringInfo msg)
{
	int32		status;

	if (msg->len < (int) sizeof(status))
		return true;			/* malformed: DecodeResult raises it */
	memcpy(&status, msg->data, sizeof(status));
	return status != 0;
}

/* A batch being run in the worker. */
typedef struct WorkerBatch
{
	const LmgenCall *calls;		/* the calls */
	int			n;				/* count */
	StringInfo *msg;			/* (n) each call's result message, once in (NULL before) */
	InFlight   *fly;			/* the calls handed over and not answered */
	int			n_fly;
	int			next;			/* the next call to hand over */
	int			limit;			/* calls from here on need not run (the first failed call + 1) */
	dsm_segment *spare;			/* the next call's segment, made while no slot was free */
	shm_mq_handle *spare_mqh;
} WorkerBatch;

/* Stop waiting for in-flight call f: let go of its slot (the worker drops it) and its segment. */
static void
DropInFlight(WorkerBatch *wb, int f)
{
	InFlight   *x = &wb->fly[f];

	for (int h = 0; h < n_held; h++)
		if (held_slot[h] == x->slot && held_id[h] == x->id)
		{
			ReleaseHeld(h);
			break;
		}
	dsm_detach(x->seg);
	wb->fly[f] = wb->fly[--wb->n_fly];
}

/* Hand calls to the worker while slots are free; true when one was handed over. */
static bool
HandOver(WorkerBatch *wb)
{
	bool		any = false;

	while (wb->next < wb->limit)
	{
		InFlight   *x;
		uint64		id;
		int			i;

		if (wb->spare == NULL)
			wb->spare = RequestSegment(&wb->calls[wb->next], &wb->spare_mqh);
		if (wb->spare == NULL)
			return any;			/* no segment to spare: wait as for a slot */
		i = TryTakeSlot(dsm_segment_handle(wb->spare), &id);
		if (i < 0)
			return any;
		x = &wb->fly[wb->n_fly];
		x->call = wb->next++;
		x->slot = i;
		x->id = id;
		x->seg = wb->spare;
		x->mqh = wb->spare_mqh;
		x->no_worker_since = 0;
		wb->spare = NULL;
		wb->n_fly++;
		any = true;
	}
	return any;
}

/* Read the results that are in; true when one came. */
static bool
ReadResults(WorkerBatch *wb)
{
	bool		any = false;

	for (int f = 0; f < wb->n_fly;)
	{
		InFlight   *x = &wb->fly[f];
		Size		len;
		void	   *data;
		shm_mq_result r = shm_mq_receive(x->mqh, &len, &data, true);
		int			call = x->call;

		if (r == SHM_MQ_SUCCESS)
		{
			wb->msg[call] = makeStringInfo();
			appendBinaryStringInfo(wb->msg[call], data, len);
			DropInFlight(wb, f);
			any = true;
			if (ResultFailed(wb->msg[call]) && call < wb->limit)
			{
				/* the calls after a failed one need not run: stop them */
				wb->limit = call + 1;
				for (int g = 0; g < wb->n_fly;)
					if (wb->fly[g].call > call)
						DropInFlight(wb, g);
					else
						g++;
				f = 0;
			}
			continue;
		}
		CheckRequestAlive(x->slot, x->id, &x->no_worker_since);
		if (r == SHM_MQ_DETACHED)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("lmgen background worker stopped before it sent the result"),
					 errhint("The worker is restarted automatically; run the call again.")));
		f++;
	}
	return any;
}

/*
 * Hand the calls to the worker and wait for their results: as many at once
 * as there are free slots (each call has a segment and a slot of its own),
 * the rest as slots come free, ours or others'; while waiting for a slot
 * this backend is on the slot_freed condition variable's wait list, so a
 * slot freed anywhere sets its latch, as a result does.  Whatever ends the
 * wait, every slot is let go on the way out.
 */
static void
RunInWorker(WorkerBatch *wb)
{
	for (;;)
	{
		bool		progress;

		/* on the wait list before looking for slots, so that no free slot is missed */
		if (wb->next < wb->limit)
			ConditionVariablePrepareToSleep(&lmgen_shared->slot_freed);
		progress = HandOver(wb);
		progress |= ReadResults(wb);
		if (wb->n_fly == 0 && wb->next >= wb->limit)
			break;
		if (progress)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 REQUEST_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Run n calls in the background worker; call i's result bytes in out[i], or the first failing call's ERROR. */
void
RequestRunBatch(const LmgenCall *calls, int n, StringInfo *out)
{
	WorkerBatch wb;

	memset(&wb, 0, sizeof(wb));
	wb.calls = calls;
	wb.n = n;
	wb.msg = palloc0(sizeof(StringInfo) * n);
	wb.fly = palloc(sizeof(InFlight) * Min(n, lmgen_shared->n_slots));
	wb.limit = n;
	if (held_slot == NULL)
	{
		held_slot = MemoryContextAlloc(TopMemoryContext, sizeof(int) * lmgen_shared->n_slots);
		held_id = MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * lmgen_shared->n_slots);
	}
	if (!exit_callback_registered)
	{
		before_shmem_exit(ReleaseSlotAtExit, (Datum) 0);
		exit_callback_registered = true;
	}
	PG_TRY();
	{
		RunInWorker(&wb);
	}
	PG_FINALLY();
	{
		ConditionVariableCancelSleep();
		while (wb.n_fly > 0)
			DropInFlight(&wb, wb.n_fly - 1);
		ReleaseAllHeld();
	}
	PG_END_TRY();
	if (wb.spare)
		dsm_detach(wb.spare);
	/* results in call order: the first failed call raises its error */
	for (int i = 0; i < wb.limit; i++)
		DecodeResult(wb.msg[i], out[i]);
}

/* Run a call in the background worker; result bytes in out. */
void
RequestRun(const LmgenCall *c, StringInfo out)
{
	RequestRunBatch(c, 1, &out);
}

/* Start a success message. */
void
ResultBeginOk(StringInfo buf)
{
	int32		status = 0;

	appendBinaryStringInfo(buf, (const char *) &status, sizeof(status));
}

/* Append a length-prefixed string (NULL as -1). */
static void
PutResultString(StringInfo buf, const char *s)
{
	int64		n = s ? (int64) strlen(s) : -1;

	appendBinaryStringInfo(buf, (const char *) &n, sizeof(n));
	if (n > 0)
		appendBinaryStringInfo(buf, s, n);
}

/* A failure message carrying an error's SQLSTATE, message, detail and hint. */
void
ResultError(StringInfo buf, const ErrorData *edata)
{
	int32		status = 1;
	int32		sqlstate = edata->sqlerrcode;

	appendBinaryStringInfo(buf, (const char *) &status, sizeof(status));
	appendBinaryStringInfo(buf, (const char *) &sqlstate, sizeof(sqlstate));
	PutResultString(buf, edata->message);
	PutResultString(buf, edata->detail);
	PutResultString(buf, edata->hint);
}

/* A failure message with a plain message. */
void
ResultErrorText(StringInfo buf, int sqlstate, const char *msg)
{
	ErrorData	e;

	memset(&e, 0, sizeof(e));
	e.sqlerrcode = sqlstate;
	e.message = (char *) msg;
	ResultError(buf, &e);
}
