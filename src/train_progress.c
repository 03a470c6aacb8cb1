/*
 * train_progress.c — lmgen.training_progress: what each backend's
 * train_classifier() is doing, visible to every session.
 *
 * With shared_preload_libraries = 'lmgen' this file asks for a small shared
 * array of its own (one slot per backend, MaxBackends of them) through
 * shmem_request_hook / shmem_startup_hook, chained to any hooks installed
 * before.  A backend only writes its own slot (index MyBackendId - 1) and
 * readers copy slots out; each slot's spinlock protects its fields, held only
 * for the copy.  Without the preload there is no shared array: training
 * still sends its NOTICEs, and the view shows no rows.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "lmgen.h"
#include "train_sql.h"

/* One backend's training, as others see it. */
typedef struct TrainProgressSlot
{
	slock_t		mutex;			/* protects the fields below */
	int			pid;			/* training backend, 0 when the slot is free */
	Oid			userid;			/* who trains */
	char		name[NAMEDATALEN];	/* classifier */
	char		phase[32];		/* reading rows, preparing features, training, scoring, storing */
	int64		rows_read;		/* rows the query returned so far */
	int64		rows_skipped;	/* of which NULL text or label */
	int			epoch;			/* epochs finished */
	int			epochs;			/* epochs asked for */
	double		loss;			/* last epoch's training loss */
	double		val_accuracy;	/* last epoch's validation accuracy (NaN when none) */
	TimestampTz started;		/* when training began */
	TimestampTz updated;		/* last change */
} TrainProgressSlot;

static TrainProgressSlot *progress_slots = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Bytes of the shared array. */
static Size
TrainProgressShmemSize(void)
{
	return mul_size(MaxBackends, sizeof(TrainProgressSlot));
}

/* shmem_request_hook: reserve the array. */
static void
TrainProgressShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(TrainProgressShmemSize());
}

/* shmem_startup_hook: create or attach the array. */
static void
TrainProgressShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	progress_slots = ShmemInitStruct("lmgen training progress", TrainProgressShmemSize(), &found);
	if (!found)
	{
		memset(progress_slots, 0, TrainProgressShmemSize());
		for (int i = 0; i < MaxBackends; i++)
			SpinLockInit(&progress_slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared-memory hooks (only while preloading). */
void
TrainInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = TrainProgressShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = TrainProgressShmemStartup;
}

/* This backend's slot, or NULL without the shared array. */
static TrainProgressSlot *
MySlot(void)
{
	if (progress_slots == NULL || MyBackendId < 1 || MyBackendId > MaxBackends)
		return NULL;
	return &progress_slots[MyBackendId - 1];
}

/* Start showing this backend's training of `name`. */
void
TrainProgressBegin(const char *name, int epochs)
{
	TrainProgressSlot *s = MySlot();

	if (s == NULL)
		return;
	SpinLockAcquire(&s->mutex);
	s->pid = MyProcPid;
	s->userid = GetUserId();
	strlcpy(s->name, name, sizeof(s->name));
	strlcpy(s->phase, "starting", sizeof(s->phase));
	s->rows_read = s->rows_skipped = 0;
	s->epoch = 0;
	s->epochs = epochs;
	s->loss = s->val_accuracy = NAN;
	s->started = s->updated = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
}

/* Set the phase. */
void
TrainProgressPhase(const char *phase)
{
	TrainProgressSlot *s = MySlot();

	if (s == NULL || s->pid != MyProcPid)
		return;
	SpinLockAcquire(&s->mutex);
	strlcpy(s->phase, phase, sizeof(s->phase));
	s->updated = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
}

/* Set the row counts. */
void
TrainProgressRows(int64 read, int64 skipped)
{
	TrainProgressSlot *s = MySlot();

	if (s == NULL || s->pid != MyProcPid)
		return;
	SpinLockAcquire(&s->mutex);
	s->rows_read = read;
	s->rows_skipped = skipped;
	s->updated = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
}

/* Record a finished epoch. */
void
TrainProgressEpoch(int epoch, double loss, double val_accuracy)
{
	TrainProgressSlot *s = MySlot();

	if (s == NULL || s->pid != MyProcPid)
		return;
	SpinLockAcquire(&s->mutex);
	s->epoch = epoch;
	s->loss = loss;
	s->val_accuracy = val_accuracy;
	s->updated = GetCurrentTimestamp();
	SpinLockRelease(&s->mutex);
}

/* Stop showing this backend's training. */
void
TrainProgressEnd(void)
{
	TrainProgressSlot *s = MySlot();

	if (s == NULL)
		return;
	SpinLockAcquire(&s->mutex);
	s->pid = 0;
	SpinLockRelease(&s->mutex);
}

PG_FUNCTION_INFO_V1(lmgen_training_progress);

/* lmgen.training_progress_rows() RETURNS SETOF record: one row per training backend. */
Datum
lmgen_training_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (progress_slots == NULL)
		return (Datum) 0;
	for (int i = 0; i < MaxBackends; i++)
	{
		TrainProgressSlot c;
		Datum		values[11];
		bool		nulls[11] = {0};

		SpinLockAcquire(&progress_slots[i].mutex);
		memcpy(&c, &progress_slots[i], sizeof(c));
		SpinLockRelease(&progress_slots[i].mutex);
		if (c.pid == 0)
			continue;
		values[0] = Int32GetDatum(c.pid);
		values[1] = ObjectIdGetDatum(c.userid);
		values[2] = CStringGetTextDatum(c.name);
		values[3] = CStringGetTextDatum(c.phase);
		values[4] = Int64GetDatum(c.rows_read);
		values[5] = Int64GetDatum(c.rows_skipped);
		values[6] = Int32GetDatum(c.epoch);
		values[7] = Int32GetDatum(c.epochs);
		values[8] = Float8GetDatum(c.loss);
		nulls[8] = isnan(c.loss);
		values[9] = Float8GetDatum(c.val_accuracy);
		nulls[9] = isnan(c.val_accuracy);
		values[10] = TimestampTzGetDatum(c.started);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
