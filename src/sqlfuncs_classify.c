/*
 * sqlfuncs_classify.c — zero-shot classification: classify() and
 * classify_scores().
 *
 * The text and the list of labels go into one instruction prompt, which is
 * evaluated once (sequence 0).  Each label's tokens are then scored as the
 * answer: its KV prefix is copied from sequence 0 into a sequence of its own
 * and all labels of a group are evaluated in one batch, so the weights are
 * read once per group.  A label's score is the log-likelihood of its whole
 * token sequence after the prompt, minus the same log-likelihood for a
 * content-free text ("N/A"): this contextual calibration (Zhao et al.,
 * 2021) removes the model's prior preference for some labels (the first
 * listed, the shortest), which otherwise swamps small models' judgement.
 * The baseline depends only on the model and the labels, so it is computed
 * once per query and cached in fn_extra.  classify_scores() turns the
 * calibrated scores into probabilities with a softmax.  Nothing is
 * generated or parsed.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "runtime.h"
#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_classify);
PG_FUNCTION_INFO_V1(lmgen_classify_scores);

#define MAX_LABELS 1000			/* labels per call */
#define MAX_LABEL_TOKENS 64		/* tokens per label */
#define LABEL_GROUP 16			/* labels scored per batch */

/* The labels of one call, as UTF-8 text and token ids. */
typedef struct Labels
{
	int			n;				/* number of labels */
	char	  **text;			/* UTF-8, NUL-terminated */
	size_t	   *len;			/* byte lengths */
	int32	  **ids;			/* token ids of each label (no BOS) */
	int		   *n_ids;			/* token counts */
	int			max_ids;		/* longest label in tokens */
} Labels;

/* The text the answer follows: the label is scored as its continuation. */
static const char *
AnswerPrefix(LmgenModel *m)
{
	return m->chat_fallback != LM_CHAT_UNKNOWN ? "Answer:" : "Category:";
}

/*
 * Token ids of a label as it follows the answer prefix and a space: the
 * tokens of prefix + " " + label after those of the prefix alone, so each
 * tokenizer's own convention for a word after a space applies.
 */
static int32 *
LabelTokens(LmgenModel *m, const char *label, size_t len, int *n)
{
	const char *prefix = AnswerPrefix(m);
	char	   *both = psprintf("%s %.*s", prefix, (int) len, label);
	int			n_prefix,
				n_both;
	int32	   *p = TokenizeText(m, prefix, strlen(prefix), false, false, &n_prefix);
	int32	   *b = TokenizeText(m, both, strlen(both), false, false, &n_both);

	if (n_both <= n_prefix || memcmp(p, b, sizeof(int32) * n_prefix) != 0)
	{
		/* the tokenizer merged across the boundary: fall back to the label alone */
		return TokenizeText(m, label, len, false, false, n);
	}
	*n = n_both - n_prefix;
	return b + n_prefix;
}

/* Read and check the labels argument; ERROR on empty, NULL or duplicate labels. */
static Labels
ReadLabels(LmgenModel *m, ArrayType *arr)
{
	Labels		L = {0};
	Datum	   *elems;
	bool	   *nulls;
	int			count;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("labels must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	if (count == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("labels must not be empty"),
				 errhint("Pass the candidate classes, for example ARRAY['positive', 'negative'].")));
	if (count > MAX_LABELS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d labels are too many; the limit is %d", count, MAX_LABELS)));
	L.n = count;
	L.text = palloc(sizeof(char *) * count);
	L.len = palloc(sizeof(size_t) * count);
	L.ids = palloc(sizeof(int32 *) * count);
	L.n_ids = palloc(sizeof(int) * count);
	for (int i = 0; i < count; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("label %d is NULL", i + 1)));
		L.text[i] = TextToUtf8(DatumGetTextPP(elems[i]), &L.len[i]);
		L.text[i] = pnstrdup(L.text[i], L.len[i]);
		if (L.len[i] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("label %d is empty", i + 1)));
		for (int j = 0; j < i; j++)
			if (L.len[j] == L.len[i] && memcmp(L.text[j], L.text[i], L.len[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("label \"%s\" appears more than once", L.text[i]),
						 errhint("Each label must be distinct.")));
		L.ids[i] = LabelTokens(m, L.text[i], L.len[i], &L.n_ids[i]);
		if (L.n_ids[i] < 1 || L.n_ids[i] > MAX_LABEL_TOKENS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("label \"%s\" is %d tokens long; the limit is %d", L.text[i], L.n_ids[i],
							MAX_LABEL_TOKENS)));
		L.max_ids = Max(L.max_ids, L.n_ids[i]);
	}
	return L;
}

/* Build the classification prompt around the text; arg is the Labels. */
static LmgenPrompt
ClassifyPrompt(LmgenModel *m, void *arg, const char *text, size_t len)
{
	Labels	   *L = arg;
	StringInfoData buf;
	bool		chat = m->chat_fallback != LM_CHAT_UNKNOWN;

	initStringInfo(&buf);
	if (chat)
		appendStringInfoString(&buf, "Classify the text into exactly one of these categories: ");
	else
		appendStringInfoString(&buf, "Categories: ");
	for (int i = 0; i < L->n; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendBinaryStringInfo(&buf, L->text[i], L->len[i]);
	}
	appendStringInfoString(&buf, ".\n\nText: ");
	appendBinaryStringInfo(&buf, text, len);
	if (chat)
	{
		LmgenPrompt p;
		const char *prefix = AnswerPrefix(m);
		int			n_prefix;
		int32	   *ids;

		/* the chat prompt, then the start of the assistant's answer */
		appendStringInfoString(&buf, "\n\nAnswer with the category only.");
		p = BuildInstructionPrompt(m, NULL, buf.data, buf.len, true);
		ids = TokenizeText(m, prefix, strlen(prefix), false, false, &n_prefix);
		p.ids = repalloc(p.ids, sizeof(int32) * (p.n + n_prefix));
		memcpy(p.ids + p.n, ids, sizeof(int32) * n_prefix);
		p.n += n_prefix;
		return p;
	}
	appendStringInfo(&buf, "\n\n%s", AnswerPrefix(m));
	return BuildInstructionPrompt(m, NULL, buf.data, buf.len, false);
}

/* log p(token | logits) with a stable log-softmax. */
static double
LogProb(const float *logits, int n_vocab, int32 token)
{
	float		mx = logits[0];
	double		sum = 0.0;

	for (int i = 1; i < n_vocab; i++)
		mx = Max(mx, logits[i]);
	for (int i = 0; i < n_vocab; i++)
		sum += exp((double) logits[i] - mx);
	return (double) logits[token] - mx - log(sum);
}

/* lm_batch_free with the signature TrackEngineResource wants. */
static void
FreeBatch(void *p)
{
	lm_batch_free(p);
}

/* Log-likelihood of each label as the answer to the prompt about text. */
static double *
ScoreLabels(LmgenModel *m, text *body, Labels *L)
{
	size_t		len;
	char	   *s = TextToUtf8(body, &len);
	LmgenPrompt prompt = FitPrompt(m, ClassifyPrompt, L, s, len, L->max_ids, "the longest label", "use shorter labels", 3);
	int			n_vocab = m->model->cfg.n_vocab;
	int			group = Min(L->n, LABEL_GROUP);
	lm_context *ctx = RuntimeContext(m, prompt.n + L->max_ids, group + 1);
	lm_kv	   *kv = lm_context_kv(ctx);
	lm_batch   *b = lm_batch_create(Max(prompt.n, group * L->max_ids));
	EngineResource *res;
	double	   *score = palloc0(sizeof(double) * L->n);
	double	   *first = palloc(sizeof(double) * L->n);

	if (b == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	res = TrackEngineResource(b, FreeBatch);

	/* the shared prompt, once, in sequence 0 */
	lm_kv_clear(kv);
	for (int i = 0; i < prompt.n; i++)
		lm_batch_add(b, prompt.ids[i], i, 0, i == prompt.n - 1);
	RunForward(m, ctx, b);
	{
		const float *last = lm_context_logits(ctx, prompt.n - 1);

		for (int k = 0; k < L->n; k++)
			first[k] = LogProb(last, n_vocab, L->ids[k][0]);
	}

	/* each group of labels in one batch, one sequence per label */
	for (int g0 = 0; g0 < L->n; g0 += group)
	{
		int			g1 = Min(g0 + group, L->n);
		int		   *start = palloc(sizeof(int) * (g1 - g0));

		CHECK_FOR_INTERRUPTS();
		lm_batch_clear(b);
		for (int k = g0; k < g1; k++)
		{
			int			seq = 1 + k - g0;

			lm_kv_seq_clear(kv, seq);
			if (!lm_kv_seq_copy(kv, 0, seq, prompt.n))
				elog(ERROR, "could not share the prompt with label sequence %d", seq);
			start[k - g0] = b->n_tokens;
			/* the last label token's own logits are not needed */
			for (int j = 0; j + 1 < L->n_ids[k]; j++)
				lm_batch_add(b, L->ids[k][j], prompt.n + j, seq, true);
		}
		if (b->n_tokens > 0)
			RunForward(m, ctx, b);
		for (int k = g0; k < g1; k++)
		{
			score[k] = first[k];
			for (int j = 1; j < L->n_ids[k]; j++)
				score[k] += LogProb(lm_context_logits(ctx, start[k - g0] + j - 1), n_vocab, L->ids[k][j]);
		}
		pfree(start);
	}
	ReleaseEngineResource(res);
	return score;
}

/* Baseline scores of a model and label list, kept for the rest of the query. */
typedef struct BaselineCache
{
	char	   *key;			/* model name and labels, NUL-separated */
	size_t		key_len;
	double	   *score;			/* one per label */
} BaselineCache;

/* Content-free text whose label scores are the baseline. */
#define CONTENT_FREE_TEXT "N/A"

/* Label scores of body, calibrated by the (cached) content-free baseline. */
static double *
CalibratedScores(FunctionCallInfo fcinfo, LmgenModel *m, Labels *L)
{
	BaselineCache *c = fcinfo->flinfo->fn_extra;
	StringInfoData key;
	double	   *score;

	initStringInfo(&key);
	appendStringInfoString(&key, m->name);
	for (int k = 0; k < L->n; k++)
	{
		appendStringInfoChar(&key, '\0');
		appendBinaryStringInfo(&key, L->text[k], L->len[k]);
	}
	if (c == NULL || c->key_len != (size_t) key.len || memcmp(c->key, key.data, key.len) != 0)
	{
		double	   *base = ScoreLabels(m, cstring_to_text(CONTENT_FREE_TEXT), L);

		if (c == NULL)
			c = fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(BaselineCache));
		else
		{
			pfree(c->key);
			pfree(c->score);
		}
		c->key = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, key.len);
		memcpy(c->key, key.data, key.len);
		c->key_len = key.len;
		c->score = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(double) * L->n);
		memcpy(c->score, base, sizeof(double) * L->n);
	}
	score = ScoreLabels(m, PG_GETARG_TEXT_PP(0), L);
	for (int k = 0; k < L->n; k++)
		score[k] -= c->score[k];
	return score;
}

/* classify(body text, labels text[], model text) RETURNS text: the most likely label. */
Datum
lmgen_classify(PG_FUNCTION_ARGS)
{
	LmgenModel *m;
	Labels		L;
	double	   *score;
	int			best = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	m = ModelFromArg(fcinfo, 2);
	L = ReadLabels(m, PG_GETARG_ARRAYTYPE_P(1));
	score = CalibratedScores(fcinfo, m, &L);
	for (int k = 1; k < L.n; k++)
		if (score[k] > score[best])
			best = k;
	PG_RETURN_TEXT_P(Utf8ToText(L.text[best], L.len[best]));
}

/* classify_scores(body text, labels text[], model text) RETURNS TABLE(label text, probability real) */
Datum
lmgen_classify_scores(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LmgenModel *m;
	Labels		L;
	double	   *score;
	double		mx,
				sum = 0.0;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return (Datum) 0;
	m = ModelFromArg(fcinfo, 2);
	L = ReadLabels(m, PG_GETARG_ARRAYTYPE_P(1));
	score = CalibratedScores(fcinfo, m, &L);
	mx = score[0];
	for (int k = 1; k < L.n; k++)
		mx = Max(mx, score[k]);
	for (int k = 0; k < L.n; k++)
		sum += exp(score[k] - mx);
	for (int k = 0; k < L.n; k++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = PointerGetDatum(Utf8ToText(L.text[k], L.len[k]));
		values[1] = Float4GetDatum((float4) (exp(score[k] - mx) / sum));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
