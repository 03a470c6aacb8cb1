/*
 * sqlfuncs_classify.c — zero-shot classification: classify() and
 * classify_scores().
 *
 * The text and the list of labels go into one instruction prompt, which is
 * evaluated once.  (A list of more than LABEL_LIST_MAX_TOKENS tokens, some
 * hundred labels, is left out: a prompt of thousands of tokens of labels
 * would cost more than all the scoring and tell a small model little.)  Each label's tokens are then scored as the answer: a
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
 * The baseline depends only on the model file, the labels and their
 * descriptions, so the process keeps the last one it computed; its prompt
 * is evaluated next to the text's, sharing the blocks of their common
 * beginning.  The background worker scores the same prompts through its
 * scheduler (ClassifyScoringOf, then ClassifyFinish), bit for bit alike.
 * classify_scores() turns the calibrated scores into probabilities with a
 * softmax.  Nothing is generated or parsed.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "call.h"
#include "call_batch.h"
#include "classify_prompt.h"
#include "lmgen.h"
#include "model_cache.h"
#include "runtime.h"
#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_classify);
PG_FUNCTION_INFO_V1(lmgen_classify_scores);
PG_FUNCTION_INFO_V1(lmgen_classify_array);
PG_FUNCTION_INFO_V1(lmgen_classify_examples);

#define MAX_LABELS 1000			/* labels per call */
#define MAX_LABEL_TOKENS 64		/* tokens per label */
#define LABEL_GROUP 16			/* labels scored per batch, at most */
#define LABEL_LIST_MAX_TOKENS 512	/* longest label list written into the prompt */

/* The labels of one call, as UTF-8 text and token ids. */
typedef struct Labels
{
	int			n;				/* number of labels */
	char	  **text;			/* UTF-8, NUL-terminated */
	size_t	   *len;			/* byte lengths */
	int32	  **ids;			/* token ids of each label (no BOS) */
	int		   *n_ids;			/* token counts */
	int			max_ids;		/* longest label in tokens */
	int			list_tokens;	/* about the tokens of the labels listed in the prompt */
	ClassifyPromptSpec spec;	/* what the prompt says besides the text */
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

/* Check the labels of a call and tokenize them; ERROR on empty or duplicate labels. */
static Labels
ReadLabels(LmgenModel *m, const LmgenCall *c)
{
	Labels		L = {0};
	int			count = c->n_strings;

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
		L.text[i] = c->strings[i];
		L.len[i] = c->string_lens[i];
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
		L.list_tokens += L.n_ids[i] + (i > 0);	/* the label and its ", " */
	}
	L.spec.n_labels = L.n;
	L.spec.labels = L.text;
	L.spec.list_labels = L.list_tokens <= LABEL_LIST_MAX_TOKENS;
	L.spec.answer_prefix = AnswerPrefix(m);
	return L;
}

/* Build the classification prompt around the text; arg is the Labels. */
static LmgenPrompt
ClassifyPrompt(LmgenModel *m, void *arg, const char *text, size_t len)
{
	return ClassifyPromptBuild(m, &((Labels *) arg)->spec, text, len);
}

/* The classification prompt about a text, fitted to the context with room for the longest label. */
static LmgenPrompt
LabelPrompt(LmgenModel *m, Labels *L, const char *text, size_t len)
{
	return FitPrompt(m, ClassifyPrompt, L, text, len, L->max_ids, "the longest label", "use shorter labels", 3);
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
	lm_lognorm	z;

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
	z = lm_lognorm_of(last, m->model->cfg.n_vocab);
	for (int k = 0; k < L->n; k++)
		first[k] = lm_logprob(last, z, L->ids[k][0]);
}

/*
 * Scoring the labels after one prompt.  A label's score is the
 * log-probability of its first token after the prompt, plus that of each
 * further token after the prompt and the label's tokens before it: the
 * logits after every proper prefix of the label are needed.  Labels that
 * begin alike share those prefixes (a token trie: "topic 12" and "topic
 * 13" share " topic", " " and "1"), so each distinct prefix is evaluated
 * once, in a sequence that shares the KV blocks of its parent prefix, and
 * its logits serve every label through it.
 *
 * Arithmetic: attention sums a token's values in an order that depends on
 * whether other tokens of its sequence share its batch (model_ops.c, to
 * match llama.cpp's prefill).  A label of n >= 3 tokens used to be
 * evaluated as one run of n - 1 tokens; to give bit-identical results,
 * every prefix of such labels is evaluated as a pair (its parent's last
 * token again, then its own), never alone.  Labels of 2 tokens evaluate
 * their first token alone, as before; labels of 1 token need nothing
 * beyond the prompt.  Per position, the log-softmax normaliser is computed
 * once for all the labels scored there, and each label's terms are added
 * in token order, as before.
 *
 * Memory: a group of at most LABEL_GROUP sibling prefixes goes through one
 * batch (2 tokens each); a prefix's sequence lives while its children are
 * scored, so sequences in use are at most LABEL_GROUP per token of the
 * longest label, each holding one or two blocks of its own.
 */
typedef struct TrieScorer
{
	LmgenModel *m;
	lm_context *ctx;
	lm_batch   *b;
	Labels	   *L;
	int			n_prompt;		/* positions of the prompt */
	int		   *order;			/* labels of >= 3 tokens, sorted by token ids */
	double	   *score;			/* per label, accumulating */
	int		   *free_seq;		/* stack of unused sequence ids */
	int			n_free_seq;
} TrieScorer;

/* Sort labels by their token ids (a shorter label first when one is a prefix of the other). */
static int
CompareLabelIds(const void *a, const void *b, void *arg)
{
	Labels	   *L = arg;
	int			x = *(const int *) a,
				y = *(const int *) b;

	for (int j = 0; j < L->n_ids[x] && j < L->n_ids[y]; j++)
		if (L->ids[x][j] != L->ids[y][j])
			return L->ids[x][j] < L->ids[y][j] ? -1 : 1;
	return L->n_ids[x] - L->n_ids[y];
}

/* Take a free sequence id. */
static int
TakeSeq(TrieScorer *ts)
{
	if (ts->n_free_seq == 0)
		elog(ERROR, "classify ran out of sequence ids");
	return ts->free_seq[--ts->n_free_seq];
}

/* Forget a sequence and return its id. */
static void
PutSeq(TrieScorer *ts, int seq)
{
	lm_kv_seq_clear(lm_context_kv(ts->ctx), seq);
	ts->free_seq[ts->n_free_seq++] = seq;
}

/* Add log p(label's token j | row) to each label order[lo..hi). */
static void
AddTerms(TrieScorer *ts, const float *row, int lo, int hi, int j)
{
	lm_lognorm	z = lm_lognorm_of(row, ts->m->model->cfg.n_vocab);

	for (int i = lo; i < hi; i++)
	{
		int			k = ts->order[i];

		ts->score[k] += lm_logprob(row, z, ts->L->ids[k][j]);
	}
}

/* One child of a prefix: labels order[lo..hi) continue it by one token. */
typedef struct TrieChild
{
	int			lo,
				hi;				/* its labels (all longer than the child) */
	int			seq;			/* the sequence that evaluated it */
	int			row;			/* batch index of its own token */
	int			n_run;			/* its tokens in the batch: 1, or the rest of its only label */
} TrieChild;

/*
 * Score the labels order[lo..hi), which share the prefix X of length j and
 * are all longer than j: evaluate each child prefix X + t as the pair
 * (X[j-1], t) in a sequence sharing the first n_prompt + j - 1 positions of
 * src; the child's logits come from its second token, and, for X of one
 * token (never evaluated as a child), X's from the first pair's first;
 * then recurse into children that have children.  A child that only one
 * label goes through is evaluated with the rest of that label in one run
 * (X's last token, then the label's tokens up to its last but one): the
 * same arithmetic as pairs, fewer tokens.
 */
static void
ExpandPrefix(TrieScorer *ts, int lo, int hi, int j, int src)
{
	Labels	   *L = ts->L;
	int			pos = ts->n_prompt + j - 1;
	bool		x_done = j > 1;	/* a longer X had its logits as its parent's child */
	TrieChild	group[LABEL_GROUP];
	int			i = lo;

	/* labels that end after X's next token need only X's logits: they sort first in each run */
	while (i < hi)
	{
		int			n_group = 0;
		int			x_row = -1;

		CHECK_FOR_INTERRUPTS();
		lm_batch_clear(ts->b);
		while (i < hi && n_group < LABEL_GROUP)
		{
			int32		t = L->ids[ts->order[i]][j];
			int			a = i,
						e = i,
						c,
						n_tok;
			TrieChild  *ch = &group[n_group];

			while (e < hi && L->ids[ts->order[e]][j] == t)
				e++;
			for (c = a; c < e && L->n_ids[ts->order[c]] < j + 2; c++)
				;
			/* one label below: the rest of it as one run, else the pair */
			n_tok = e - c == 1 ? L->n_ids[ts->order[c]] - j : 2;
			if (c < e && ts->b->n_tokens > 0 && ts->b->n_tokens + n_tok > 2 * LABEL_GROUP)
				break;			/* in the next batch */
			i = e;
			if (c == e)
				continue;		/* no label goes past this token: not a prefix */
			ch->lo = c;
			ch->hi = e;
			ch->n_run = n_tok - 1;
			ch->seq = TakeSeq(ts);
			if (!lm_kv_seq_share(lm_context_kv(ts->ctx), src, ch->seq, pos))
				elog(ERROR, "could not share %d positions with label sequence %d", pos, ch->seq);
			if (!x_done && x_row < 0)
				x_row = ts->b->n_tokens;
			lm_batch_add(ts->b, L->ids[ts->order[c]][j - 1], pos, ch->seq, x_row == ts->b->n_tokens);
			ch->row = ts->b->n_tokens;
			for (int r = 0; r < ch->n_run; r++)
				lm_batch_add(ts->b, L->ids[ts->order[c]][j + r], pos + 1 + r, ch->seq, true);
			n_group++;
		}
		if (n_group == 0)
			break;
		RunForward(ts->m, ts->ctx, ts->b);
		if (x_row >= 0)
		{
			AddTerms(ts, lm_context_logits(ts->ctx, x_row), lo, hi, j);
			x_done = true;
		}
		/* the children's logits first: the batch's logits go with the next forward pass */
		for (int g = 0; g < n_group; g++)
			for (int r = 0; r < group[g].n_run; r++)
				AddTerms(ts, lm_context_logits(ts->ctx, group[g].row + r), group[g].lo, group[g].hi, j + 1 + r);
		/* children without children of their own give their blocks back first */
		for (int g = 0; g < n_group; g++)
		{
			int			c = group[g].hi;	/* a run scored its label to the end */

			if (group[g].n_run == 1)
				for (c = group[g].lo; c < group[g].hi && L->n_ids[ts->order[c]] < j + 3; c++)
					;
			group[g].lo = c;
			if (c == group[g].hi)
				PutSeq(ts, group[g].seq);
		}
		for (int g = 0; g < n_group; g++)
			if (group[g].lo < group[g].hi)
			{
				ExpandPrefix(ts, group[g].lo, group[g].hi, j + 1, group[g].seq);
				PutSeq(ts, group[g].seq);
			}
	}
}

/*
 * Labels of exactly 2 tokens: their first token alone after the prompt in
 * sequence seq, one sequence per distinct first token, LABEL_GROUP per
 * batch.
 */
static void
ScoreTwoTokenLabels(TrieScorer *ts, int seq, int *two, int n_two)
{
	Labels	   *L = ts->L;
	int			rows[LABEL_GROUP],
				lo[LABEL_GROUP],
				seqs[LABEL_GROUP];
	int			i = 0;

	ts->order = two;
	while (i < n_two)
	{
		int			n_group = 0;

		CHECK_FOR_INTERRUPTS();
		lm_batch_clear(ts->b);
		for (; i < n_two && n_group < LABEL_GROUP; n_group++)
		{
			int32		t = L->ids[two[i]][0];

			lo[n_group] = i;
			while (i < n_two && L->ids[two[i]][0] == t)
				i++;
			seqs[n_group] = TakeSeq(ts);
			if (!lm_kv_seq_share(lm_context_kv(ts->ctx), seq, seqs[n_group], ts->n_prompt))
				elog(ERROR, "could not share the prompt with label sequence %d", seqs[n_group]);
			rows[n_group] = ts->b->n_tokens;
			lm_batch_add(ts->b, t, ts->n_prompt, seqs[n_group], true);
		}
		RunForward(ts->m, ts->ctx, ts->b);
		for (int g = 0; g < n_group; g++)
		{
			AddTerms(ts, lm_context_logits(ts->ctx, rows[g]), lo[g], g + 1 < n_group ? lo[g + 1] : i, 1);
			PutSeq(ts, seqs[g]);
		}
	}
}

/*
 * Score every label after the prompt in sequence seq (n_prompt positions),
 * starting from first[k], the log-probability of each label's first token;
 * sequences n_seq0 .. n_seq0 + n_spare - 1 are free for the labels.
 */
static void
ScoreAfterPrompt(LmgenModel *m, lm_context *ctx, lm_batch *b, int seq, int n_prompt, int n_seq0,
				 int n_spare, Labels *L, const double *first, double *score)
{
	TrieScorer	ts = {m, ctx, b, L, n_prompt, NULL, score, palloc(sizeof(int) * n_spare), 0};
	int		   *two = palloc(sizeof(int) * L->n),
			   *more = palloc(sizeof(int) * L->n);
	int			n_two = 0,
				n_more = 0;

	for (int s = n_spare - 1; s >= 0; s--)
		ts.free_seq[ts.n_free_seq++] = n_seq0 + s;
	for (int k = 0; k < L->n; k++)
	{
		score[k] = first[k];
		if (L->n_ids[k] == 2)
			two[n_two++] = k;
		else if (L->n_ids[k] > 2)
			more[n_more++] = k;
	}
	qsort_arg(two, n_two, sizeof(int), CompareLabelIds, L);
	qsort_arg(more, n_more, sizeof(int), CompareLabelIds, L);
	if (n_two > 0)
		ScoreTwoTokenLabels(&ts, seq, two, n_two);
	if (n_more > 0)
	{
		/* each distinct first token is a prefix X of length 1 with children */
		ts.order = more;
		for (int i = 0; i < n_more;)
		{
			int			a = i;

			while (i < n_more && L->ids[more[i]][0] == L->ids[more[a]][0])
				i++;
			ExpandPrefix(&ts, a, i, 1, seq);
		}
	}
	pfree(two);
	pfree(more);
	pfree(ts.free_seq);
}

/*
 * KV bytes of scoring L after prompts (at most): every prompt unshared; the
 * prefixes alive while their children are scored (a group per token of the
 * longest label, and never more than the labels plus that depth), two
 * blocks of their own each; and one group in flight, whose runs may hold a
 * whole label each.
 */
static size_t
ScoringKvBytes(LmgenModel *m, const Labels *L, const LmgenPrompt *prompt, int n_prompts)
{
	int			n_blocks = 0;

	for (int t = 0; t < n_prompts; t++)
		n_blocks += (prompt[t].n + LM_KV_BLOCK - 1) / LM_KV_BLOCK;
	n_blocks += 2 * Min(LABEL_GROUP * L->max_ids, L->n + L->max_ids) +
		LABEL_GROUP * (1 + (L->max_ids + LM_KV_BLOCK - 1) / LM_KV_BLOCK);
	return (size_t) n_blocks * lm_kv_block_bytes(m->model);
}

/*
 * Log-likelihood of each label as the answer to each of n_texts prompts
 * (score[t][k]).  The prompts are evaluated first, each in a sequence of
 * its own, sharing their common beginning (the instruction and the label
 * list) with the first; then the labels are scored after each prompt in
 * turn.  KV memory: the prompts (their shared part once) plus one group of
 * labels.
 */
static double **
ScoreLabels(LmgenModel *m, int n_texts, const LmgenPrompt *prompt, Labels *L)
{
	double	  **score = palloc(sizeof(double *) * n_texts);
	double	  **first = palloc(sizeof(double *) * n_texts);
	int			max_prompt = 0,
				n_spare;
	RuntimeCall call;
	lm_batch   *b;
	EngineResource *res;

	for (int t = 0; t < n_texts; t++)
	{
		max_prompt = Max(max_prompt, prompt[t].n);
		score[t] = palloc0(sizeof(double) * L->n);
		first[t] = palloc(sizeof(double) * L->n);
	}
	n_spare = LABEL_GROUP * L->max_ids;
	call = RuntimeBegin(m, n_texts + n_spare, ScoringKvBytes(m, L, prompt, n_texts), "this classification");
	b = lm_batch_create(Max(max_prompt, Max(2 * LABEL_GROUP, L->max_ids)));
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
		ScoreAfterPrompt(m, call.ctx, b, t, prompt[t].n, n_texts, n_spare, L, first[t], score[t]);
		lm_kv_seq_clear(lm_context_kv(call.ctx), t);
	}
	ReleaseEngineResource(res);
	RuntimeEnd(&call);
	return score;
}

/* Baseline scores of a model file, label list and descriptions, kept for the next calls. */
typedef struct BaselineCache
{
	char	   *key;			/* model file, its size and mtime, labels and descriptions, NUL-separated */
	size_t		key_len;
	double	   *score;			/* one per label */
} BaselineCache;

/* The examples query's rows, read once per query (fn_extra of the calling function). */
typedef struct ExamplesCache
{
	char	   *key;			/* examples query, labels and retrieval model the pool was read for */
	size_t		key_len;
	ClassifyExamples *pool;		/* its rows */
} ExamplesCache;

/* The last baseline computed in this process (TopMemoryContext). */
static BaselineCache baseline;

/* Content-free text whose label scores are the baseline. */
#define CONTENT_FREE_TEXT "N/A"

/*
 * The examples of the query in argument examples_arg (its rows read, and
 * embedded when retrieval is by embedding, once per query and kept in
 * fn_extra) most like the text, chosen into spec: (text, label) rows of
 * the n labels, or with labels NULL (summarize()) (text, summary) rows.
 */
ClassifyPromptSpec
ChooseExamples(FunctionCallInfo fcinfo, int examples_arg, int n, char **labels, const size_t *label_lens,
			   const char *body, size_t len)
{
	ExamplesCache *cache;
	ClassifyExamples *pool;
	ClassifyPromptSpec spec = {0};
	StringInfoData key;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(examples_arg));
	const char *model = ClassifyRetrievalModel();

	initStringInfo(&key);
	appendStringInfoString(&key, query);
	appendStringInfoChar(&key, '\0');
	if (model)
		appendStringInfoString(&key, model);
	for (int k = 0; k < n; k++)
	{
		appendStringInfoChar(&key, '\0');
		appendBinaryStringInfo(&key, labels[k], label_lens[k]);
	}
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ExamplesCache));
	cache = fcinfo->flinfo->fn_extra;
	if (cache->pool == NULL || cache->key_len != (size_t) key.len || memcmp(cache->key, key.data, key.len) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		/* a query's examples are read once; the earlier pool stays until the query ends */
		cache->pool = NULL;
		pool = ClassifyReadExamples(query, n, labels);
		if (model)
			ClassifyEmbedExamples(pool, model);
		cache->pool = pool;
		cache->key = palloc(key.len);
		memcpy(cache->key, key.data, key.len);
		cache->key_len = key.len;
		MemoryContextSwitchTo(old);
	}
	spec.n_labels = n;
	spec.labels = labels;
	spec.pool = cache->pool;
	ClassifyChooseShots(&spec, body, len);
	return spec;
}

/*
 * The optional arguments into the call: descriptions (a text[], one per
 * label) and the examples most like this text (ChooseExamples).
 */
static void
ClassifyOptions(FunctionCallInfo fcinfo, int desc_arg, int examples_arg, LmgenCall *c)
{
	ClassifyPromptSpec spec;
	int			n = c->n_strings;

	c->extra = palloc(sizeof(char *) * (n + CLASSIFY_EXAMPLES_K + 1));
	c->extra_lens = palloc(sizeof(size_t) * (n + CLASSIFY_EXAMPLES_K + 1));
	if (!PG_ARGISNULL(desc_arg))
	{
		char	  **desc = ClassifyDescriptions(PG_GETARG_ARRAYTYPE_P(desc_arg), n);

		for (int k = 0; k < n; k++)
		{
			c->extra[c->n_extra] = desc[k];
			c->extra_lens[c->n_extra++] = strlen(desc[k]);
		}
		c->opt[LMGEN_OPT_DESCRIPTIONS] = 1;
	}
	if (PG_ARGISNULL(examples_arg))
		return;
	spec = ChooseExamples(fcinfo, examples_arg, n, c->strings, c->string_lens, c->body, c->body_len);
	StaticAssertStmt(LMGEN_OPT_SHOT_LABEL + CLASSIFY_EXAMPLES_K <= LMGEN_CALL_OPTS, "room for the shots' labels");
	for (int i = 0; i < spec.n_shots; i++)
	{
		c->extra[c->n_extra] = spec.pool->text[spec.shots[i]];
		c->extra_lens[c->n_extra++] = strlen(spec.pool->text[spec.shots[i]]);
		c->opt[LMGEN_OPT_SHOT_LABEL + i] = spec.pool->label[spec.shots[i]];
	}
	c->opt[LMGEN_OPT_N_SHOTS] = spec.n_shots;
	StaticAssertStmt(LMGEN_OPT_SHOT_LABEL + CLASSIFY_EXAMPLES_K <= LMGEN_OPT_VOTE_WEIGHT, "vote weight after the shots");
	c->opt[LMGEN_OPT_VOTE_WEIGHT] = (int32) rint(lmgen_classify_vote_weight * 1000.0);
}

/* The call's descriptions and chosen examples into the prompt spec (the examples as a pool of their own). */
static void
SpecFromCall(const LmgenCall *c, Labels *L)
{
	int			at = 0;
	int			n_shots = c->opt[LMGEN_OPT_N_SHOTS];
	ClassifyExamples *pool;

	if (c->opt[LMGEN_OPT_DESCRIPTIONS])
	{
		if (c->n_extra < L->n)
			elog(ERROR, "classify call has %d descriptions for %d labels", c->n_extra, L->n);
		L->spec.descriptions = c->extra;
		at = L->n;
	}
	if (n_shots <= 0)
		return;
	if (n_shots > CLASSIFY_EXAMPLES_K || c->n_extra != at + n_shots)
		elog(ERROR, "classify call has a malformed example list");
	pool = palloc0(sizeof(ClassifyExamples));
	pool->n = n_shots;
	pool->text = c->extra + at;
	pool->label = palloc(sizeof(int) * n_shots);
	for (int i = 0; i < n_shots; i++)
	{
		pool->label[i] = c->opt[LMGEN_OPT_SHOT_LABEL + i];
		if (pool->label[i] < 0 || pool->label[i] >= L->n)
			elog(ERROR, "classify call has an example with label %d of %d", pool->label[i], L->n);
		L->spec.shots[i] = i;
	}
	L->spec.n_shots = n_shots;
	L->spec.pool = pool;
}

/* The baseline cache's key: the model file (path, size, mtime), labels and descriptions. */
static StringInfo
BaselineKey(LmgenModel *m, const Labels *L)
{
	StringInfo	key = makeStringInfo();

	appendStringInfo(key, "%s%c%lld%c%lld.%ld", m->path, '\0', (long long) m->size, '\0',
					 (long long) m->mtime.tv_sec, (long) m->mtime.tv_nsec);
	for (int k = 0; k < L->n; k++)
	{
		appendStringInfoChar(key, '\0');
		appendBinaryStringInfo(key, L->text[k], L->len[k]);
		if (L->spec.descriptions)
		{
			appendStringInfoChar(key, '\1');
			appendStringInfoString(key, L->spec.descriptions[k]);
		}
	}
	return key;
}

/* A copy of the cached baseline for key (n labels), or NULL when the cache holds another. */
static double *
BaselineLookup(StringInfo key, int n)
{
	double	   *copy;

	if (baseline.key == NULL || baseline.key_len != (size_t) key->len ||
		memcmp(baseline.key, key->data, key->len) != 0)
		return NULL;
	copy = palloc(sizeof(double) * n);
	memcpy(copy, baseline.score, sizeof(double) * n);
	return copy;
}

/* Keep the baseline scores of key (n labels) for the next calls, in place of the last. */
static void
BaselineKeep(StringInfo key, const double *score, int n)
{
	if (baseline.key)
	{
		pfree(baseline.key);
		pfree(baseline.score);
		baseline.key = NULL;
	}
	baseline.score = MemoryContextAlloc(TopMemoryContext, sizeof(double) * n);
	memcpy(baseline.score, score, sizeof(double) * n);
	baseline.key = MemoryContextAlloc(TopMemoryContext, key->len);
	memcpy(baseline.key, key->data, key->len);
	baseline.key_len = key->len;
}

/*
 * Plan a classify call's scoring: its labels and the prompts to score, the
 * content-free baseline's first when the cache (for the model file, labels
 * and descriptions) misses, the body's last.  Scored together in local
 * mode, their prompts share the label list.  With examples the scores are
 * not calibrated: a content-free text with the row's examples favours
 * exactly the examples' labels, so subtracting its scores cancels what the
 * examples say (on 32 Debian rows, SmolLM2 stayed at the zero-shot 0.28
 * that way).  ERROR as the call would raise (labels, prompt, KV memory).
 */
ClassifyScoring *
ClassifyScoringOf(LmgenModel *m, const LmgenCall *c)
{
	ClassifyScoring *cs = palloc0(sizeof(ClassifyScoring));
	Labels	   *L = palloc(sizeof(Labels));

	*L = ReadLabels(m, c);
	SpecFromCall(c, L);
	cs->labels = L;
	cs->n_labels = L->n;
	cs->label_ids = L->ids;
	cs->label_n_ids = L->n_ids;
	cs->vote_weight = c->opt[LMGEN_OPT_VOTE_WEIGHT] / 1000.0;
	if (!L->spec.pool)
	{
		cs->key = BaselineKey(m, L);
		cs->baseline = BaselineLookup(cs->key, L->n);
		if (cs->baseline == NULL)
			cs->prompt[cs->n_prompts++] = LabelPrompt(m, L, CONTENT_FREE_TEXT, strlen(CONTENT_FREE_TEXT));
	}
	cs->prompt[cs->n_prompts++] = LabelPrompt(m, L, c->body, c->body_len);
	CheckKvMemory(ScoringKvBytes(m, L, cs->prompt, cs->n_prompts), "this classification");
	return cs;
}

/* Keep a classify call's baseline scores (its first prompt's, when it has two) for the next calls. */
void
ClassifyBaselineScored(ClassifyScoring *cs, const double *score)
{
	if (cs->n_prompts == 2)
		BaselineKeep(cs->key, score, cs->n_labels);
}

/*
 * Finish a classify call from its prompts' label scores (in plan order):
 * calibrate (zero-shot) or add the examples' vote, cache the baseline, append.
 */
void
ClassifyFinish(ClassifyScoring *cs, double **score, StringInfo out)
{
	double	   *body = score[cs->n_prompts - 1];
	Labels	   *L = cs->labels;

	if (cs->n_prompts == 2)
	{
		BaselineKeep(cs->key, score[0], cs->n_labels);
		cs->baseline = score[0];
	}
	if (cs->baseline)
		for (int k = 0; k < cs->n_labels; k++)
			body[k] -= cs->baseline[k];
	/* the examples' vote: a prior of the weight times each label's share of them */
	for (int i = 0; i < L->spec.n_shots; i++)
		body[L->spec.pool->label[L->spec.shots[i]]] += cs->vote_weight / L->spec.n_shots;
	appendBinaryStringInfo(out, (const char *) body, sizeof(double) * cs->n_labels);
}

/* Execute a classify call in this process: the calibrated score of each label (doubles). */
void
ClassifyExecute(LmgenModel *m, const LmgenCall *c, StringInfo out)
{
	ClassifyScoring *cs = ClassifyScoringOf(m, c);

	ClassifyFinish(cs, ScoreLabels(m, cs->n_prompts, cs->prompt, cs->labels), out);
}

/* A classify() call from its arguments; false for a NULL body or labels (NULL result). */
bool
ClassifyCallOf(FunctionCallInfo fcinfo, LmgenCall *c)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return false;
	*c = CallInit(LMGEN_CALL_CLASSIFY, ClassifyModelNameFor(ModelNameArg(fcinfo, 2)));
	/* empty labels get ReadLabels' message, where the worker checks them too */
	c->strings = TextArrayToUtf8(PG_GETARG_ARRAYTYPE_P(1), "label", true, &c->n_strings, &c->string_lens);
	c->body = TextToUtf8(PG_GETARG_TEXT_PP(0), &c->body_len);
	ClassifyOptions(fcinfo, 3, 4, c);
	return true;
}

/* The label scores in a classify call's result bytes (one double per label). */
static const double *
ClassifyScoresIn(const LmgenCall *c, StringInfo res)
{
	if (res->len != (int) (sizeof(double) * c->n_strings))
		elog(ERROR, "classify returned %d bytes for %d labels", res->len, c->n_strings);
	return (const double *) res->data;
}

/* The result of classify(): the label with the highest score. */
Datum
ClassifyResult(const LmgenCall *c, StringInfo res)
{
	const double *score = ClassifyScoresIn(c, res);
	int			best = 0;

	for (int k = 1; k < c->n_strings; k++)
		if (score[k] > score[best])
			best = k;
	return PointerGetDatum(Utf8ToText(c->strings[best], c->string_lens[best]));
}

/*
 * classify(body text, labels text[], model text, descriptions text[],
 *          examples text) RETURNS text: the most likely label.
 */
Datum
lmgen_classify(PG_FUNCTION_ARGS)
{
	return CallFunction(fcinfo, ClassifyCallOf, ClassifyResult);
}

/*
 * classify(bodies text[], labels text[], ...same optional arguments...)
 * RETURNS text[]: the most likely label of each text, the texts run together.
 */
Datum
lmgen_classify_array(PG_FUNCTION_ARGS)
{
	return CallArrayFunction(fcinfo, ClassifyCallOf, ClassifyResult);
}

/*
 * classify_scores(body text, labels text[], model text, descriptions text[],
 *                 examples text) RETURNS TABLE(label text, probability real)
 */
Datum
lmgen_classify_scores(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LmgenCall	c;
	const double *score;
	double		mx,
				sum = 0.0;

	StringInfoData res;

	InitMaterializedSRF(fcinfo, 0);
	if (!ClassifyCallOf(fcinfo, &c))
		return (Datum) 0;
	initStringInfo(&res);
	CallRun(&c, &res);
	score = ClassifyScoresIn(&c, &res);
	mx = score[0];
	for (int k = 1; k < c.n_strings; k++)
		mx = Max(mx, score[k]);
	for (int k = 0; k < c.n_strings; k++)
		sum += exp(score[k] - mx);
	for (int k = 0; k < c.n_strings; k++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = PointerGetDatum(Utf8ToText(c.strings[k], c.string_lens[k]));
		values[1] = Float4GetDatum((float4) (exp(score[k] - mx) / sum));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * lmgen.classify_examples(body text, labels text[], examples text)
 * RETURNS TABLE(rank int, text text, label text, similarity float8): the
 * examples classify() writes into the prompt for body, most similar first,
 * as the prompt has them (cut to CLASSIFY_EXAMPLE_WORDS words), with the
 * similarity they were chosen by (cosine, or Jaccard for word overlap).
 */
Datum
lmgen_classify_examples(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LmgenCall	c;
	ClassifyPromptSpec spec;

	InitMaterializedSRF(fcinfo, 0);
	c = CallInit(LMGEN_CALL_CLASSIFY, NULL);
	c.strings = TextArrayToUtf8(PG_GETARG_ARRAYTYPE_P(1), "label", true, &c.n_strings, &c.string_lens);
	if (c.n_strings == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("labels must not be empty"),
				 errhint("Pass the candidate classes, for example ARRAY['positive', 'negative'].")));
	c.body = TextToUtf8(PG_GETARG_TEXT_PP(0), &c.body_len);
	spec = ChooseExamples(fcinfo, 2, c.n_strings, c.strings, c.string_lens, c.body, c.body_len);
	for (int i = 0; i < spec.n_shots; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		const char *text = spec.pool->text[spec.shots[i]];
		int			k = spec.pool->label[spec.shots[i]];

		values[0] = Int32GetDatum(i + 1);
		values[1] = PointerGetDatum(Utf8ToText(text, strlen(text)));
		values[2] = PointerGetDatum(Utf8ToText(c.strings[k], c.string_lens[k]));
		values[3] = Float8GetDatum(spec.shot_sim[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
