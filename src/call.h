/*
 * call.h — one model call (generate, summarize, classify, embed) described
 * as plain data, so that the same execution code runs it in the calling
 * backend (local mode) or in the background worker (worker mode).
 *
 * Each SQL function parses and validates its arguments in the backend into
 * an LmgenCall, then CallRun() either opens the model and executes the call
 * right there, or resolves the model to its file (registry read as the
 * caller, path confined as always) and hands the call to the worker
 * (request.c), which executes it with the same functions and sends the
 * result back.  The result is bytes whose meaning depends on the kind.
 */
#ifndef LMGEN_CALL_H
#define LMGEN_CALL_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"

#include "generate.h"
#include "lmgen.h"
#include "model_cache.h"
#include "runtime.h"

/* What a call computes; its result bytes. */
typedef enum LmgenCallKind
{
	LMGEN_CALL_GENERATE,		/* generate(): UTF-8 text */
	LMGEN_CALL_SUMMARIZE,		/* summarize(): UTF-8 text */
	LMGEN_CALL_CLASSIFY,		/* classify(), classify_scores(): one double per label (calibrated log-likelihood) */
	LMGEN_CALL_EMBED			/* embed(): the model's n_embd floats */
} LmgenCallKind;

/* Generations one call may run after its prompt (summarize() headline candidates). */
#define LMGEN_MAX_GENERATIONS LMGEN_MAX_HEADLINE_CANDIDATES

/* Slots of LmgenCall.opt. */
#define LMGEN_CALL_OPTS 8
#define LMGEN_OPT_MAX_WORDS 0	/* summarize: max_words */
#define LMGEN_OPT_STYLE 1		/* summarize: SummaryStyle */
#define LMGEN_OPT_SUMMARY_SHOTS 2	/* summarize: (text, summary) example pairs in extra, most similar first */
#define LMGEN_OPT_CANDIDATES 3	/* summarize: lmgen.headline_candidates for a headline (0: by the model), else 1 */
#define LMGEN_OPT_DESCRIPTIONS 0	/* classify: 1 when extra starts with one description per label */
#define LMGEN_OPT_N_SHOTS 1		/* classify: examples chosen for the text (their texts end extra) */
#define LMGEN_OPT_SHOT_LABEL 2	/* classify: label index of example k in opt[LMGEN_OPT_SHOT_LABEL + k] */
#define LMGEN_OPT_VOTE_WEIGHT 6	/* classify: lmgen.classify_vote_weight in thousandths */

/* A call with its validated arguments and the caller's settings it depends on. */
typedef struct LmgenCall
{
	LmgenCallKind kind;
	char	   *model_name;		/* the model as the caller named it (NULL: default); set to the registry name by CallRun */
	char	   *model_path;		/* its file, resolved as the caller (worker mode) */
	int			context_overflow;	/* the caller's lmgen.context_overflow */
	int			max_kv_memory;	/* the caller's lmgen.max_kv_memory, MB */
	char	   *body;			/* the text argument, UTF-8 (not NUL-terminated) */
	size_t		body_len;
	lm_gen_params gen;			/* generate, summarize: max_tokens, sampling (stop from strings) */
	char	  **strings;		/* generate: stop strings; classify: labels; UTF-8, NUL-terminated */
	size_t	   *string_lens;	/* their byte lengths */
	int			n_strings;
	char	  **extra;			/* classify: label descriptions, then the chosen examples' texts;
								 * summarize: the chosen examples' text and summary, in turn */
	size_t	   *extra_lens;		/* their byte lengths */
	int			n_extra;
	int32		opt[LMGEN_CALL_OPTS];	/* small per-kind settings (LMGEN_OPT_*) */
} LmgenCall;

/* A classify call's scoring, planned: the prompts whose label scores ClassifyFinish turns into the result. */
typedef struct ClassifyScoring
{
	struct Labels *labels;		/* the labels and prompt spec (sqlfuncs_classify.c) */
	int			n_labels;		/* count */
	int32	  **label_ids;		/* token ids of each label */
	int		   *label_n_ids;	/* their counts */
	LmgenPrompt prompt[2];		/* the content-free baseline's when not cached, then the body's */
	int			n_prompts;		/* 1 or 2 */
	StringInfo	key;			/* baseline cache key (NULL: not calibrated, with examples) */
	double	   *baseline;		/* the cached baseline (NULL: to be scored, or not calibrated) */
	double		vote_weight;	/* prior the examples' labels get (lmgen.classify_vote_weight) */
} ClassifyScoring;

/* Parse a model function's SQL arguments into a call; false when its result is NULL without a call. */
typedef bool (*CallArgsFn) (FunctionCallInfo fcinfo, LmgenCall *c);

/* The SQL result of a finished call from its result bytes. */
typedef Datum (*CallResultFn) (const LmgenCall *c, StringInfo res);

/* A call of kind with the caller's settings and no arguments yet. */
extern LmgenCall CallInit(LmgenCallKind kind, const char *model_name);

/*
 * Run the call in this backend or in the worker (lmgen.execution) and
 * return its result bytes (palloc'd) in out; ERROR as the call would raise.
 */
extern void CallRun(LmgenCall *c, StringInfo out);

/* A model function's body: its arguments into a call, run it, its SQL result. */
extern Datum CallFunction(FunctionCallInfo fcinfo, CallArgsFn args, CallResultFn result);

/* Execute the call with an open model, appending the result to out (both modes). */
extern void CallExecute(LmgenModel *m, const LmgenCall *c, StringInfo out);

/* The prompt of a generate or summarize call (the worker's scheduler path). */
extern LmgenPrompt CallPrompt(LmgenModel *m, const LmgenCall *c);

/* Generations a generate or summarize call of model m runs after its one prompt (1..LMGEN_MAX_GENERATIONS). */
extern int	CallGenerations(LmgenModel *m, const LmgenCall *c);

/* The decoding settings of each of the n = CallGenerations(c) generations of a call, into p[] (both modes). */
extern void CallDecodings(LmgenModel *m, const LmgenCall *c, int n, lm_gen_params *p);

/* Append a generate/summarize call's result given the text of each of its n generations. */
extern void CallFinishText(LmgenModel *m, const LmgenCall *c, const char *const *texts, const size_t *lens, int n,
						   StringInfo out);

/* Serialize a call (its model resolved) into buf. */
extern void CallSerialize(const LmgenCall *c, StringInfo buf);

/* Read a call from bytes made by CallSerialize (pointers into data or palloc'd); ERROR when malformed. */
extern LmgenCall CallDeserialize(const char *data, size_t len);

/* True when calls go to the background worker (preloaded, lmgen.execution = 'worker'). */
extern bool CallsUseWorker(void);

/* Per-function arguments and results (sqlfuncs_*.c), shared by the per-row and batched paths. */
extern bool GenerateCallOf(FunctionCallInfo fcinfo, LmgenCall *c);
extern bool SummarizeCallOf(FunctionCallInfo fcinfo, LmgenCall *c);
extern Datum TextResult(const LmgenCall *c, StringInfo res);
extern bool ClassifyCallOf(FunctionCallInfo fcinfo, LmgenCall *c);
extern Datum ClassifyResult(const LmgenCall *c, StringInfo res);
extern bool EmbedCallOf(FunctionCallInfo fcinfo, LmgenCall *c);
extern Datum EmbedResult(const LmgenCall *c, StringInfo res);

/* Per-kind execution (sqlfuncs_*.c), shared by both modes. */
extern LmgenPrompt GeneratePromptOf(LmgenModel *m, const LmgenCall *c);
extern LmgenPrompt SummarizePromptOf(LmgenModel *m, const LmgenCall *c);
extern int	SummarizeGenerationsOf(LmgenModel *m, const LmgenCall *c);
extern void SummarizeDecodingOf(LmgenModel *m, const LmgenCall *c, int n, lm_gen_params *p);
extern void SummarizeFinish(LmgenModel *m, const LmgenCall *c, const char *const *texts, const size_t *lens, int n,
							StringInfo out);
extern void ClassifyExecute(LmgenModel *m, const LmgenCall *c, StringInfo out);
extern ClassifyScoring *ClassifyScoringOf(LmgenModel *m, const LmgenCall *c);
extern void ClassifyFinish(ClassifyScoring *cs, double **score, StringInfo out);
extern void ClassifyBaselineScored(ClassifyScoring *cs, const double *score);
extern void EmbedExecute(LmgenModel *m, const LmgenCall *c, StringInfo out);
extern LmgenPrompt EmbedPromptOf(LmgenModel *m, const char *s, size_t len);

/* In the background worker: the cancel flag of the call it is running, else NULL (worker.c). */
extern volatile bool *lmgen_call_cancel;

/* Run a call in the background worker (request.c). */
extern void RequestRun(const LmgenCall *c, StringInfo out);

/* Run n calls in the background worker at once; ERROR of the first failing call in array order (request.c). */
extern void RequestRunBatch(const LmgenCall *calls, int n, StringInfo *out);

#endif							/* LMGEN_CALL_H */
