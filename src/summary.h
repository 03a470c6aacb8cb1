/*
 * summary.h — what summarize() does around the model call: the styles, the
 * prompt of each, the decoding settings (word limit, stop strings, copy
 * bias toward the source) and the shaping of the answer (complete phrase,
 * headline, bullet lines).
 */
#ifndef LMGEN_SUMMARY_H
#define LMGEN_SUMMARY_H

#include "postgres.h"

#include "fmgr.h"

#include "call.h"
#include "generate.h"
#include "runtime.h"

/* The form of a summary. */
typedef enum SummaryStyle
{
	SUMMARY_SENTENCE,			/* one complete sentence (default) */
	SUMMARY_HEADLINE,			/* a terse noun phrase, like a package synopsis */
	SUMMARY_BULLETS				/* up to three "- " lines */
} SummaryStyle;

#define SUMMARY_DEFAULT_MAX_WORDS 20
#define SUMMARY_MAX_MAX_WORDS 1000

/* One summarize() call's settings. */
typedef struct SummaryRequest
{
	SummaryStyle style;			/* form of the answer */
	int			max_words;		/* words at most (decoding stops there) */
	int			n_shots;		/* headline examples chosen for the text (0: the built-in three) */
	char	  **shots;			/* their text and summary in turn, most similar first */
	int			n_candidates;	/* generations the answer is chosen among (1: the greedy one alone) */
} SummaryRequest;

/* Examples written into a headline prompt when they are retrieved per row. */
#define SUMMARY_EXAMPLES_K 4

/* The style named by a style argument; ERROR naming the choices otherwise. */
extern SummaryStyle SummaryStyleFromName(const char *name);

/* ERROR unless max_words lies in 1..SUMMARY_MAX_MAX_WORDS. */
extern void CheckMaxWords(int max_words);

/*
 * The (text, summary) examples of the query in argument examples_arg most
 * like the source, into the call's extra strings (headlines only: ERROR
 * for another style).
 */
extern void SummaryChooseExamples(FunctionCallInfo fcinfo, int examples_arg, LmgenCall *c);

/* The source with its whitespace normalised (hard-wrapped lines joined), palloc'd. */
extern char *SummarySource(const char *body, size_t len, size_t *out_len);

/* PromptBuilder for summarize(): arg is the SummaryRequest. */
extern LmgenPrompt SummaryPrompt(LmgenModel *m, void *arg, const char *text, size_t len);

/*
 * Decoding settings of each of a summary's r->n_candidates generations,
 * into p[0..]: stop strings for its style, the word limit, and the copy
 * bias toward the tokens of src (ids palloc'd; they must live until the
 * generations start); p[0] greedy, the others sampled with fixed seeds.
 */
extern void SummaryDecoding(LmgenModel *m, const SummaryRequest *r, const char *src, size_t len,
							lm_gen_params *p);

/*
 * The generations a headline of model m is chosen among: setting
 * (lmgen.headline_candidates) when positive, else (0, auto) by the cost of
 * a generated token against a prompt token on m.
 */
extern int	SummaryCandidates(LmgenModel *m, int setting);

/* Words a summary's generation stops at: max_words, for a headline at most a few more than it keeps. */
extern int	SummaryGeneratedWords(const SummaryRequest *r);

/*
 * The summary from its n generations (texts, lens; limits: the word and
 * token limits they ran under), in its style and
 * ending at a complete phrase (palloc'd; length in *len): the one answer
 * shaped, or with several candidates the one agreeing most with the others
 * and with the source's first sentence (summary_select.h).  An answer that
 * shapes to nothing gives way to the beginning of src in the same style.
 */
extern char *SummaryChoose(LmgenModel *m, const SummaryRequest *r, const lm_gen_params *limits, const char *src,
						   size_t src_len, const char *const *texts, const size_t *lens, int n, size_t *len);

#endif							/* LMGEN_SUMMARY_H */
