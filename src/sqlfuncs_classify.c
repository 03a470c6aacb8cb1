/*
 * sqlfuncs_classify.c — zero-shot classification: classify() and
 * classify_scores().
 *
 * The text and the list of labels go into one instruction prompt, which is
 * evaluated once.  Each label's tokens are then scored as the answer: a
 * label sequence shares the prompt's KV blocks (nothing is copied but the
 * partly filled last block, when the label writes into it), the labels of a
 * group are evaluated in one batch, so the weights are read once per group,
 * and a label's blocks go back to the pool once it is scored: memory is the
 * prompt plus one group of labels, however many labels there are.  The
 * log-softmax normaliser of a position is computed once, for all the labels
 * scored there.  A label's score is the log-likelihood of its whole
 * token sequence after the prompt, minus the same log-likelihood for a
 * content-free text ("N/A"): this contextual calibration (Zhao et al.,
 * 2021) removes the model's prior preference for some labels (the first
 * listed, the shortest), which otherwise swamps small models' judgement.
 * The baseline depends only on the model and the labels, so it is computed
 * once per query and cached in fn_extra; its prompt is evaluated next to
 * the text's, sharing the blocks of their common beginning.  classify_scores() turns the
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
#define LABEL_GROUP 16			/* labels scored per batch, at most */
#define LABEL_BATCH_TOKENS 32	/* label tokens per batch, unless one label has more */

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

/*
 * The log-softmax normaliser of one row of logits: max and log of the sum
 * of exp(logit - max).  Computed once per position and shared by every
 * label scored there.
 */
typedef struct LogNorm
{
	float		mx;				/* largest logit */
	double		log_sum;		/* log(sum(exp(logit - mx))) */
} LogNorm;

/* The normaliser of a row of logits. */
static LogNorm
LogNormOf(const float *logits, int n_vocab)
{
	LogNorm		z = {logits[0], 0.0};
	double		sum = 0.0;

	for (int i = 1; i < n_vocab; i++)
		z.mx = Max(z.mx, logits[i]);
	for (int i = 0; i < n_vocab; i++)
		sum += exp((double) logits[i] - z.mx);
	z.log_sum = log(sum);
	return z;
}

/* log p(token | logits), given the row's normaliser. */
static double
LogProb(const float *logits, LogNorm z, int32 token)
{
	return (double) logits[token] - z.mx - z.log_sum;
}

/* lm_batch_free with the signature TrackEngineResource wants. */
static void
FreeBatch(void *p)
{
	lm_batch_free(p);
}

/* Length of the common prefix of two prompts. */
static int
CommonPrefix(const LmgenPrompt *a, const LmgenPrompt *b)
{
	int			n = 0;

	while (n < a->n && n < b->n && a->ids[n] == b->ids[n])
		n++;
	return n;
}

/*
 * Evaluate prompt p in sequence seq, sharing the first positions it has in
 * common with the prompt already in sequence 0 (p0; NULL for none), and
 * set first[k] to the log-probability of label k's first token after it.
 * At least two tokens are always evaluated, so the prompt's last token is
 * computed exactly as in a whole-prompt batch.
 */
static void
EvalPrompt(LmgenModel *m, lm_context *ctx, lm_batch *b, int seq, const LmgenPrompt *p,
		   const LmgenPrompt *p0, Labels *L, double *first)
{
	int			shared = p0 ? Min(CommonPrefix(p, p0), p->n - 2) : 0;
	const float *last;
	LogNorm		z;

	if (shared > 0 && !lm_kv_seq_share(lm_context_kv(ctx), 0, seq, shared))
		elog(ERROR, "could not share %d prompt positions with sequence %d", shared, seq);
	if (shared <= 0)
	{
		shared = 0;
		lm_kv_seq_clear(lm_context_kv(ctx), seq);
	}
	lm_batch_clear(b);
	for (int i = shared; i < p->n; i++)
		lm_batch_add(b, p->ids[i], i, seq, i == p->n - 1);
	RunForward(m, ctx, b);
	last = lm_context_logits(ctx, b->n_tokens - 1);
	z = LogNormOf(last, m->model->cfg.n_vocab);
	for (int k = 0; k < L->n; k++)
		first[k] = LogProb(last, z, L->ids[k][0]);
}

/*
 * Score every label after the prompt in sequence seq (n_prompt positions):
 * labels of more than one token get a sequence of their own that shares
 * the prompt's blocks, a group of them goes through one batch (at most
 * LABEL_GROUP labels and LABEL_BATCH_TOKENS tokens, or one longer label),
 * and each label's sequence is freed once it is scored.
 */
static void
ScoreAfterPrompt(LmgenModel *m, lm_context *ctx, lm_batch *b, int seq, int n_prompt, int seq0,
				 Labels *L, const double *first, double *score)
{
	lm_kv	   *kv = lm_context_kv(ctx);
	int			n_vocab = m->model->cfg.n_vocab;
	int		   *start = palloc(sizeof(int) * LABEL_GROUP);
	int			k = 0;

	while (k < L->n)
	{
		int			g0 = k,
					n_group = 0;

		CHECK_FOR_INTERRUPTS();
		lm_batch_clear(b);
		for (; k < L->n && n_group < LABEL_GROUP; k++)
		{
			int			n_tok = L->n_ids[k] - 1;	/* the last token's own logits are not needed */
			int			s = seq0 + n_group;

			if (n_tok > 0 && b->n_tokens > 0 && b->n_tokens + n_tok > LABEL_BATCH_TOKENS)
				break;
			start[n_group++] = b->n_tokens;
			if (n_tok == 0)
				continue;
			if (!lm_kv_seq_share(kv, seq, s, n_prompt))
				elog(ERROR, "could not share the prompt with label sequence %d", s);
			for (int j = 0; j < n_tok; j++)
				lm_batch_add(b, L->ids[k][j], n_prompt + j, s, true);
		}
		if (b->n_tokens > 0)
			RunForward(m, ctx, b);
		for (int i = 0; i < n_group; i++)
		{
			int			kk = g0 + i;

			score[kk] = first[kk];
			for (int j = 1; j < L->n_ids[kk]; j++)
			{
				const float *lg = lm_context_logits(ctx, start[i] + j - 1);

				score[kk] += LogProb(lg, LogNormOf(lg, n_vocab), L->ids[kk][j]);
			}
			lm_kv_seq_clear(kv, seq0 + i);
		}
	}
	pfree(start);
}

/*
 * Log-likelihood of each label as the answer to the prompt about each of
 * n_texts texts (score[t][k]).  The prompts are evaluated first, each in a
 * sequence of its own, sharing their common beginning (the instruction and
 * the label list) with the first; then the labels are scored after each
 * prompt in turn.  KV memory: the prompts (their shared part once) plus one
 * group of labels.
 */
static double **
ScoreLabels(LmgenModel *m, int n_texts, text **bodies, Labels *L)
{
	LmgenPrompt *prompt = palloc(sizeof(LmgenPrompt) * n_texts);
	double	  **score = palloc(sizeof(double *) * n_texts);
	double	  **first = palloc(sizeof(double *) * n_texts);
	size_t		block = lm_kv_block_bytes(m->model),
				kv_bytes;
	int			max_prompt = 0,
				n_blocks = 0;
	RuntimeCall call;
	lm_batch   *b;
	EngineResource *res;

	for (int t = 0; t < n_texts; t++)
	{
		size_t		len;
		char	   *s = TextToUtf8(bodies[t], &len);

		prompt[t] = FitPrompt(m, ClassifyPrompt, L, s, len, L->max_ids);
		max_prompt = Max(max_prompt, prompt[t].n);
		n_blocks += (prompt[t].n + LM_KV_BLOCK - 1) / LM_KV_BLOCK;
		score[t] = palloc0(sizeof(double) * L->n);
		first[t] = palloc(sizeof(double) * L->n);
	}
	/* at most: every prompt unshared, and a group of labels with a copied block each */
	n_blocks += LABEL_GROUP * ((L->max_ids + LM_KV_BLOCK - 1) / LM_KV_BLOCK + 1);
	kv_bytes = (size_t) n_blocks * block;
	call = RuntimeBegin(m, n_texts + LABEL_GROUP, kv_bytes, "this classification");
	b = lm_batch_create(Max(max_prompt, Max(LABEL_BATCH_TOKENS, L->max_ids)));
	if (b == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	res = TrackEngineResource(b, FreeBatch);

	for (int t = 0; t < n_texts; t++)
	{
		CHECK_FOR_INTERRUPTS();
		EvalPrompt(m, call.ctx, b, t, &prompt[t], t > 0 ? &prompt[0] : NULL, L, first[t]);
	}
	for (int t = 0; t < n_texts; t++)
	{
		ScoreAfterPrompt(m, call.ctx, b, t, prompt[t].n, n_texts, L, first[t], score[t]);
		lm_kv_seq_clear(lm_context_kv(call.ctx), t);
	}
	ReleaseEngineResource(res);
	RuntimeEnd(&call);
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

/*
 * Label scores of body, calibrated by the content-free baseline: cached for
 * the query, else scored together with body (their prompts share the label
 * list).
 */
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
		text	   *bodies[2] = {cstring_to_text(CONTENT_FREE_TEXT), PG_GETARG_TEXT_PP(0)};
		double	  **both = ScoreLabels(m, 2, bodies, L);

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
		memcpy(c->score, both[0], sizeof(double) * L->n);
		score = both[1];
	}
	else
	{
		text	   *bodies[1] = {PG_GETARG_TEXT_PP(0)};

		score = ScoreLabels(m, 1, bodies, L)[0];
	}
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
