/*
 * call_batch.h — model calls of many rows at once.
 *
 * The model functions that can be batched (generate, summarize, classify,
 * embed) are split into "arguments into an LmgenCall" and "result bytes
 * into the SQL result" (call.h); the per-row function runs the two around
 * CallRun, and the batching plan node (LMBatch) and the array forms run
 * them around CallRunBatch, so both paths parse, validate and shape
 * results with the same code and give the same answers.
 */
#ifndef LMGEN_CALL_BATCH_H
#define LMGEN_CALL_BATCH_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"

#include "call.h"

/* A model function that can be batched. */
typedef struct LmgenBatchable
{
	const char *name;			/* its SQL name, for EXPLAIN */
	PGFunction	fn;				/* its C entry point */
	CallArgsFn	args;			/* its arguments into a call */
	CallResultFn result;		/* its SQL result from the call's result bytes */
} LmgenBatchable;

/* The batchable model function whose C entry point is fn, or NULL. */
extern const LmgenBatchable *BatchableFunction(PGFunction fn);

/*
 * Run n calls together (in the worker, or in this backend's engine as one
 * multi-sequence batch) and put call i's result bytes into out[i] (each an
 * initialised StringInfo).  Results are those CallRun would give each call
 * alone.  When calls fail, the ERROR raised is that of the first failing
 * call in array order, as running them one by one would raise it.
 */
extern void CallRunBatch(LmgenCall *calls, int n, StringInfo *out);

/*
 * The array form of a model function: each element of array argument 0
 * parsed into a call by the per-row parser args (as if it were argument 0
 * of the per-row function, the other arguments as given), the calls run
 * together (CallRunBatch).  Returns the element count n; *calls, *out and
 * *isnull (n each) hold each element's call, result bytes, and whether its
 * result is NULL (a NULL element, or args said so).  ERROR for a
 * multi-dimensional array; argument errors are raised before any call runs.
 */
extern int	CallArrayRun(FunctionCallInfo fcinfo, CallArgsFn args, LmgenCall **calls, StringInfo **out,
						 bool **isnull);

/* The array form returning a text[] of result(call, bytes) in input order (NULL where isnull). */
extern Datum CallArrayFunction(FunctionCallInfo fcinfo, CallArgsFn args, CallResultFn result);

#endif							/* LMGEN_CALL_BATCH_H */
