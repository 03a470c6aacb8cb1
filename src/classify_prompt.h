/*
 * classify_prompt.h — what classify() tells the model: the instruction with
 * the label list (and a description per label when given), few-shot
 * examples retrieved per row from a query (by embedding, classify_embed.c,
 * or by word overlap), and the text.  The same retrieval chooses the
 * (text, summary) examples of summarize(..., style => 'headline',
 * examples => ...) (summary.c).
 */
#ifndef LMGEN_CLASSIFY_PROMPT_H
#define LMGEN_CLASSIFY_PROMPT_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "runtime.h"

/* Examples per row (the k most similar). */
#define CLASSIFY_EXAMPLES_K 4

/* Words of an example's text written into the prompt, at most. */
#define CLASSIFY_EXAMPLE_WORDS 40

/* Labelled examples read from the examples query, with their word sets or embeddings. */
typedef struct ClassifyExamples
{
	int			n;				/* examples */
	char	  **text;			/* UTF-8 text, cut to CLASSIFY_EXAMPLE_WORDS words */
	int		   *label;			/* index into the call's labels */
	uint32	  **words;			/* sorted distinct word hashes of each text */
	int		   *n_words;		/* counts */
	char	  **answer;			/* summarize(): each text's summary, one line (NULL for classify) */
	char	  **source;			/* whole UTF-8 text of each example (what is embedded) */
	size_t	   *source_len;		/* byte lengths */
	const char *model;			/* embedding model retrieving them, NULL: word overlap */
	int			dim;			/* its embedding width */
	float	   *emb;			/* n x dim embeddings of the whole texts (NULL: word overlap) */
} ClassifyExamples;

/* Everything the prompt says besides the text. */
typedef struct ClassifyPromptSpec
{
	int			n_labels;		/* labels */
	char	  **labels;			/* UTF-8, NUL-terminated */
	bool		list_labels;	/* write the label list (false when it is too long) */
	char	  **descriptions;	/* one per label, or NULL */
	const char *answer_prefix;	/* the text the label is scored after */
	const ClassifyExamples *pool;	/* examples to choose from, or NULL */
	int			shots[CLASSIFY_EXAMPLES_K]; /* examples chosen for the current text */
	double		shot_sim[CLASSIFY_EXAMPLES_K];	/* their similarity to it, highest first */
	int			n_shots;		/* count */
} ClassifyPromptSpec;

/*
 * Descriptions from a text[] argument, one per label: ERROR if the count
 * differs or one is NULL.  NULL array: no descriptions.
 */
extern char **ClassifyDescriptions(ArrayType *arr, int n_labels);

/*
 * Read the examples query (text, label) through SPI as the calling user;
 * rows whose label is not one of the call's labels, or with a NULL, are
 * skipped; ERROR if none is left.  Allocated in CurrentMemoryContext.
 * With labels NULL (summarize()), the query returns (text, summary) and
 * every row without a NULL is kept, its summary in answer (label -1).
 */
extern ClassifyExamples *ClassifyReadExamples(const char *query, int n_labels, char **labels);

/*
 * Choose the CLASSIFY_EXAMPLES_K examples most similar to the text into
 * spec->shots: by cosine of embeddings when the pool has them, else by word
 * overlap; equal similarity goes to the earlier row of the query.
 */
extern void ClassifyChooseShots(ClassifyPromptSpec *spec, const char *text, size_t len);

/* Examples a pool embedded by retrieval may hold, at most (memory: 1.5 kB each with minilm). */
#define CLASSIFY_MAX_EMBEDDED_EXAMPLES 100000

/*
 * The registry name of the model that examples are retrieved with
 * (lmgen.classify_retrieval, lmgen.default_embedding_model), or NULL for
 * word overlap; ERROR when the setting asks for embeddings and no
 * embedding model is registered (classify_embed.c).
 */
extern const char *ClassifyRetrievalModel(void);

/*
 * Embed the pool's whole texts with model into ex->emb (ex->model, ex->dim
 * set): an encoder in this backend, another model through embed calls;
 * texts this backend embedded with the same model file for the last pool
 * are not embedded again (classify_embed.c).
 */
extern void ClassifyEmbedExamples(ClassifyExamples *ex, const char *model);

/* The embedding (dim floats, palloc'd) of a text with model (classify_embed.c). */
extern float *ClassifyEmbedText(const char *model, const char *text, size_t len, int dim);

/*
 * The examples of the query in argument examples_arg most like the text
 * (body, len), read and embedded once per query and call site (fn_extra):
 * (text, label) rows of the n labels, or with labels NULL (summarize()'s
 * headlines) (text, summary) rows (sqlfuncs_classify.c).
 */
extern ClassifyPromptSpec ChooseExamples(FunctionCallInfo fcinfo, int examples_arg, int n, char **labels,
										 const size_t *label_lens, const char *body, size_t len);

/* The classification prompt around a text (the answer prefix last). */
extern LmgenPrompt ClassifyPromptBuild(LmgenModel *m, const ClassifyPromptSpec *spec, const char *text,
									   size_t len);

#endif							/* LMGEN_CLASSIFY_PROMPT_H */
