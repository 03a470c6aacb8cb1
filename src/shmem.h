/*
 * shmem.h — what lmgen keeps in shared memory (with shared_preload_libraries
 * = 'lmgen'): the background worker's control block, the request slots that
 * backends hand their calls to the worker through, and per-model statistics.
 * The locking protocol is described at the top of shmem.c.
 */
#ifndef LMGEN_SHMEM_H
#define LMGEN_SHMEM_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define LMGEN_DEFAULT_MAX_REQUESTS 64
#define LMGEN_MAX_MAX_REQUESTS 8192
#define LMGEN_STATS_MODELS 32		/* models with statistics at once */
#define LMGEN_ERRMSG_LEN 256		/* message of a request failed outside the worker's call */

/* Life of a request slot (see the protocol in shmem.c). */
typedef enum LmgenSlotState
{
	LMGEN_SLOT_FREE = 0,		/* nobody's */
	LMGEN_SLOT_QUEUED,			/* a backend filled it; the worker has not taken it yet */
	LMGEN_SLOT_ACTIVE,			/* the worker runs it */
	LMGEN_SLOT_DONE,			/* the worker sent the whole result and let go */
	LMGEN_SLOT_FAILED			/* the worker exited while it was queued or active */
} LmgenSlotState;

/* One call handed to the worker. */
typedef struct LmgenSlot
{
	LmgenSlotState state;		/* lock */
	bool		cancel;			/* the backend stopped waiting (cancel, error, exit); lock */
	uint64		request_id;		/* unique per request, for the worker's own tables; lock */
	int			backend_pid;	/* submitting backend; lock */
	Latch	   *backend_latch;	/* set when the result is ready or the slot fails */
	dsm_handle	handle;			/* the request's segment: payload and result queue */
	TimestampTz queued_at;		/* when it was submitted */
	char		errmsg[LMGEN_ERRMSG_LEN];	/* why it failed (state FAILED) */
} LmgenSlot;

/* Counters of one model file, kept by the worker. */
typedef struct LmgenModelStats
{
	bool		used;			/* the entry holds a model */
	char		name[NAMEDATALEN];	/* registry name of the last call */
	char		path[MAXPGPATH];	/* file */
	int64		requests;		/* calls finished (ok, failed or cancelled) */
	int64		errors;			/* calls that ended with an ERROR */
	int64		cancelled;		/* calls dropped because their backend stopped waiting */
	int64		prompt_tokens;	/* prompt tokens of the calls */
	int64		prompt_tokens_reused;	/* of which shared from a prefix another call had computed */
	int64		generated_tokens;	/* tokens generated */
	double		busy_s;			/* seconds the worker spent in this model's steps */
	double		queue_s;		/* sum of the seconds calls waited before they started */
	int64		steps;			/* forward passes (scheduler steps) */
	int64		batch_seqs;		/* sum of sequences per step */
	int			max_batch;		/* most sequences in one step */
} LmgenModelStats;

/* The worker's state, as lmgen.status() shows it. */
typedef enum LmgenWorkerState
{
	LMGEN_WORKER_STOPPED = 0,	/* not running (or restarting) */
	LMGEN_WORKER_STARTING,		/* loading the default model */
	LMGEN_WORKER_IDLE,			/* waiting for requests */
	LMGEN_WORKER_BUSY			/* running requests */
} LmgenWorkerState;

/* The shared block. */
typedef struct LmgenShared
{
	LWLock	   *lock;			/* protects the slots' state fields, the worker fields and the stats */
	ConditionVariable slot_freed;	/* signalled when a slot becomes free */
	int			worker_pid;		/* running worker, 0 when none; lock */
	Latch	   *worker_latch;	/* the worker's latch (valid while worker_pid != 0); lock */
	uint64		worker_generation;	/* bumped at every worker start and exit; lock */
	LmgenWorkerState worker_state;	/* lock */
	uint64		next_request_id;	/* lock */
	int			models_loaded;	/* models the worker has open; lock */
	int64		kv_blocks_used; /* KV pool blocks in use (worker's scheduler); lock */
	int64		kv_blocks_free; /* KV pool blocks free; lock */
	int			active;			/* requests running; lock */
	int			queued;			/* requests waiting for the worker; lock */
	char		device_name[128];	/* "cpu" or the compute device the worker uses; lock */
	char		device_reason[256]; /* why the worker runs on the CPU ("" on a device); lock */
	int64		device_mem_used;	/* bytes of device memory the worker holds; lock */
	int64		device_mem_total;	/* bytes of device memory; lock */
	double		batch_mean;		/* mean sequences per forward pass in the worker's last round; lock */
	TimestampTz stats_reset;	/* when the statistics were last reset; lock */
	int			n_slots;		/* lmgen.max_requests */
	LmgenModelStats stats[LMGEN_STATS_MODELS];	/* lock */
	LmgenSlot	slots[FLEXIBLE_ARRAY_MEMBER];	/* n_slots of them */
} LmgenShared;

/* The shared block, or NULL when lmgen was not preloaded. */
extern LmgenShared *lmgen_shared;

/* Statistics entry of a model file (created on first use; lock held exclusively), or NULL when full. */
extern LmgenModelStats *ModelStatsEntry(const char *path, const char *name);

#endif							/* LMGEN_SHMEM_H */
