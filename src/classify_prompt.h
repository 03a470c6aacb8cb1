/*
 * classify_prompt.h — what classify() tells the model: the instruction with
 * the label list (and a description per label when given), few-shot
 * examples retrieved per row from a query by word overlap, and the text.
 */
#ifndef LMGEN_CLASSIFY_PROMPT_H
#define LMGEN_CLASSIFY_PROMPT_H

#include "postgres.h"

#include "fmgr.h"
#include "runtime.h"

/* Examples per row (the k most similar by word overlap). */
#define CLASSIFY_EXAMPLES_K 4

/* Words of an example's text written into the prompt, at most. */
#define CLASSIFY_EXAMPLE_WORDS 40

/* Labelled examples read from the examples query, with their word sets. */
typedef struct ClassifyExamples
{
	int			n;				/* examples */
	char	  **text;			/* UTF-8 text, cut to CLASSIFY_EXAMPLE_WORDS words */
	int		   *label;			/* index into the call's labels */
	uint32	  **words;			/* sorted distinct word hashes of each text */
	int		   *n_words;		/* counts */
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
 */
extern ClassifyExamples *ClassifyReadExamples(const char *query, int n_labels, char **labels);

/* Choose the CLASSIFY_EXAMPLES_K examples most similar to the text into spec->shots. */
extern void ClassifyChooseShots(ClassifyPromptSpec *spec, const char *text, size_t len);

/* The classification prompt around a text (the answer prefix last). */
extern LmgenPrompt ClassifyPromptBuild(LmgenModel *m, const ClassifyPromptSpec *spec, const char *text,
									   size_t len);

#endif							/* LMGEN_CLASSIFY_PROMPT_H */
