/*
 * batch_exec.c — running the LMBatch node (see batch_plan.c for where it
 * goes and what its scan tuple holds).
 *
 * A batch: pull up to n rows from the child and copy them into the batch's
 * memory context; for each row, in row order, and each call site, in the
 * order the per-row plan evaluates them, build the call from the row's
 * argument columns with the function's own argument parser (so arguments
 * are validated, and an ERROR raised, exactly as the per-row function
 * would); run every call of the batch through one CallRunBatch; then emit
 * the rows in order, each with its results filled in and projected through
 * the node's target list.  A call whose parser says "NULL without a call"
 * (a NULL text) gets NULL, and so does a strict function with a NULL
 * argument.  Each call site has one FmgrInfo for the whole execution, so
 * per-call-site caches in fn_extra (classify's examples query) behave as
 * they do per row.
 *
 * The batch size is fixed at lmgen.batch_rows when the plan showed that the
 * whole output is read; otherwise it starts at 1 and doubles.  A Limit above
 * bounds the rows pulled; past that bound (which a Limit never asks for) the
 * node goes on one row at a time rather than trust it.
 */
#include "postgres.h"

#include "commands/explain.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/datum.h"
#include "utils/memutils.h"

#include "batch.h"
#include "call_batch.h"

/* One batched call site: a batchable function called with columns of the child's rows. */
typedef struct BatchSite
{
	const LmgenBatchable *fn;	/* its argument parser and result builder */
	FmgrInfo	flinfo;			/* one for the whole execution */
	FunctionCallInfo fcinfo;	/* refilled per row */
	int			nargs;
	int		   *arg_column;		/* child column of each argument (0-based), or -1: constant */
	Datum	   *const_value;	/* the constants */
	bool	   *const_null;
} BatchSite;

/* The node's execution state. */
typedef struct BatchState
{
	CustomScanState css;
	PlanState  *child;			/* P' */
	int			n_columns;		/* child columns, first in the scan tuple */
	int			n_sites;		/* batched calls, after them */
	BatchSite  *sites;
	int			batch_rows;		/* largest batch */
	bool		grow;			/* batches grow 1, 2, 4, ... */
	int64		row_limit;		/* rows a Limit above takes at most, or -1 */
	int			next_size;		/* size of the next batch when growing */
	int64		rows_pulled;	/* since the start or the last rescan */
	bool		child_done;		/* the child returned its last row */
	MemoryContext batch_cxt;	/* rows, calls and results of the current batch */
	Datum	   *values;			/* [batch_rows][n_columns + n_sites] */
	bool	   *nulls;
	int			n_rows;			/* rows in the current batch */
	int			next_row;		/* next one to emit */
	LmgenCall  *calls;			/* [batch_rows * n_sites] */
	StringInfo *results;
	int		   *call_slot;		/* index into values of each call's result */
	int64		n_batches;		/* for EXPLAIN ANALYZE */
	int64		n_batched_rows;
	int64		n_calls;
} BatchState;

static Node *BatchCreateState(CustomScan *cscan);
static void BatchBegin(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *BatchNext(CustomScanState *node);
static void BatchEnd(CustomScanState *node);
static void BatchReScan(CustomScanState *node);
static void BatchExplain(CustomScanState *node, List *ancestors, ExplainState *es);

CustomScanMethods lmgen_batch_scan_methods = {
	LMGEN_BATCH_NODE_NAME,
	BatchCreateState
};

static const CustomExecMethods batch_exec_methods = {
	.CustomName = LMGEN_BATCH_NODE_NAME,
	.BeginCustomScan = BatchBegin,
	.ExecCustomScan = BatchNext,
	.EndCustomScan = BatchEnd,
	.ReScanCustomScan = BatchReScan,
	.ExplainCustomScan = BatchExplain,
};

/* The node's state, allocated for ExecInitCustomScan. */
static Node *
BatchCreateState(CustomScan *cscan)
{
	BatchState *state = (BatchState *) newNode(sizeof(BatchState), T_CustomScanState);

	state->css.methods = &batch_exec_methods;
	return (Node *) state;
}

/* Set up a call site from its call in custom_scan_tlist. */
static void
BatchSiteInit(BatchSite *site, FuncExpr *call, int n_columns, MemoryContext cxt)
{
	ListCell   *lc;
	int			i = 0;

	fmgr_info_cxt(call->funcid, &site->flinfo, cxt);
	fmgr_info_set_expr((Node *) call, &site->flinfo);
	site->fn = BatchableFunction(site->flinfo.fn_addr);
	if (site->fn == NULL)
		elog(ERROR, "function %u is not a batchable lmgen function", call->funcid);
	site->nargs = list_length(call->args);
	site->fcinfo = MemoryContextAllocZero(cxt, SizeForFunctionCallInfo(site->nargs));
	InitFunctionCallInfoData(*site->fcinfo, &site->flinfo, site->nargs, call->inputcollid, NULL, NULL);
	site->arg_column = MemoryContextAlloc(cxt, sizeof(int) * Max(site->nargs, 1));
	site->const_value = MemoryContextAllocZero(cxt, sizeof(Datum) * Max(site->nargs, 1));
	site->const_null = MemoryContextAllocZero(cxt, sizeof(bool) * Max(site->nargs, 1));
	foreach(lc, call->args)
	{
		Node	   *arg = lfirst(lc);

		if (IsA(arg, Const))
		{
			site->arg_column[i] = -1;
			site->const_value[i] = ((Const *) arg)->constvalue;
			site->const_null[i] = ((Const *) arg)->constisnull;
		}
		else if (IsA(arg, Var) && ((Var *) arg)->varno == OUTER_VAR &&
				 ((Var *) arg)->varattno >= 1 && ((Var *) arg)->varattno <= n_columns)
			site->arg_column[i] = ((Var *) arg)->varattno - 1;
		else
			elog(ERROR, "unexpected argument of a batched call (node type %d)", (int) nodeTag(arg));
		i++;
	}
}

/* ExecInitCustomScan's part: the child, the call sites and the batch buffers. */
static void
BatchBegin(CustomScanState *node, EState *estate, int eflags)
{
	BatchState *state = (BatchState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	List	   *priv = cscan->custom_private;
	int			width;
	int			i = 0;
	ListCell   *lc;

	if (eflags & (EXEC_FLAG_BACKWARD | EXEC_FLAG_MARK))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the LMBatch plan node cannot scan backward or restore a position"),
				 errhint("Set lmgen.enable_batching to off for this query.")));
	if (list_length(priv) != BATCH_PRIVATE_COUNT || list_length(cscan->custom_plans) != 1)
		elog(ERROR, "malformed LMBatch plan node");

	state->n_columns = list_nth_int(priv, BATCH_PRIVATE_N_COLUMNS);
	state->batch_rows = list_nth_int(priv, BATCH_PRIVATE_BATCH_ROWS);
	state->grow = list_nth_int(priv, BATCH_PRIVATE_GROW) != 0;
	state->row_limit = list_nth_int(priv, BATCH_PRIVATE_ROW_LIMIT);
	state->n_sites = list_length(cscan->custom_scan_tlist) - state->n_columns;
	if (state->n_columns < 0 || state->n_sites < 1 || state->batch_rows < 1)
		elog(ERROR, "malformed LMBatch plan node");

	state->child = ExecInitNode(linitial(cscan->custom_plans), estate, eflags);
	node->custom_ps = list_make1(state->child);

	state->sites = palloc0(sizeof(BatchSite) * state->n_sites);
	foreach(lc, cscan->custom_scan_tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (tle->resno > state->n_columns)
			BatchSiteInit(&state->sites[i++], castNode(FuncExpr, tle->expr), state->n_columns,
						  estate->es_query_cxt);
	}

	width = state->n_columns + state->n_sites;
	state->values = palloc0(sizeof(Datum) * width * state->batch_rows);
	state->nulls = palloc0(sizeof(bool) * width * state->batch_rows);
	state->calls = palloc0(sizeof(LmgenCall) * state->n_sites * state->batch_rows);
	state->results = palloc0(sizeof(StringInfo) * state->n_sites * state->batch_rows);
	state->call_slot = palloc0(sizeof(int) * state->n_sites * state->batch_rows);
	state->batch_cxt = AllocSetContextCreate(estate->es_query_cxt, "LMBatch batch",
											 ALLOCSET_DEFAULT_SIZES);
	state->next_size = 1;

	/* what the Limit above would have told a Sort below, had the node not been there */
	if (state->row_limit > 0)
		ExecSetTupleBound(state->row_limit, state->child);
}

/* The number of rows the next batch takes. */
static int
NextBatchSize(BatchState *state)
{
	int			size;

	if (state->grow)
	{
		size = state->next_size;
		state->next_size = Min(state->next_size * 2, state->batch_rows);
	}
	else
		size = state->batch_rows;
	if (state->row_limit >= 0)
	{
		if (state->rows_pulled >= state->row_limit)
			return 1;			/* past the Limit's bound, which it never reads: one by one */
		size = (int) Min((int64) size, state->row_limit - state->rows_pulled);
	}
	return size;
}

/* Copy the child's current row into row r of the batch (in the batch context). */
static void
CopyChildRow(BatchState *state, TupleTableSlot *slot, int r)
{
	int			width = state->n_columns + state->n_sites;
	Datum	   *values = state->values + (size_t) r * width;
	bool	   *nulls = state->nulls + (size_t) r * width;
	TupleDesc	desc = slot->tts_tupleDescriptor;

	slot_getallattrs(slot);
	for (int c = 0; c < state->n_columns; c++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, c);

		nulls[c] = slot->tts_isnull[c];
		values[c] = nulls[c] ? (Datum) 0 : datumCopy(slot->tts_values[c], attr->attbyval, attr->attlen);
	}
}

/* Build site s's call for row r; false when its result is NULL without a call. */
static bool
BuildCall(BatchState *state, BatchSite *site, int r, LmgenCall *call)
{
	int			width = state->n_columns + state->n_sites;
	Datum	   *values = state->values + (size_t) r * width;
	bool	   *nulls = state->nulls + (size_t) r * width;
	FunctionCallInfo fcinfo = site->fcinfo;

	for (int a = 0; a < site->nargs; a++)
	{
		int			c = site->arg_column[a];

		fcinfo->args[a].value = c < 0 ? site->const_value[a] : values[c];
		fcinfo->args[a].isnull = c < 0 ? site->const_null[a] : nulls[c];
		if (fcinfo->args[a].isnull && site->flinfo.fn_strict)
			return false;
	}
	fcinfo->isnull = false;
	return site->fn->args(fcinfo, call);
}

/* Pull the next batch from the child and compute its calls. */
static void
LoadBatch(BatchState *state)
{
	int			width = state->n_columns + state->n_sites;
	int			size = NextBatchSize(state);
	int			n_calls = 0;
	MemoryContext old;

	MemoryContextReset(state->batch_cxt);
	state->n_rows = 0;
	state->next_row = 0;

	/* the child runs in the caller's context: what it keeps (a scan) outlives the batch */
	while (state->n_rows < size)
	{
		TupleTableSlot *slot;

		CHECK_FOR_INTERRUPTS();
		slot = ExecProcNode(state->child);
		if (TupIsNull(slot))
		{
			state->child_done = true;
			break;
		}
		old = MemoryContextSwitchTo(state->batch_cxt);
		CopyChildRow(state, slot, state->n_rows++);
		MemoryContextSwitchTo(old);
	}
	state->rows_pulled += state->n_rows;
	old = MemoryContextSwitchTo(state->batch_cxt);

	/* arguments in the per-row plan's order: row by row, call by call */
	for (int r = 0; r < state->n_rows; r++)
		for (int s = 0; s < state->n_sites; s++)
		{
			int			slot = r * width + state->n_columns + s;

			CHECK_FOR_INTERRUPTS();
			state->nulls[slot] = true;
			state->values[slot] = (Datum) 0;
			if (BuildCall(state, &state->sites[s], r, &state->calls[n_calls]))
			{
				state->call_slot[n_calls] = slot;
				state->results[n_calls] = makeStringInfo();
				n_calls++;
			}
		}

	if (n_calls > 0)
		CallRunBatch(state->calls, n_calls, state->results);

	for (int k = 0; k < n_calls; k++)
	{
		int			slot = state->call_slot[k];
		BatchSite  *site = &state->sites[slot % width - state->n_columns];

		state->values[slot] = site->fn->result(&state->calls[k], state->results[k]);
		state->nulls[slot] = false;
	}
	MemoryContextSwitchTo(old);

	if (state->n_rows > 0)
	{
		state->n_batches++;
		state->n_batched_rows += state->n_rows;
		state->n_calls += n_calls;
	}
}

/* The next row with its results, projected; NULL at the end. */
static TupleTableSlot *
BatchNext(CustomScanState *node)
{
	BatchState *state = (BatchState *) node;
	TupleTableSlot *scan_slot = node->ss.ss_ScanTupleSlot;
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	int			width = state->n_columns + state->n_sites;

	if (state->next_row >= state->n_rows)
	{
		if (state->child_done)
			return ExecClearTuple(node->ss.ps.ps_ResultTupleSlot);
		LoadBatch(state);
		if (state->n_rows == 0)
			return ExecClearTuple(node->ss.ps.ps_ResultTupleSlot);
	}

	ExecClearTuple(scan_slot);
	memcpy(scan_slot->tts_values, state->values + (size_t) state->next_row * width, sizeof(Datum) * width);
	memcpy(scan_slot->tts_isnull, state->nulls + (size_t) state->next_row * width, sizeof(bool) * width);
	ExecStoreVirtualTuple(scan_slot);
	state->next_row++;

	ResetExprContext(econtext);
	econtext->ecxt_scantuple = scan_slot;
	if (node->ss.ps.ps_ProjInfo == NULL)
		return scan_slot;
	return ExecProject(node->ss.ps.ps_ProjInfo);
}

/* Drop the buffered rows and start again from the child's first row. */
static void
BatchReScan(CustomScanState *node)
{
	BatchState *state = (BatchState *) node;

	MemoryContextReset(state->batch_cxt);
	state->n_rows = 0;
	state->next_row = 0;
	state->child_done = false;
	state->rows_pulled = 0;
	state->next_size = 1;
	if (node->ss.ps.chgParam != NULL)
		UpdateChangedParamSet(state->child, node->ss.ps.chgParam);
	if (state->child->chgParam == NULL)
		ExecReScan(state->child);
}

/* Shut down the child and free the batch. */
static void
BatchEnd(CustomScanState *node)
{
	BatchState *state = (BatchState *) node;

	ExecEndNode(state->child);
	MemoryContextDelete(state->batch_cxt);
}

/* EXPLAIN: the batched functions and the batch size; with ANALYZE the batches made. */
static void
BatchExplain(CustomScanState *node, List *ancestors, ExplainState *es)
{
	BatchState *state = (BatchState *) node;
	StringInfoData names;

	initStringInfo(&names);
	for (int s = 0; s < state->n_sites; s++)
		appendStringInfo(&names, "%s%s", s > 0 ? ", " : "", state->sites[s].fn->name);
	ExplainPropertyText("Batched Calls", names.data, es);
	ExplainPropertyInteger("Batch Rows", NULL, state->batch_rows, es);
	ExplainPropertyText("Batch Growth", state->grow ? "doubling from 1" : "none", es);
	if (state->row_limit >= 0)
		ExplainPropertyInteger("Row Limit", NULL, state->row_limit, es);
	if (es->analyze)
	{
		ExplainPropertyInteger("Batches", NULL, state->n_batches, es);
		ExplainPropertyInteger("Batched Rows", NULL, state->n_batched_rows, es);
		ExplainPropertyInteger("Model Calls", NULL, state->n_calls, es);
	}
}
