/*
 * batch_plan.c — inserting the LMBatch node into finished plans.
 *
 * The executor evaluates a target list one row at a time, so a query such
 * as SELECT summarize(body) FROM articles would hand the model one sequence
 * at a time.  A planner_hook post-processes the PlannedStmt that
 * standard_planner made: it walks the plan tree (and every subplan) and,
 * above each plan node P whose target list calls a batchable model function
 * (call_batch.h: generate, summarize, classify, embed), puts a CustomScan
 * "LMBatch" whose only child is P' = P with a new target list.
 *
 * Each of P's target expressions is split in two.  A batchable call whose
 * arguments contain no batchable call becomes a reference to a result
 * column of the node; a maximal subtree without batchable calls becomes a
 * column that P' computes; what is left (the skeleton: upper(...), ||, ...)
 * is evaluated by the node's projection over its scan tuple, which is P'
 * columns followed by one column per batched call.  The split only descends
 * through nodes that evaluate all of their arguments (function and operator
 * calls, casts, NOT, IS NULL, ARRAY[], ROW()): under CASE, COALESCE,
 * AND/OR, NULLIF, aggregates, window functions and subplans a call may not
 * run for every row, so such a subtree stays whole in P' and keeps the
 * per-row path.  Since P' computes each argument exactly as P did, once per
 * row and in row order (volatile subtrees are never shared), and the node
 * runs each call's own argument parser and result builder, the answers are
 * those of the per-row plan.
 *
 * The node has scanrelid 0 and custom_scan_tlist = the scan tuple: P'
 * columns as Var(OUTER_VAR, k) and the batched calls with their arguments
 * as such Vars (or constants); its target list is the skeletons over
 * Var(INDEX_VAR, k), with P's resnos, names and junk flags, so that P's
 * parent sees the same columns.  EXPLAIN deparses INDEX_VAR through
 * custom_scan_tlist and OUTER_VAR through the plan's lefttree, so lefttree
 * also points at P'; nothing executes or walks it there (the executor,
 * EXPLAIN and the parallel machinery use custom_plans / custom_ps).
 *
 * How many rows a batch takes: no tuple bound reaches a custom node, so the
 * walk carries down how the output of each node is consumed.  Where all of
 * it is read (a plain top-level statement, below Sort, Hash, hashed or plain
 * Agg, ModifyTable) batches are full from the start; below a Limit with a
 * constant count the node never evaluates more rows than the Limit takes
 * (and passes that bound to its child, as the Limit would have done for a
 * Sort below); where reading may stop early (cursors, subplans, EXISTS,
 * semi/anti and merge joins, non-constant limits) batches grow 1, 2, 4, ...
 * up to lmgen.batch_rows, so that a query that stops after k rows evaluates
 * fewer than 2k + batch_rows calls.
 *
 * Not rewritten: a Result without a child (one row; PL/pgSQL's simple
 * expressions use that shape), ProjectSet, WindowAgg, ModifyTable's own
 * lists, foreign and custom scans, quals, and the inner side of a merge
 * join (which needs mark/restore).  A scrollable cursor gets a Material on
 * top (the node does not scan backward); so does a cursor declared without
 * SCROLL / NO SCROLL whose plan could scan backward before, so that it
 * stays implicitly scrollable.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "batch.h"
#include "call_batch.h"

/* Placeholder varno of a batched call's result before the scan tuple's layout is known. */
#define BATCH_CALL_VAR (-100)

/* How the output of a plan node is read by the plan above it. */
typedef struct BatchReading
{
	bool		all;			/* read to the end (unless limit says less) */
	int64		limit;			/* at most this many rows are read, or -1 */
	bool		mark;			/* the node must support mark/restore (merge join inner) */
} BatchReading;

/* The state of one rewrite of a PlannedStmt. */
typedef struct BatchRewrite
{
	int			next_plan_node_id;	/* for the nodes added */
	int			batch_rows;		/* lmgen.batch_rows */
	bool		changed;		/* a node was added */
} BatchRewrite;

/* The split of one plan node's target list. */
typedef struct BatchSplit
{
	List	   *columns;		/* P' target list */
	List	   *calls;			/* the batched calls (FuncExpr over Var(OUTER_VAR)) */
} BatchSplit;

/* An entry of the function cache: whether a function is batchable. */
typedef struct BatchFunctionEntry
{
	Oid			funcid;			/* key */
	bool		batchable;		/* one of ours */
} BatchFunctionEntry;

static planner_hook_type prev_planner_hook = NULL;
static HTAB *batch_functions = NULL;

static Plan *RewritePlan(Plan *plan, BatchReading reading, BatchRewrite *rw);

/* Forget the cached answers when pg_proc changes. */
static void
BatchFunctionsInvalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	if (batch_functions != NULL)
	{
		hash_destroy(batch_functions);
		batch_functions = NULL;
	}
}

/* Whether funcid is one of lmgen's batchable model functions (cached per backend). */
static bool
IsBatchableFunction(Oid funcid)
{
	BatchFunctionEntry *entry;
	bool		found;
	HeapTuple	tuple;

	if (funcid < FirstNormalObjectId)
		return false;			/* built in */
	if (batch_functions == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(BatchFunctionEntry);
		ctl.hcxt = CacheMemoryContext;
		batch_functions = hash_create("lmgen batchable functions", 64, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(batch_functions, &funcid, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->batchable;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tuple))
		return false;
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tuple);
		bool		batchable = false;

		if (proc->prolang == ClanguageId && !proc->proretset)
		{
			FmgrInfo	flinfo;

			fmgr_info(funcid, &flinfo);
			batchable = BatchableFunction(flinfo.fn_addr) != NULL;
		}
		ReleaseSysCache(tuple);
		/* the table may have been flushed by the lookups above */
		if (batch_functions != NULL)
		{
			entry = hash_search(batch_functions, &funcid, HASH_ENTER, &found);
			entry->batchable = batchable;
		}
		return batchable;
	}
}

/* Walker: true when the expression calls a batchable function anywhere. */
static bool
ContainsBatchableWalker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && IsBatchableFunction(((FuncExpr *) node)->funcid))
		return true;
	return expression_tree_walker(node, ContainsBatchableWalker, context);
}

/* True when the expression calls a batchable function anywhere. */
static bool
ContainsBatchable(Node *node)
{
	return ContainsBatchableWalker(node, NULL);
}

/* True for expression nodes that always evaluate all their arguments (the split may descend). */
static bool
EvaluatesAllArguments(Node *node)
{
	switch (nodeTag(node))
	{
		case T_FuncExpr:
			return !((FuncExpr *) node)->funcretset;
		case T_OpExpr:
		case T_DistinctExpr:
			return !((OpExpr *) node)->opretset;
		case T_ScalarArrayOpExpr:
		case T_RelabelType:
		case T_CoerceViaIO:
		case T_CollateExpr:
		case T_ArrayExpr:
		case T_RowExpr:
		case T_FieldSelect:
		case T_NullTest:
		case T_BooleanTest:
			return true;
		case T_BoolExpr:
			return ((BoolExpr *) node)->boolop == NOT_EXPR;
		default:
			return false;
	}
}

/* Var(varno, attno) of the type of expr. */
static Var *
VarOf(int varno, int attno, Node *expr)
{
	return makeVar(varno, attno, exprType(expr), exprTypmod(expr), exprCollation(expr), 0);
}

/* The P' column computing expr (shared with an equal non-volatile one), 1-based. */
static int
ChildColumn(Node *expr, BatchSplit *split)
{
	ListCell   *lc;
	TargetEntry *tle;

	if (!contain_volatile_functions(expr))
		foreach(lc, split->columns)
		{
			tle = lfirst_node(TargetEntry, lc);
			if (equal(tle->expr, expr))
				return tle->resno;
		}
	tle = makeTargetEntry((Expr *) copyObject(expr), list_length(split->columns) + 1, NULL, false);
	split->columns = lappend(split->columns, tle);
	return tle->resno;
}

/*
 * Mutator: split expr into the skeleton the node evaluates (returned; P'
 * columns as Var(INDEX_VAR, k), batched calls as Var(BATCH_CALL_VAR, i))
 * and the P' columns and calls collected in split.
 */
static Node *
SplitExpression(Node *node, BatchSplit *split)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, List))
		return expression_tree_mutator(node, SplitExpression, split);
	if (IsA(node, Const))
		return (Node *) copyObject(node);
	if (!ContainsBatchable(node))
		return (Node *) VarOf(INDEX_VAR, ChildColumn(node, split), node);
	if (IsA(node, FuncExpr) && IsBatchableFunction(((FuncExpr *) node)->funcid) &&
		!((FuncExpr *) node)->funcretset && !ContainsBatchable((Node *) ((FuncExpr *) node)->args))
	{
		FuncExpr   *call = (FuncExpr *) copyObject(node);
		ListCell   *lc;

		foreach(lc, call->args)
		{
			Node	   *arg = lfirst(lc);

			if (!IsA(arg, Const))
				lfirst(lc) = VarOf(OUTER_VAR, ChildColumn(arg, split), arg);
		}
		split->calls = lappend(split->calls, call);
		return (Node *) VarOf(BATCH_CALL_VAR, list_length(split->calls), node);
	}
	if (EvaluatesAllArguments(node))
		return expression_tree_mutator(node, SplitExpression, split);
	/* a call that may not run for every row: the whole subtree per row in P' */
	return (Node *) VarOf(INDEX_VAR, ChildColumn(node, split), node);
}

/* Mutator: the batched calls' placeholders as Var(INDEX_VAR, columns + i). */
static Node *
PlaceCalls(Node *node, int *n_columns)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var) && ((Var *) node)->varno == BATCH_CALL_VAR)
	{
		Var		   *var = (Var *) copyObject(node);

		var->varno = INDEX_VAR;
		var->varnosyn = INDEX_VAR;
		var->varattno += *n_columns;
		var->varattnosyn = var->varattno;
		return (Node *) var;
	}
	return expression_tree_mutator(node, PlaceCalls, n_columns);
}

/* True for the plan nodes whose target list the node may take over. */
static bool
IsBatchablePlan(Plan *plan)
{
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_SubqueryScan:
		case T_FunctionScan:
		case T_TableFuncScan:
		case T_ValuesScan:
		case T_CteScan:
		case T_NamedTuplestoreScan:
		case T_WorkTableScan:
		case T_NestLoop:
		case T_MergeJoin:
		case T_HashJoin:
		case T_Agg:
		case T_Group:
			return true;
		case T_Result:
			return plan->lefttree != NULL;	/* one row: nothing to batch */
		default:
			return false;
	}
}

/* What PushAggregateArguments works with: the Agg's child. */
typedef struct AggPush
{
	Plan	   *child;			/* gets the arguments as resjunk columns */
} AggPush;

/* Mutator: Var(OUTER_VAR, k) as a copy of the child's column k (an Agg argument over the child's input). */
static Node *
ChildExpression(Node *node, Plan *child)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var) && ((Var *) node)->varno == OUTER_VAR)
	{
		Var		   *var = (Var *) node;
		TargetEntry *tle = list_nth_node(TargetEntry, child->targetlist, var->varattno - 1);

		return (Node *) copyObject(tle->expr);
	}
	return expression_tree_mutator(node, ChildExpression, child);
}

/* The child's column computing expr (an equal non-volatile one shared), appended as resjunk when new; 1-based. */
static int
PushedColumn(Plan *child, Node *expr)
{
	ListCell   *lc;
	TargetEntry *tle;

	if (!contain_volatile_functions(expr))
		foreach(lc, child->targetlist)
		{
			tle = lfirst_node(TargetEntry, lc);
			if (equal(tle->expr, expr))
				return tle->resno;
		}
	tle = makeTargetEntry((Expr *) expr, list_length(child->targetlist) + 1, NULL, true);
	child->targetlist = lappend(child->targetlist, tle);
	return tle->resno;
}

/* Mutator: each Aggref argument with a batchable call becomes a column of the child (PushAggregateArguments). */
static Node *
PushAggrefArguments(Node *node, AggPush *push)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Aggref))
	{
		Aggref	   *aggref = (Aggref *) copyObject(node);
		ListCell   *lc;

		/* FILTER skips rows, ordered-set aggregates read their direct arguments once */
		if (aggref->aggfilter != NULL || aggref->aggkind != AGGKIND_NORMAL || aggref->agglevelsup != 0)
			return (Node *) aggref;
		foreach(lc, aggref->args)
		{
			TargetEntry *arg = lfirst_node(TargetEntry, lc);
			Node	   *expr;

			if (!ContainsBatchable((Node *) arg->expr) || expression_returns_set((Node *) arg->expr))
				continue;
			expr = ChildExpression((Node *) arg->expr, push->child);
			arg->expr = (Expr *) VarOf(OUTER_VAR, PushedColumn(push->child, expr), (Node *) arg->expr);
		}
		return (Node *) aggref;
	}
	return expression_tree_mutator(node, PushAggrefArguments, push);
}

/*
 * An aggregate without FILTER evaluates its arguments (and ORDER BY keys)
 * once for every input row, in the order the rows come, before it
 * aggregates them; so an argument that calls a batchable function may as
 * well be computed by the Agg's child, as a resjunk column the aggregate
 * reads, where the child's LMBatch node batches it: SELECT count(embed(b))
 * FROM t then embeds lmgen.batch_rows texts per call instead of one.  Only
 * for a child that projects (IsBatchablePlan) below an Agg that evaluates
 * arguments (not the combining half of a parallel aggregate) and has no
 * grouping sets (whose later phases re-read their input).
 */
static void
PushAggregateArguments(Agg *agg)
{
	AggPush		push = {agg->plan.lefttree};

	if (push.child == NULL || !IsBatchablePlan(push.child) || IsA(push.child, Agg) || IsA(push.child, Group) ||
		agg->groupingSets != NIL || DO_AGGSPLIT_COMBINE(agg->aggsplit) ||
		(!ContainsBatchable((Node *) agg->plan.targetlist) && !ContainsBatchable((Node *) agg->plan.qual)) ||
		expression_returns_set((Node *) push.child->targetlist))
		return;
	agg->plan.targetlist = (List *) PushAggrefArguments((Node *) agg->plan.targetlist, &push);
	agg->plan.qual = (List *) PushAggrefArguments((Node *) agg->plan.qual, &push);
}

/* P with an LMBatch node above it when its target list has batchable calls, else P. */
static Plan *
AddBatchNode(Plan *plan, BatchReading reading, BatchRewrite *rw)
{
	BatchSplit	split = {NIL, NIL};
	List	   *tlist = NIL;
	List	   *scan_tlist = NIL;
	ListCell   *lc;
	int			n_columns;
	CustomScan *cscan;

	if (!IsBatchablePlan(plan) || reading.mark || !ContainsBatchable((Node *) plan->targetlist) ||
		expression_returns_set((Node *) plan->targetlist))
		return plan;

	foreach(lc, plan->targetlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		TargetEntry *newtle = flatCopyTargetEntry(tle);

		newtle->expr = (Expr *) SplitExpression((Node *) tle->expr, &split);
		tlist = lappend(tlist, newtle);
	}
	if (split.calls == NIL)
		return plan;			/* every call is under CASE and the like */

	n_columns = list_length(split.columns);
	tlist = (List *) PlaceCalls((Node *) tlist, &n_columns);
	foreach(lc, split.columns)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry((Expr *) VarOf(OUTER_VAR, tle->resno, (Node *) tle->expr),
											 tle->resno, NULL, false));
	}
	foreach(lc, split.calls)
		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry(lfirst(lc), list_length(scan_tlist) + 1, NULL, false));

	cscan = makeNode(CustomScan);
	cscan->scan.plan.startup_cost = plan->startup_cost;
	cscan->scan.plan.total_cost = plan->total_cost;
	cscan->scan.plan.plan_rows = plan->plan_rows;
	cscan->scan.plan.plan_width = plan->plan_width;
	cscan->scan.plan.parallel_aware = false;
	cscan->scan.plan.parallel_safe = plan->parallel_safe;
	cscan->scan.plan.plan_node_id = rw->next_plan_node_id++;
	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = NIL;
	cscan->scan.plan.lefttree = plan;	/* for EXPLAIN's deparser only: see above */
	cscan->scan.plan.righttree = NULL;
	cscan->scan.plan.initPlan = plan->initPlan;	/* stay at the top, as the planner put them */
	cscan->scan.plan.extParam = bms_copy(plan->extParam);
	cscan->scan.plan.allParam = bms_copy(plan->allParam);
	cscan->scan.scanrelid = 0;
	cscan->flags = 0;
	cscan->custom_plans = list_make1(plan);
	cscan->custom_exprs = NIL;
	cscan->custom_private = list_make4_int(n_columns, rw->batch_rows, reading.all ? 0 : 1,
										   (int) Min(reading.limit, PG_INT32_MAX));
	cscan->custom_scan_tlist = scan_tlist;
	cscan->custom_relids = NULL;
	cscan->methods = &lmgen_batch_scan_methods;

	plan->targetlist = split.columns;
	plan->initPlan = NIL;
	rw->changed = true;
	return (Plan *) cscan;
}

/* The integer value of a Limit's constant count or offset, or -1 when not constant. */
static int64
ConstLimit(Node *node)
{
	if (node != NULL && IsA(node, Const) && !((Const *) node)->constisnull &&
		((Const *) node)->consttype == INT8OID)
		return Max(DatumGetInt64(((Const *) node)->constvalue), 0);
	return -1;
}

/* How a Limit reads its child, given how its own output is read. */
static BatchReading
LimitReading(Limit *limit, BatchReading reading)
{
	BatchReading child = {false, -1, reading.mark};
	int64		offset = limit->limitOffset == NULL ? 0 : ConstLimit(limit->limitOffset);
	int64		count = ConstLimit(limit->limitCount);
	bool		no_count = limit->limitCount == NULL ||
	(IsA(limit->limitCount, Const) && ((Const *) limit->limitCount)->constisnull);

	if (offset < 0 || limit->limitOption == LIMIT_OPTION_WITH_TIES || (!no_count && count < 0))
		return child;			/* not known at plan time: grow */
	child.all = reading.all;
	if (!no_count)
		child.limit = count + offset;
	if (reading.limit >= 0)
		child.limit = child.limit >= 0 ? Min(child.limit, reading.limit + offset) : reading.limit + offset;
	return child;
}

/* Rewrite a list of plans in place, each read as reading. */
static void
RewritePlanList(List *plans, BatchReading reading, BatchRewrite *rw)
{
	ListCell   *lc;

	foreach(lc, plans)
		lfirst(lc) = RewritePlan(lfirst(lc), reading, rw);
}

/*
 * Rewrite the plan tree below plan, then plan itself; reading says how its
 * output is read.
 */
static Plan *
RewritePlan(Plan *plan, BatchReading reading, BatchRewrite *rw)
{
	/* what a node that reads its input to the end when its output is, passes down */
	BatchReading through = {reading.all && reading.limit < 0, -1, false};
	BatchReading all = {true, -1, false};
	BatchReading some = {false, -1, false};
	BatchReading outer = some;
	BatchReading inner = some;

	if (plan == NULL)
		return NULL;
	check_stack_depth();

	switch (nodeTag(plan))
	{
		case T_Limit:
			outer = LimitReading((Limit *) plan, reading);
			break;
		case T_Sort:
		case T_Hash:
		case T_ModifyTable:
			outer = all;
			break;
		case T_Agg:
			outer = ((Agg *) plan)->aggstrategy == AGG_SORTED ? through : all;
			PushAggregateArguments((Agg *) plan);
			break;
		case T_Result:
		case T_SubqueryScan:
		case T_Gather:
		case T_GatherMerge:
		case T_Material:
		case T_Append:
		case T_MergeAppend:
			/* row for row: limits hold below */
			outer = plan->qual == NIL ? reading : through;
			if (!IsA(plan, Result) && !IsA(plan, SubqueryScan))
				outer.mark = false;
			break;
		case T_NestLoop:
			{
				Join	   *join = (Join *) plan;

				outer = through;
				inner = (join->jointype == JOIN_SEMI || join->jointype == JOIN_ANTI ||
						 join->inner_unique) ? some : through;
				break;
			}
		case T_HashJoin:
			outer = through;
			inner = all;
			break;
		case T_MergeJoin:
			outer = some;
			inner = some;
			inner.mark = true;
			break;
		case T_Group:
		case T_Unique:
		case T_SetOp:
		case T_WindowAgg:
		case T_ProjectSet:
		case T_LockRows:
		case T_IncrementalSort:
			outer = through;
			break;
		default:
			outer = some;		/* Memoize, RecursiveUnion, ...: may stop early */
			break;
	}

	switch (nodeTag(plan))
	{
		case T_Append:
			RewritePlanList(((Append *) plan)->appendplans, outer, rw);
			break;
		case T_MergeAppend:
			RewritePlanList(((MergeAppend *) plan)->mergeplans, outer, rw);
			break;
		case T_SubqueryScan:
			((SubqueryScan *) plan)->subplan = RewritePlan(((SubqueryScan *) plan)->subplan, outer, rw);
			break;
		case T_CustomScan:
		case T_ForeignScan:
		case T_BitmapAnd:
		case T_BitmapOr:
			break;				/* not ours to change, or no target lists */
		default:
			plan->lefttree = RewritePlan(plan->lefttree, outer, rw);
			plan->righttree = RewritePlan(plan->righttree, inner, rw);
			break;
	}
	return AddBatchNode(plan, reading, rw);
}

/* The largest plan_node_id in the tree below plan. */
static int
MaxPlanNodeId(Plan *plan)
{
	int			max;
	ListCell   *lc;
	List	   *children = NIL;

	if (plan == NULL)
		return -1;
	max = plan->plan_node_id;
	max = Max(max, MaxPlanNodeId(plan->lefttree));
	max = Max(max, MaxPlanNodeId(plan->righttree));
	if (IsA(plan, Append))
		children = ((Append *) plan)->appendplans;
	else if (IsA(plan, MergeAppend))
		children = ((MergeAppend *) plan)->mergeplans;
	else if (IsA(plan, SubqueryScan))
		max = Max(max, MaxPlanNodeId(((SubqueryScan *) plan)->subplan));
	else if (IsA(plan, CustomScan))
		children = ((CustomScan *) plan)->custom_plans;
	else if (IsA(plan, BitmapAnd))
		children = ((BitmapAnd *) plan)->bitmapplans;
	else if (IsA(plan, BitmapOr))
		children = ((BitmapOr *) plan)->bitmapplans;
	foreach(lc, children)
		max = Max(max, MaxPlanNodeId(lfirst(lc)));
	return max;
}

/* A Material over plan, built as set_plan_references would (OUTER_VAR references). */
static Plan *
MaterialOver(Plan *plan, BatchRewrite *rw)
{
	Material   *mat = makeNode(Material);
	ListCell   *lc;

	mat->plan.startup_cost = plan->startup_cost;
	mat->plan.total_cost = plan->total_cost;
	mat->plan.plan_rows = plan->plan_rows;
	mat->plan.plan_width = plan->plan_width;
	mat->plan.parallel_safe = plan->parallel_safe;
	mat->plan.plan_node_id = rw->next_plan_node_id++;
	foreach(lc, plan->targetlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		TargetEntry *newtle = flatCopyTargetEntry(tle);

		newtle->expr = (Expr *) VarOf(OUTER_VAR, tle->resno, (Node *) tle->expr);
		mat->plan.targetlist = lappend(mat->plan.targetlist, newtle);
	}
	mat->plan.lefttree = plan;
	mat->plan.extParam = bms_copy(plan->extParam);
	mat->plan.allParam = bms_copy(plan->allParam);
	return (Plan *) mat;
}

/* Put LMBatch nodes into a finished plan. */
static void
RewritePlannedStmt(PlannedStmt *stmt, int cursorOptions)
{
	BatchRewrite rw;
	BatchReading top = {true, -1, false};
	BatchReading some = {false, -1, false};
	ListCell   *lc;
	int			max_id;
	bool		could_scroll;

	max_id = MaxPlanNodeId(stmt->planTree);
	foreach(lc, stmt->subplans)
		max_id = Max(max_id, MaxPlanNodeId(lfirst(lc)));
	rw.next_plan_node_id = max_id + 1;
	rw.batch_rows = lmgen_batch_rows;
	rw.changed = false;

	/* subplans may be read in part (EXISTS, a scalar subquery, a CTE read under a limit) */
	foreach(lc, stmt->subplans)
		lfirst(lc) = RewritePlan(lfirst(lc), some, &rw);

	/* a cursor may be read in part; a plain statement's output is read to the end */
	if (cursorOptions & CURSOR_OPT_FAST_PLAN)
		top = some;
	could_scroll = (cursorOptions & CURSOR_OPT_SCROLL) ||
		(!(cursorOptions & CURSOR_OPT_NO_SCROLL) && (cursorOptions & CURSOR_OPT_FAST_PLAN) &&
		 ExecSupportsBackwardScan(stmt->planTree));
	rw.changed = false;
	stmt->planTree = RewritePlan(stmt->planTree, top, &rw);
	if (rw.changed && could_scroll && !ExecSupportsBackwardScan(stmt->planTree))
		stmt->planTree = MaterialOver(stmt->planTree, &rw);
}

/* planner_hook: plan as usual, then add the batching nodes. */
static PlannedStmt *
BatchPlanner(Query *parse, const char *query_string, int cursorOptions, ParamListInfo boundParams)
{
	PlannedStmt *stmt;

	if (prev_planner_hook)
		stmt = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	else
		stmt = standard_planner(parse, query_string, cursorOptions, boundParams);
	if (lmgen_enable_batching && lmgen_batch_rows > 1 && stmt->commandType != CMD_UTILITY)
		RewritePlannedStmt(stmt, cursorOptions);
	return stmt;
}

/* Register the planner hook, the node's methods and the function cache's invalidation. */
void
BatchInit(void)
{
	RegisterCustomScanMethods(&lmgen_batch_scan_methods);
	CacheRegisterSyscacheCallback(PROCOID, BatchFunctionsInvalidate, (Datum) 0);
	prev_planner_hook = planner_hook;
	planner_hook = BatchPlanner;
}
