/*
 * shmem.c — lmgen's shared memory: the worker's control block, the request
 * slots and the statistics (struct in shmem.h).  It exists only when lmgen is
 * in shared_preload_libraries; its size is fixed at start by
 * lmgen.max_requests.
 *
 * Locking protocol.  One LWLock (LmgenShared.lock) protects every field
 * marked "lock" in shmem.h: the state of each slot, the worker's pid, latch,
 * generation and state, the counters shown by lmgen.status() and the
 * statistics.  It is held only to read or change those fields, never while
 * waiting, computing or touching a DSM segment.  The fields of a slot that
 * describe the request (latch, handle, queued_at) are written by the
 * backend before it publishes the slot as QUEUED under the lock and are read
 * by the worker only after it has seen QUEUED under the lock, so they need
 * no lock of their own.
 *
 * A slot's life.  A backend takes a FREE slot (sleeping on the condition
 * variable slot_freed while there is none), fills it and marks it QUEUED,
 * then sets the worker's latch.  The request itself (the call's arguments,
 * of any size) is in a DSM segment the backend created, with a shm_mq in
 * which the worker sends back the result (of any size) and which sets the
 * backend's latch as it fills.  The worker marks the slot ACTIVE when it
 * takes the request.  Two parties hold an active slot, and the one that lets
 * go second frees it:
 *   - the backend lets go when it has the result or stops waiting (cancel,
 *     timeout, error): a QUEUED, DONE or FAILED slot becomes FREE at once;
 *     an ACTIVE one gets cancel = true, which the worker sees at its next
 *     step: it drops the request and frees the slot;
 *   - the worker lets go when it has sent the whole result (or dropped the
 *     request): the slot becomes DONE, or FREE when cancel is set.
 * When the worker exits (terminated, FATAL), a callback marks every QUEUED
 * or ACTIVE slot FAILED with the reason and sets the backends' latches, so
 * each waiting backend raises an ERROR at once; the postmaster starts a new
 * worker, which finds only FREE, DONE or FAILED slots.  A crash of any
 * process (kill -9) makes the postmaster reinitialise all of shared memory.
 *
 * The registry of model weights in shared memory is made here too, but has
 * its own lock and protocol (model_shared.c).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "lmgen.h"
#include "model_shared.h"
#include "shmem.h"

LmgenShared *lmgen_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Bytes of the shared block. */
static Size
SharedSize(void)
{
	return add_size(offsetof(LmgenShared, slots),
					mul_size(lmgen_max_requests, sizeof(LmgenSlot)));
}

/* shmem_request_hook: reserve the block, the weights registry and their locks. */
static void
SharedRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(SharedSize());
	RequestNamedLWLockTranche("lmgen", 1);
	RequestAddinShmemSpace(SharedWeightsShmemSize());
	SharedWeightsRequestLock();
}

/* shmem_startup_hook: create or attach the block and the weights registry. */
static void
SharedStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	lmgen_shared = ShmemInitStruct("lmgen", SharedSize(), &found);
	if (!found)
	{
		memset(lmgen_shared, 0, SharedSize());
		lmgen_shared->lock = &(GetNamedLWLockTranche("lmgen"))->lock;
		ConditionVariableInit(&lmgen_shared->slot_freed);
		lmgen_shared->n_slots = lmgen_max_requests;
		lmgen_shared->next_request_id = 1;
		lmgen_shared->stats_reset = GetCurrentTimestamp();
	}
	SharedWeightsShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared-memory hooks (only while preloading). */
void
ShmemInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SharedRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SharedStartup;
}

/* Statistics entry of a model file, created on first use (lock held exclusively); NULL when full. */
LmgenModelStats *
ModelStatsEntry(const char *path, const char *name)
{
	LmgenModelStats *free_entry = NULL;

	for (int i = 0; i < LMGEN_STATS_MODELS; i++)
	{
		LmgenModelStats *s = &lmgen_shared->stats[i];

		if (s->used && strcmp(s->path, path) == 0)
		{
			strlcpy(s->name, name, sizeof(s->name));
			return s;
		}
		if (!s->used && free_entry == NULL)
			free_entry = s;
	}
	if (free_entry)
	{
		memset(free_entry, 0, sizeof(*free_entry));
		free_entry->used = true;
		strlcpy(free_entry->path, path, sizeof(free_entry->path));
		strlcpy(free_entry->name, name, sizeof(free_entry->name));
	}
	return free_entry;
}
