/*
 * request.c — the backend side of worker mode: hand a call to lmgen's
 * background worker and wait for its result.
 *
 * The call is serialized into a DSM segment of its own (so a prompt of any
 * size fits) together with a shm_mq for the result (so a result of any size
 * comes back, in pieces if need be), and a request slot in shared memory
 * points the worker at the segment (protocol: shmem.c).  The backend then
 * waits on its latch: the queue sets it as the result arrives, the worker
 * when the slot fails.  Every wakeup, and at least every
 * REQUEST_POLL_MS, runs CHECK_FOR_INTERRUPTS(), so a cancel or
 * statement_timeout ends the wait at once; the wait shows in
 * pg_stat_activity as wait_event_type "Extension".  Whatever ends the wait
 * (result, ERROR, cancel), the slot is let go on the way out: a request the
 * worker is running is marked cancelled and dropped at its next step.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "utils/timestamp.h"

#include "call.h"
#include "request.h"
#include "shmem.h"

/* Longest sleep between checks of the slot and the worker (ms). */
#define REQUEST_POLL_MS 100

/* Seconds a request waits for a worker that is not running before it fails. */
#define REQUEST_NO_WORKER_S 10

/* The slot this backend waits on (index, request id), for the exit callback; -1 when none. */
static int	waiting_slot = -1;
static bool exit_callback_registered = false;
static uint64 waiting_id = 0;

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

/* Take a free slot for the request in segment h (waiting for one), mark it QUEUED; its index. */
static int
TakeSlot(dsm_handle h, uint64 *id)
{
	for (;;)
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
			ConditionVariableCancelSleep();
			WakeWorker();
			return i;
		}
		LWLockRelease(lmgen_shared->lock);
		/* every slot is taken: wait for one (checks for interrupts) */
		ConditionVariableSleep(&lmgen_shared->slot_freed, PG_WAIT_EXTENSION);
	}
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

/* Exit callback: a backend that exits while waiting (FATAL skips PG_FINALLY) lets go of its slot. */
static void
ReleaseSlotAtExit(int code, Datum arg)
{
	if (waiting_slot >= 0 && lmgen_shared != NULL)
	{
		LWLockReleaseAll();
		ReleaseSlot(waiting_slot, waiting_id);
		waiting_slot = -1;
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

/* Wait for the result message; copies it into msg. */
static void
WaitResult(int i, uint64 id, shm_mq_handle *mqh, StringInfo msg)
{
	TimestampTz no_worker_since = 0;

	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result r = shm_mq_receive(mqh, &len, &data, true);

		if (r == SHM_MQ_SUCCESS)
		{
			appendBinaryStringInfo(msg, data, len);
			return;
		}
		CheckRequestAlive(i, id, &no_worker_since);
		if (r == SHM_MQ_DETACHED)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("lmgen background worker stopped before it sent the result"),
					 errhint("The worker is restarted automatically; run the call again.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 REQUEST_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
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

/* Run a call in the background worker; result bytes in out. */
void
RequestRun(const LmgenCall *c, StringInfo out)
{
	StringInfoData req;
	StringInfoData msg;
	dsm_segment *seg;
	char	   *base;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	uint64		id;
	int			i;

	initStringInfo(&req);
	CallSerialize(c, &req);
	seg = dsm_create(REQUEST_QUEUE_OFFSET(req.len) + LMGEN_RESULT_QUEUE_SIZE, 0);
	base = dsm_segment_address(seg);
	((RequestHeader *) base)->payload_len = req.len;
	memcpy(base + REQUEST_PAYLOAD_OFFSET, req.data, req.len);
	pfree(req.data);
	mq = shm_mq_create(base + REQUEST_QUEUE_OFFSET(((RequestHeader *) base)->payload_len),
					   LMGEN_RESULT_QUEUE_SIZE);
	shm_mq_set_receiver(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);

	initStringInfo(&msg);
	if (!exit_callback_registered)
	{
		before_shmem_exit(ReleaseSlotAtExit, (Datum) 0);
		exit_callback_registered = true;
	}
	i = TakeSlot(dsm_segment_handle(seg), &id);
	waiting_slot = i;
	waiting_id = id;
	PG_TRY();
	{
		WaitResult(i, id, mqh, &msg);
	}
	PG_FINALLY();
	{
		waiting_slot = -1;
		ReleaseSlot(i, id);
	}
	PG_END_TRY();
	dsm_detach(seg);
	DecodeResult(&msg, out);
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
