/*
 * classify_prompt.c — the classification prompt (see classify_prompt.h).
 *
 * For a chat model the prompt is one user turn: the instruction with the
 * label list, a "label: description" line per label when descriptions are
 * given, the chosen examples as "Text: ... / Answer: label" pairs, the
 * text, and "Answer with the category only."; the assistant's answer then
 * begins with the answer prefix, after which each label is scored.  A
 * model without a chat format gets the same parts as plain text.
 *
 * Examples are retrieved per row by embedding when the pool has
 * embeddings (classify_embed.c: the highest cosine between the row's
 * embedding and each example's), else by word overlap: each text is
 * reduced to the set of hashes of its lowercased words of three letters or
 * more, and the examples with the highest Jaccard similarity to the row's
 * set are written in.  Either way ties go to the earlier row of the query,
 * so the choice is deterministic.  Example texts are cut to
 * CLASSIFY_EXAMPLE_WORDS words to keep the prompt short.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "classify_prompt.h"
#include "hash.h"
#include "lmgen.h"
#include "sqlfuncs_common.h"
#include "train_sql.h"

/* Descriptions from a text[] argument, one per label. */
char	  **
ClassifyDescriptions(ArrayType *arr, int n_labels)
{
	int			count;
	char	  **out = TextArrayToUtf8(arr, "description", true, &count, NULL);

	if (count != n_labels)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%d descriptions for %d labels", count, n_labels),
				 errhint("Pass one description per label, in the order of the labels.")));
	return out;
}

/* Compare two uint32 for qsort. */
static int
CompareUint32(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a,
				y = *(const uint32 *) b;

	return x < y ? -1 : x > y;
}

/* Sorted distinct hashes of the lowercased ASCII-alphanumeric words (3+ bytes) of a text. */
static uint32 *
WordSet(const char *s, size_t len, int *n)
{
	uint32	   *h = palloc(sizeof(uint32) * (len / 2 + 1));
	int			k = 0,
				w = 0;
	char		word[64];
	int			wl = 0;

	for (size_t i = 0; i <= len; i++)
	{
		char		c = i < len ? s[i] : ' ';

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c & 0x80))
		{
			if (wl < (int) sizeof(word))
				word[wl++] = (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
			continue;
		}
		if (wl >= 3)
			h[k++] = (uint32) lm_hash(LM_HASH_INIT, word, wl);
		wl = 0;
	}
	qsort(h, k, sizeof(uint32), CompareUint32);
	for (int i = 0; i < k; i++)
		if (w == 0 || h[w - 1] != h[i])
			h[w++] = h[i];
	*n = w;
	return h;
}

/* Size of the intersection of two sorted sets. */
static int
Overlap(const uint32 *a, int na, const uint32 *b, int nb)
{
	int			i = 0,
				j = 0,
				c = 0;

	while (i < na && j < nb)
	{
		if (a[i] == b[j])
			c++, i++, j++;
		else if (a[i] < b[j])
			i++;
		else
			j++;
	}
	return c;
}

/* The first max_words words of a text, whitespace collapsed. */
static char *
FirstWords(const char *s, size_t len, int max_words)
{
	StringInfoData buf;
	int			words = 0;
	size_t		i = 0;

	initStringInfo(&buf);
	while (i < len && words < max_words)
	{
		size_t		a;

		while (i < len && isspace((unsigned char) s[i]))
			i++;
		a = i;
		while (i < len && !isspace((unsigned char) s[i]))
			i++;
		if (i > a)
		{
			if (words++ > 0)
				appendStringInfoChar(&buf, ' ');
			appendBinaryStringInfo(&buf, s + a, i - a);
		}
	}
	if (i < len && words == max_words)
		appendStringInfoString(&buf, " ...");
	return buf.data;
}

/* Collecting examples: the call's labels and the growing list. */
typedef struct ExampleReader
{
	ClassifyExamples *ex;
	int			cap;
	int		   *label_of;		/* LabelSet class -> call label index, -1 when not one */
	int			n_classes;		/* classes mapped so far */
	LabelSet   *classes;		/* labels met in the query */
	int			n_labels;
	char	  **labels;
	MemoryContext cxt;			/* where the examples live */
} ExampleReader;

/* Append an example's text to the list (in the reader's context); its index. */
static int
AppendExample(ExampleReader *r, const char *text, size_t len)
{
	ClassifyExamples *ex = r->ex;

	if (ex->n == r->cap)
	{
		r->cap *= 2;
		ex->text = repalloc_huge(ex->text, sizeof(char *) * r->cap);
		ex->label = repalloc_huge(ex->label, sizeof(int) * r->cap);
		ex->words = repalloc_huge(ex->words, sizeof(uint32 *) * r->cap);
		ex->n_words = repalloc_huge(ex->n_words, sizeof(int) * r->cap);
		ex->source = repalloc_huge(ex->source, sizeof(char *) * r->cap);
		ex->source_len = repalloc_huge(ex->source_len, sizeof(size_t) * r->cap);
		if (ex->answer)
			ex->answer = repalloc_huge(ex->answer, sizeof(char *) * r->cap);
	}
	ex->text[ex->n] = FirstWords(text, len, CLASSIFY_EXAMPLE_WORDS);
	ex->source[ex->n] = pnstrdup(text, len);
	ex->source_len[ex->n] = len;
	ex->label[ex->n] = -1;
	ex->words[ex->n] = WordSet(text, len, &ex->n_words[ex->n]);
	return ex->n++;
}

/* TextPairFn of summarize()'s examples: keep every row, its second column (a summary) as the answer. */
static void
AddSummaryExample(void *arg, const char *text, size_t len, const char *second, size_t second_len)
{
	ExampleReader *r = arg;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	char	   *answer = pg_server_to_any(second, second_len, PG_UTF8);
	int			i;

	/* the answer is written on one line after "Synopsis:" */
	answer = FirstWords(answer, strlen(answer), CLASSIFY_EXAMPLE_WORDS);
	i = AppendExample(r, text, len);
	r->ex->answer[i] = answer;
	MemoryContextSwitchTo(old);
}

/* LabelledRowFn: keep a row whose label is one of the call's. */
static void
AddExample(void *arg, const char *text, size_t len, int cls)
{
	ExampleReader *r = arg;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	while (r->n_classes < r->classes->n)
	{
		const char *name = r->classes->names[r->n_classes];

		r->label_of = repalloc(r->label_of, sizeof(int) * (r->n_classes + 1));
		r->label_of[r->n_classes] = -1;
		for (int k = 0; k < r->n_labels; k++)
			if (strcmp(name, r->labels[k]) == 0)
				r->label_of[r->n_classes] = k;
		r->n_classes++;
	}
	if (r->label_of[cls] >= 0)
		r->ex->label[AppendExample(r, text, len)] = r->label_of[cls];
	MemoryContextSwitchTo(old);
}

/* Read the examples query through SPI. */
ClassifyExamples *
ClassifyReadExamples(const char *query, int n_labels, char **labels)
{
	ExampleReader r;
	LabelSet	classes;
	RowCounts	counts;

	r.ex = palloc0(sizeof(ClassifyExamples));
	r.cap = 64;
	r.ex->text = palloc(sizeof(char *) * r.cap);
	r.ex->label = palloc(sizeof(int) * r.cap);
	r.ex->words = palloc(sizeof(uint32 *) * r.cap);
	r.ex->n_words = palloc(sizeof(int) * r.cap);
	r.ex->source = palloc(sizeof(char *) * r.cap);
	r.ex->source_len = palloc(sizeof(size_t) * r.cap);
	r.label_of = palloc(sizeof(int));
	r.n_classes = 0;
	r.n_labels = n_labels;
	r.labels = labels;
	r.cxt = CurrentMemoryContext;
	if (labels == NULL)
	{
		/* summarize(): (text, summary) rows, every one kept */
		r.ex->answer = palloc(sizeof(char *) * r.cap);
		ForEachTextPair("summarize examples", "(text, summary)", query, AddSummaryExample, &r, &counts);
		if (r.ex->n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the examples query returned no row with both a text and a summary"),
					 errdetail("It returned " INT64_FORMAT " rows, " INT64_FORMAT " with a NULL.",
							   counts.read, counts.skipped),
					 errhint("Return (text, summary) rows, e.g. 'SELECT body, summary FROM articles'.")));
		return r.ex;
	}
	LabelSetInit(&classes, PG_INT32_MAX);
	r.classes = &classes;
	ForEachLabelledRow("classify examples", query, &classes, AddExample, &r, &counts);
	if (r.ex->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the examples query returned no row labelled with one of the labels"),
				 errdetail("It returned " INT64_FORMAT " rows, " INT64_FORMAT " with a NULL.",
						   counts.read, counts.skipped),
				 errhint("Return (text, label) rows whose label is one of the labels passed.")));
	return r.ex;
}

/* Offer example i of similarity sim to the sorted top k in spec->shots (scores in spec->shot_sim). */
static void
KeepIfBest(ClassifyPromptSpec *spec, int i, double sim)
{
	double	   *best = spec->shot_sim;

	int			at = spec->n_shots;

	/* an equal score keeps the earlier row first */
	while (at > 0 && sim > best[at - 1])
		at--;
	if (at >= CLASSIFY_EXAMPLES_K)
		return;
	for (int j = Min(spec->n_shots, CLASSIFY_EXAMPLES_K - 1); j > at; j--)
	{
		best[j] = best[j - 1];
		spec->shots[j] = spec->shots[j - 1];
	}
	best[at] = sim;
	spec->shots[at] = i;
	spec->n_shots = Min(spec->n_shots + 1, CLASSIFY_EXAMPLES_K);
}

/* Choose the examples most similar to the text. */
void
ClassifyChooseShots(ClassifyPromptSpec *spec, const char *text, size_t len)
{
	const ClassifyExamples *ex = spec->pool;

	spec->n_shots = 0;
	if (ex->emb)
	{
		float	   *v = ClassifyEmbedText(ex->model, text, len, ex->dim);
		double		vv = 0.0;

		for (int e = 0; e < ex->dim; e++)
			vv += (double) v[e] * v[e];
		for (int i = 0; i < ex->n; i++)
		{
			const float *x = ex->emb + (size_t) i * ex->dim;
			double		dot = 0.0,
						xx = 0.0;

			/* cosine, summed in a fixed order: the same choice in every process */
			for (int e = 0; e < ex->dim; e++)
			{
				dot += (double) v[e] * x[e];
				xx += (double) x[e] * x[e];
			}
			KeepIfBest(spec, i, vv > 0 && xx > 0 ? dot / sqrt(vv * xx) : 0.0);
		}
		pfree(v);
	}
	else
	{
		int			n_words;
		uint32	   *words = WordSet(text, len, &n_words);

		for (int i = 0; i < ex->n; i++)
		{
			int			o = Overlap(words, n_words, ex->words[i], ex->n_words[i]);
			int			uni = n_words + ex->n_words[i] - o;

			KeepIfBest(spec, i, uni > 0 ? (double) o / uni : 0.0);
		}
		pfree(words);
	}
}

/* The classification prompt around a text. */
LmgenPrompt
ClassifyPromptBuild(LmgenModel *m, const ClassifyPromptSpec *spec, const char *text, size_t len)
{
	StringInfoData buf;
	bool		chat = m->chat_fallback != LM_CHAT_UNKNOWN;

	initStringInfo(&buf);
	if (!spec->list_labels)
	{
		/* too many labels to list: the instruction alone */
		if (chat)
			appendStringInfoString(&buf, "Classify the text into exactly one category.\n\n");
	}
	else
	{
		if (chat)
			appendStringInfoString(&buf, "Classify the text into exactly one of these categories: ");
		else
			appendStringInfoString(&buf, "Categories: ");
		for (int i = 0; i < spec->n_labels; i++)
		{
			if (i > 0)
				appendStringInfoString(&buf, ", ");
			appendStringInfoString(&buf, spec->labels[i]);
		}
		appendStringInfoString(&buf, ".\n\n");
		if (spec->descriptions)
		{
			for (int i = 0; i < spec->n_labels; i++)
				appendStringInfo(&buf, "%s: %s\n", spec->labels[i], spec->descriptions[i]);
			appendStringInfoChar(&buf, '\n');
		}
	}
	for (int i = 0; i < spec->n_shots; i++)
		appendStringInfo(&buf, "Text: %s\n%s %s\n\n", spec->pool->text[spec->shots[i]],
						 spec->answer_prefix, spec->labels[spec->pool->label[spec->shots[i]]]);
	appendStringInfoString(&buf, "Text: ");
	appendBinaryStringInfo(&buf, text, len);
	if (chat)
	{
		LmgenPrompt p;
		int			n_prefix;
		int32	   *ids;

		/* the chat prompt, then the start of the assistant's answer */
		appendStringInfoString(&buf, "\n\nAnswer with the category only.");
		p = BuildInstructionPrompt(m, NULL, buf.data, buf.len, true);
		ids = TokenizeText(m, spec->answer_prefix, strlen(spec->answer_prefix), false, false, &n_prefix);
		p.ids = repalloc(p.ids, sizeof(int32) * (p.n + n_prefix));
		memcpy(p.ids + p.n, ids, sizeof(int32) * n_prefix);
		p.n += n_prefix;
		return p;
	}
	appendStringInfo(&buf, "\n\n%s", spec->answer_prefix);
	return BuildInstructionPrompt(m, NULL, buf.data, buf.len, false);
}
