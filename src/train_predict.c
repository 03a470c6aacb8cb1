/*
 * train_predict.c — using a trained classifier: lmgen.predict(),
 * lmgen.predict_proba() and lmgen.evaluate().
 *
 * predict() and predict_proba() keep, in fn_extra, the classifier their call
 * site last used and a scratch feature vector, so a query over a million
 * rows looks the classifier up once (train_store.c's cache) and then only
 * builds features and multiplies.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "sqlfuncs_common.h"
#include "train_sql.h"

PG_FUNCTION_INFO_V1(lmgen_predict);
PG_FUNCTION_INFO_V1(lmgen_predict_proba);
PG_FUNCTION_INFO_V1(lmgen_evaluate);

/* What a call site remembers between rows. */
typedef struct PredictSite
{
	char		name[NAMEDATALEN];	/* classifier last used */
	CachedClassifier *cc;		/* its cache entry */
	lm_sparse	x;				/* scratch features (malloc) */
	float	   *probs;			/* (n_classes) scratch */
	int			n_probs;		/* probs allocated */
} PredictSite;

/* Reset callback: free the site's scratch vector. */
static void
FreeSite(void *arg)
{
	lm_sparse_free(&((PredictSite *) arg)->x);
}

/* Class probabilities of one text (site->probs); returns the classifier. */
static CachedClassifier *
PredictText(FunctionCallInfo fcinfo)
{
	PredictSite *site = fcinfo->flinfo->fn_extra;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *body = PG_GETARG_TEXT_PP(1);
	size_t		len;
	char	   *s;

	if (site == NULL)
	{
		MemoryContextCallback *cb;

		site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PredictSite));
		cb = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(MemoryContextCallback));
		cb->func = FreeSite;
		cb->arg = site;
		MemoryContextRegisterResetCallback(fcinfo->flinfo->fn_mcxt, cb);
		fcinfo->flinfo->fn_extra = site;
	}
	if (site->cc == NULL || strcmp(site->name, name) != 0)
	{
		site->cc = NULL;
		site->cc = ClassifierAcquire(name);
		strlcpy(site->name, name, sizeof(site->name));
		if (site->n_probs < site->cc->c->n_classes)
		{
			site->probs = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(float) * site->cc->c->n_classes);
			site->n_probs = site->cc->c->n_classes;
		}
	}
	s = TextToUtf8(body, &len);
	ClassifierFeatures(site->cc->c, site->cc->model, s, len, &site->x);
	lm_classifier_proba(site->cc->c, &site->x, site->probs);
	return site->cc;
}

/* lmgen.predict(classifier text, body text) RETURNS text */
Datum
lmgen_predict(PG_FUNCTION_ARGS)
{
	CachedClassifier *cc = PredictText(fcinfo);
	PredictSite *site = fcinfo->flinfo->fn_extra;
	int			best = 0;

	for (int k = 1; k < cc->c->n_classes; k++)
		if (site->probs[k] > site->probs[best])
			best = k;
	PG_RETURN_TEXT_P(cstring_to_text(cc->labels[best]));
}

/* lmgen.predict_proba(classifier text, body text) RETURNS jsonb */
Datum
lmgen_predict_proba(PG_FUNCTION_ARGS)
{
	CachedClassifier *cc = PredictText(fcinfo);
	PredictSite *site = fcinfo->flinfo->fn_extra;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int k = 0; k < cc->c->n_classes; k++)
	{
		if (k > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, cc->labels[k]);
		appendStringInfo(&buf, ": %.6g", site->probs[k]);
	}
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* State of one evaluate() pass. */
typedef struct EvalState
{
	lm_classifier *c;			/* the classifier (cache-owned) */
	const char *model;			/* its embedding model, "" when none */
	lm_metrics *m;				/* counts */
	lm_sparse	x;				/* scratch features */
	float	   *probs;			/* (n_classes) scratch */
} EvalState;

/* Reset callback: free evaluate()'s engine objects. */
static void
FreeEval(void *arg)
{
	EvalState  *e = arg;

	lm_metrics_free(e->m);
	lm_sparse_free(&e->x);
	e->m = NULL;
}

/* Row callback: score one row. */
static void
EvalRow(void *arg, const char *text, size_t len, int label)
{
	EvalState  *e = arg;

	ClassifierFeatures(e->c, e->model, text, len, &e->x);
	lm_classifier_proba(e->c, &e->x, e->probs);
	lm_metrics_add(e->m, label, e->probs);
}

/* lmgen.evaluate(classifier text, query text) RETURNS jsonb */
Datum
lmgen_evaluate(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CachedClassifier *cc = ClassifierAcquire(name);
	int			K = cc->c->n_classes;
	EvalState  *e = palloc0(sizeof(EvalState));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	LabelSet	labels;
	RowCounts	counts;
	StringInfoData buf;

	/* the classifier's labels keep their numbers; new ones come after */
	LabelSetInit(&labels, LM_CLASSIFIER_MAX_CLASSES);
	for (int k = 0; k < K; k++)
		LabelSetId(&labels, cc->labels[k]);
	e->c = cc->c;
	e->model = cc->model;
	e->probs = palloc(sizeof(float) * K);
	e->m = lm_metrics_create(LM_CLASSIFIER_MAX_CLASSES, K);
	if (e->m == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	cb->func = FreeEval;
	cb->arg = e;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	ForEachLabelledRow("evaluate", query, &labels, EvalRow, e, &counts);

	/* shrink the confusion matrix to the labels actually seen */
	{
		int			n = labels.n;
		lm_metrics *m = lm_metrics_create(n, K);

		if (m == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		for (int r = 0; r < n; r++)
			for (int c = 0; c < n; c++)
				m->confusion[(size_t) r * n + c] = e->m->confusion[(size_t) r * LM_CLASSIFIER_MAX_CLASSES + c];
		m->n = e->m->n;
		m->sum_log_loss = e->m->sum_log_loss;
		lm_metrics_free(e->m);
		e->m = m;
	}
	lm_metrics_finish(e->m);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"classifier\": ");
	escape_json(&buf, name);
	appendStringInfo(&buf, ", \"rows_read\": " INT64_FORMAT ", \"rows_skipped\": " INT64_FORMAT
					 ", \"unknown_labels\": %d, \"metrics\": ", counts.read, counts.skipped, labels.n - K);
	AppendMetricsJson(&buf, e->m, labels.names);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
