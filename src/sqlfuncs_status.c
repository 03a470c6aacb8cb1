/*
 * sqlfuncs_status.c — what the background worker is doing and has done:
 * lmgen.status(), the lmgen.stats view (lmgen.stats_rows()),
 * lmgen.stats_reset() and the lmgen.shared_weights view
 * (lmgen.shared_weights_rows()).  Each copies the shared fields out under
 * the shared lock (shmem.c, model_shared.c) and builds its rows after
 * releasing it.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "lmgen.h"
#include "model_shared.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(lmgen_status);
PG_FUNCTION_INFO_V1(lmgen_stats_rows);
PG_FUNCTION_INFO_V1(lmgen_stats_reset);
PG_FUNCTION_INFO_V1(lmgen_shared_weights_rows);

/* ERROR unless lmgen was preloaded (the shared block exists). */
static void
RequirePreload(void)
{
	if (lmgen_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lmgen must be loaded via shared_preload_libraries"),
				 errhint("Add lmgen to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Name of a worker state. */
static const char *
StateName(LmgenWorkerState st)
{
	switch (st)
	{
		case LMGEN_WORKER_STOPPED:
			return "stopped";
		case LMGEN_WORKER_STARTING:
			return "starting";
		case LMGEN_WORKER_IDLE:
			return "idle";
		case LMGEN_WORKER_BUSY:
			return "busy";
	}
	return "unknown";
}

/* lmgen.status(): one row about the worker. */
Datum
lmgen_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[13];
	bool		nulls[13] = {0};
	char		device[128],
				reason[256];
	int64		mem_used,
				mem_total;
	double		batch_mean;
	int			pid,
				models,
				active,
				queued,
				slots_queued = 0,
				slots_active = 0;
	int64		used,
				free_blocks;
	LmgenWorkerState st;

	RequirePreload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	LWLockAcquire(lmgen_shared->lock, LW_SHARED);
	pid = lmgen_shared->worker_pid;
	st = lmgen_shared->worker_state;
	models = lmgen_shared->models_loaded;
	used = lmgen_shared->kv_blocks_used;
	free_blocks = lmgen_shared->kv_blocks_free;
	active = lmgen_shared->active;
	queued = lmgen_shared->queued;
	strlcpy(device, lmgen_shared->device_name, sizeof(device));
	strlcpy(reason, lmgen_shared->device_reason, sizeof(reason));
	mem_used = lmgen_shared->device_mem_used;
	mem_total = lmgen_shared->device_mem_total;
	batch_mean = lmgen_shared->batch_mean;
	for (int i = 0; i < lmgen_shared->n_slots; i++)
	{
		slots_queued += lmgen_shared->slots[i].state == LMGEN_SLOT_QUEUED;
		slots_active += lmgen_shared->slots[i].state == LMGEN_SLOT_ACTIVE;
	}
	LWLockRelease(lmgen_shared->lock);

	values[0] = Int32GetDatum(pid);
	nulls[0] = pid == 0;
	values[1] = CStringGetTextDatum(StateName(st));
	values[2] = Int32GetDatum(models);
	values[3] = Int64GetDatum(used);
	values[4] = Int64GetDatum(free_blocks);
	/* the worker's own counts when it runs a scheduler, else the slots' */
	values[5] = Int32GetDatum(Max(active, slots_active - queued));
	values[6] = Int32GetDatum(slots_queued + queued);
	values[7] = Int32GetDatum(lmgen_shared->n_slots);
	/* the device (set by the worker at start; 'cpu' before that) */
	values[8] = CStringGetTextDatum(device[0] ? device : "cpu");
	values[9] = Int64GetDatum(mem_used);
	nulls[9] = mem_total == 0;
	values[10] = Int64GetDatum(mem_total);
	nulls[10] = mem_total == 0;
	values[11] = CStringGetTextDatum(reason);
	nulls[11] = reason[0] == '\0';
	values[12] = Float4GetDatum((float4) batch_mean);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* lmgen.stats_rows(): one row per model the worker has served since the last reset. */
Datum
lmgen_stats_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LmgenModelStats *copy;
	TimestampTz reset;

	RequirePreload();
	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(LmgenModelStats) * LMGEN_STATS_MODELS);
	LWLockAcquire(lmgen_shared->lock, LW_SHARED);
	memcpy(copy, lmgen_shared->stats, sizeof(LmgenModelStats) * LMGEN_STATS_MODELS);
	reset = lmgen_shared->stats_reset;
	LWLockRelease(lmgen_shared->lock);

	for (int i = 0; i < LMGEN_STATS_MODELS; i++)
	{
		LmgenModelStats *s = &copy[i];
		Datum		values[16];
		bool		nulls[16] = {0};

		if (!s->used)
			continue;
		values[0] = CStringGetTextDatum(s->name);
		values[1] = CStringGetTextDatum(s->path);
		values[2] = Int64GetDatum(s->requests);
		values[3] = Int64GetDatum(s->errors);
		values[4] = Int64GetDatum(s->cancelled);
		values[5] = Int64GetDatum(s->prompt_tokens);
		values[6] = Int64GetDatum(s->prompt_tokens_reused);
		values[7] = Int64GetDatum(s->generated_tokens);
		values[8] = Float8GetDatum(s->busy_s);
		values[9] = Float8GetDatum(s->busy_s > 0 ? s->generated_tokens / s->busy_s : 0.0);
		values[10] = Int64GetDatum(s->steps);
		values[11] = Float8GetDatum(s->steps > 0 ? (double) s->batch_seqs / s->steps : 0.0);
		values[12] = Int32GetDatum(s->max_batch);
		values[13] = Float8GetDatum(s->queue_s);
		values[14] = Float8GetDatum(s->requests > 0 ? s->queue_s / s->requests : 0.0);
		values[15] = TimestampTzGetDatum(reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* lmgen.stats_reset(): forget every model's statistics. */
Datum
lmgen_stats_reset(PG_FUNCTION_ARGS)
{
	RequirePreload();
	LWLockAcquire(lmgen_shared->lock, LW_EXCLUSIVE);
	memset(lmgen_shared->stats, 0, sizeof(lmgen_shared->stats));
	lmgen_shared->stats_reset = GetCurrentTimestamp();
	LWLockRelease(lmgen_shared->lock);
	PG_RETURN_VOID();
}

/* Name of a weights registry state. */
static const char *
WeightsStateName(SharedWeightsState st)
{
	switch (st)
	{
		case SHARED_WEIGHTS_EMPTY:
			return "empty";
		case SHARED_WEIGHTS_LOADING:
			return "loading";
		case SHARED_WEIGHTS_READY:
			return "shared";
		case SHARED_WEIGHTS_FILE:
			return "file";
	}
	return "unknown";
}

/* lmgen.shared_weights_rows(): one row per model file in the weights registry. */
Datum
lmgen_shared_weights_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SharedWeightsEntry *copy;

	RequirePreload();
	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(SharedWeightsEntry) * LMGEN_SHARED_WEIGHTS_MODELS);
	LWLockAcquire(shared_weights->lock, LW_SHARED);
	memcpy(copy, shared_weights->entries, sizeof(SharedWeightsEntry) * LMGEN_SHARED_WEIGHTS_MODELS);
	LWLockRelease(shared_weights->lock);

	for (int i = 0; i < LMGEN_SHARED_WEIGHTS_MODELS; i++)
	{
		SharedWeightsEntry *e = &copy[i];
		Datum		values[8];
		bool		nulls[8] = {0};

		if (e->state == SHARED_WEIGHTS_EMPTY)
			continue;
		values[0] = CStringGetTextDatum(e->model);
		values[1] = CStringGetTextDatum(e->path);
		values[2] = CStringGetTextDatum(WeightsStateName(e->state));
		/* bytes held in shared memory: the whole file once it is loaded */
		values[3] = Int64GetDatum(e->state == SHARED_WEIGHTS_READY ? (int64) e->id.size : 0);
		values[4] = Int32GetDatum(e->processes);
		values[5] = Int64GetDatum((int64) e->handle);
		nulls[5] = e->state != SHARED_WEIGHTS_READY;
		values[6] = TimestampTzGetDatum(e->loaded_at);
		nulls[6] = e->state == SHARED_WEIGHTS_LOADING;
		values[7] = CStringGetTextDatum(e->detail);
		nulls[7] = e->detail[0] == '\0';
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
