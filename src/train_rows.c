/*
 * train_rows.c — reading labelled rows for train_classifier() and evaluate(),
 * and metrics as jsonb.
 *
 * The query runs through SPI as the calling user (no security context
 * switch), so table privileges and row-level security apply to it exactly
 * as they would to the user's own SELECT.  Rows come through a cursor,
 * TRAIN_FETCH_ROWS at a time, in a memory context reset per fetch, so a large
 * query never sits whole in one SPI tuple table.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

#include "sqlfuncs_common.h"
#include "train_sql.h"

/* Hash entry of a LabelSet. */
typedef struct LabelEntry
{
	char		label[TRAIN_MAX_LABEL_BYTES + 1];	/* key */
	int			id;				/* class number */
} LabelEntry;

/* An empty label set. */
void
LabelSetInit(LabelSet *ls, int max)
{
	HASHCTL		ctl;

	ctl.keysize = TRAIN_MAX_LABEL_BYTES + 1;
	ctl.entrysize = sizeof(LabelEntry);
	ctl.hcxt = CurrentMemoryContext;
	ls->hash = hash_create("lmgen labels", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ls->cap = 16;
	ls->names = palloc(sizeof(char *) * ls->cap);
	ls->n = 0;
	ls->max = max;
}

/* The class number of a label, added when new. */
int
LabelSetId(LabelSet *ls, const char *label)
{
	LabelEntry *e;
	bool		found;

	if (strlen(label) > TRAIN_MAX_LABEL_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("label \"%.40s...\" is longer than %d bytes", label, TRAIN_MAX_LABEL_BYTES)));
	e = hash_search(ls->hash, label, HASH_ENTER, &found);
	if (!found)
	{
		if (ls->n >= ls->max)
		{
			hash_search(ls->hash, label, HASH_REMOVE, NULL);
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the query has more than %d distinct labels", ls->max),
					 errhint("The second column should be the class of each row, not a per-row value.")));
		}
		if (ls->n == ls->cap)
		{
			ls->cap *= 2;
			ls->names = repalloc(ls->names, sizeof(char *) * ls->cap);
		}
		ls->names[ls->n] = MemoryContextStrdup(GetMemoryChunkContext(ls->names), label);
		e->id = ls->n++;
	}
	return e->id;
}

/* True for the types the text column may have. */
static bool
IsTextType(Oid t)
{
	return t == TEXTOID || t == VARCHAROID || t == BPCHAROID || t == NAMEOID;
}

/*
 * ERROR unless every statement of plan is a plain SELECT: one that returns
 * rows (INSERT ... RETURNING does too), changes data in a WITH, or locks
 * rows (FOR UPDATE) is refused here with a clear message, before any row
 * is read (the read-only cursor would refuse it anyway, but naming a
 * "SELECT" that "is not allowed in a non-volatile function").
 */
static void
CheckPlainSelect(const char *what, const char *shape, SPIPlanPtr plan)
{
	ListCell   *lc;

	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);
		ListCell   *lq;

		foreach(lq, ps->query_list)
		{
			Query	   *q = lfirst_node(Query, lq);

			if (q->commandType != CMD_SELECT || q->hasModifyingCTE || q->rowMarks != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_WRONG_OBJECT_TYPE),
						 errmsg("%s: the query must be a single SELECT returning %s", what, shape),
						 errdetail("It may not change data (INSERT, UPDATE or DELETE, also inside WITH) or lock rows (FOR UPDATE, FOR SHARE).")));
		}
	}
}

/*
 * Run a two-column (text, any) query and call fn for each row with neither
 * column NULL; shape names the two columns in errors ("(text, label)").
 */
void
ForEachTextPair(const char *what, const char *shape, const char *query, TextPairFn fn, void *arg,
				RowCounts *counts)
{
	SPIPlanPtr	plan;
	Portal		portal;
	TupleDesc	desc;
	Oid			label_out;
	bool		label_varlena;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext per_fetch;
	const char *p = query;

	counts->read = counts->skipped = 0;
	while (*p && isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: the query is empty", what),
				 errhint("Pass a SELECT that returns %s, e.g. 'SELECT body, %s FROM docs'.", shape,
						 strstr(shape, "summary") ? "summary" : "category")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare_cursor(query, 0, NULL, CURSOR_OPT_NO_SCROLL);
	if (plan == NULL)
		elog(ERROR, "%s: could not prepare the query: %s", what, SPI_result_code_string(SPI_result));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s: the query must be a single SELECT returning %s", what, shape)));
	CheckPlainSelect(what, shape, plan);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	desc = portal->tupDesc;
	if (desc == NULL || desc->natts != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: the query returns %d columns; it must return 2 %s", what,
						desc ? desc->natts : 0, shape)));
	if (!IsTextType(TupleDescAttr(desc, 0)->atttypid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: the query's first column has type %s; it must be text", what,
						format_type_be(TupleDescAttr(desc, 0)->atttypid)),
				 errhint("Cast it: SELECT col::text, label FROM ...")));
	getTypeOutputInfo(TupleDescAttr(desc, 1)->atttypid, &label_out, &label_varlena);

	per_fetch = AllocSetContextCreate(caller, "lmgen rows", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, TRAIN_FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			bool		null_text,
						null_label;
			Datum		t = SPI_getbinval(tup, desc, 1, &null_text);
			Datum		l = SPI_getbinval(tup, desc, 2, &null_label);


			counts->read++;
			if (null_text || null_label)
			{
				counts->skipped++;
				continue;
			}
			MemoryContextSwitchTo(per_fetch);
			{
				text	   *body = DatumGetTextPP(t);
				size_t		len;
				char	   *s;
				char	   *label = OidOutputFunctionCall(label_out, l);

				if (TupleDescAttr(desc, 0)->atttypid == NAMEOID)
					body = cstring_to_text(NameStr(*DatumGetName(t)));
				s = TextToUtf8(body, &len);
				fn(arg, s, len, label, strlen(label));
				MemoryContextSwitchTo(caller);
			}
			MemoryContextReset(per_fetch);
		}
		SPI_freetuptable(SPI_tuptable);
		TrainProgressRows(counts->read, counts->skipped);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(per_fetch);
	SPI_finish();
}

/* What ForEachLabelledRow hands its TextPairFn: the label set and the caller's row function. */
typedef struct LabelledRows
{
	LabelSet   *labels;			/* class numbers of the labels met */
	LabelledRowFn fn;			/* the caller's row function */
	void	   *arg;			/* and its argument */
} LabelledRows;

/* TextPairFn of ForEachLabelledRow: the label's class number, then the caller's function. */
static void
LabelledRow(void *arg, const char *text, size_t len, const char *label, size_t label_len)
{
	LabelledRows *lr = arg;
	MemoryContext cxt = MemoryContextSwitchTo(GetMemoryChunkContext(lr->labels->names));
	int			id = LabelSetId(lr->labels, label);

	MemoryContextSwitchTo(cxt);
	lr->fn(lr->arg, text, len, id);
}

/* Run a (text, label) query and call fn for each usable row. */
void
ForEachLabelledRow(const char *what, const char *query, LabelSet *labels, LabelledRowFn fn, void *arg,
				   RowCounts *counts)
{
	LabelledRows lr = {labels, fn, arg};

	ForEachTextPair(what, "(text, label)", query, LabelledRow, &lr, counts);
}

/* Append a double as a JSON number (NaN and infinities as null). */
static void
AppendNumber(StringInfo buf, double x)
{
	if (isnan(x) || isinf(x))
		appendStringInfoString(buf, "null");
	else
		appendStringInfo(buf, "%.6g", x);
}

/* Append m's metrics as a JSON object to buf. */
void
AppendMetricsJson(StringInfo buf, const lm_metrics *m, char **labels)
{
	int			K = m->n_classes;

	appendStringInfo(buf, "{\"rows\": " INT64_FORMAT ", \"accuracy\": ", m->n);
	AppendNumber(buf, m->accuracy);
	appendStringInfoString(buf, ", \"macro_f1\": ");
	AppendNumber(buf, m->macro_f1);
	appendStringInfoString(buf, ", \"log_loss\": ");
	AppendNumber(buf, m->log_loss);
	appendStringInfoString(buf, ", \"per_class\": {");
	for (int c = 0; c < K; c++)
	{
		if (c > 0)
			appendStringInfoString(buf, ", ");
		escape_json(buf, labels[c]);
		appendStringInfoString(buf, ": {\"precision\": ");
		AppendNumber(buf, m->precision[c]);
		appendStringInfoString(buf, ", \"recall\": ");
		AppendNumber(buf, m->recall[c]);
		appendStringInfoString(buf, ", \"f1\": ");
		AppendNumber(buf, m->f1[c]);
		appendStringInfo(buf, ", \"support\": " INT64_FORMAT "}", m->support[c]);
	}
	appendStringInfoString(buf, "}, \"confusion\": {\"labels\": [");
	for (int c = 0; c < K; c++)
	{
		if (c > 0)
			appendStringInfoString(buf, ", ");
		escape_json(buf, labels[c]);
	}
	appendStringInfoString(buf, "], \"matrix\": [");
	for (int r = 0; r < K; r++)
	{
		appendStringInfoString(buf, r ? ", [" : "[");
		for (int c = 0; c < K; c++)
			appendStringInfo(buf, c ? ", " INT64_FORMAT : INT64_FORMAT, m->confusion[(size_t) r * K + c]);
		appendStringInfoChar(buf, ']');
	}
	appendStringInfoString(buf, "]}}");
}

/* Metrics as jsonb. */
Jsonb *
MetricsToJsonb(const lm_metrics *m, char **labels)
{
	StringInfoData buf;

	initStringInfo(&buf);
	AppendMetricsJson(&buf, m, labels);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
