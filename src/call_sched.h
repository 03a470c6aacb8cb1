/*
 * call_sched.h — a model call on a model's engine scheduler (lm_sched),
 * shared by the background worker (worker.c) and local-mode batches
 * (call_batch.c): submit the call's requests, take its finished scheduler
 * results, and produce its result bytes or its ERROR.
 *
 * A generate or summarize call is one generation request per generation it
 * runs (CallGenerations: a headline chooses among several, which share the
 * prompt's KV through the scheduler's shared prefixes); an embed call of
 * a decoder model one embed request; a classify call one score request per
 * prompt it plans (ClassifyScoringOf: the content-free baseline's when not
 * cached, then the body's).  A classify call whose baseline another call
 * of the same scheduler is scoring right now waits instead of scoring it
 * again ("deferred"): its owner submits it again once that baseline is
 * cached, so a batch of classify calls with the same labels scores the
 * baseline once, as the per-row calls do.
 *
 * Encoder models (bert) have no scheduler: EncoderEmbedCalls runs many
 * embed calls in one EncoderEmbedTexts batch.
 */
#ifndef LMGEN_CALL_SCHED_H
#define LMGEN_CALL_SCHED_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/elog.h"

#include "call.h"
#include "scheduler.h"

/* A call on a scheduler. */
typedef struct SchedCall
{
	const LmgenCall *call;		/* the call (its owner keeps it) */
	LmgenModel *m;				/* its model */
	lm_sched   *sched;			/* the scheduler it runs in */
	int64		sched_id;		/* its request there (classify: the body's scores; generate,
								 * summarize: the first generation's), or -1 */
	int64		gen_ids[LMGEN_MAX_GENERATIONS];	/* generate, summarize: each generation's request */
	int			n_gen;			/* their count (0 for classify and embed) */
	char	   *gen_texts[LMGEN_MAX_GENERATIONS];	/* their texts once taken (NULL before) */
	size_t		gen_lens[LMGEN_MAX_GENERATIONS];	/* and lengths */
	int			n_gen_taken;	/* texts taken */
	int64		base_id;		/* classify: the baseline's score request, or -1 */
	bool		deferred;		/* classify: waits for a baseline another call is scoring */
	ClassifyScoring *classify;	/* classify: the planned scoring, or NULL */
	double	   *scores[2];		/* classify: label scores of each prompt, in plan order, once taken */
	int64		prompt_tokens;	/* prompt tokens evaluated */
	int64		generated_tokens;	/* tokens generated */
	double		queue_s;		/* seconds its last request waited in the scheduler's queue */
} SchedCall;

/*
 * Submit call c of model m to sched, whose KV pool holds pool_bytes (named
 * pool_setting in the error when a generation cannot fit it).  False when
 * the call is deferred (submit it again later); ERROR as the call would
 * raise (labels, prompt, KV memory), its requests then cancelled.
 */
extern bool SchedCallSubmit(SchedCall *sc, const LmgenCall *c, LmgenModel *m, lm_sched *sched,
							size_t pool_bytes, const char *pool_setting);

/* True when a deferred call may be submitted again (the baseline it waits for is in). */
extern bool SchedCallMayResubmit(const SchedCall *sc);

/* True when scheduler request id is one of sc's. */
extern bool SchedCallOwns(const SchedCall *sc, int64 id);

/*
 * Take sc's finished scheduler result res (the caller releases it); true
 * when the call is complete, its result bytes appended to out.  ERROR when
 * the request failed or the result cannot be shaped.
 */
extern bool SchedCallTake(SchedCall *sc, const lm_sched_result *res, StringInfo out);

/* Cancel sc's requests still waiting or running (never fails). */
extern void SchedCallCancel(SchedCall *sc);

/* Forget what this module keeps about a scheduler that is being freed. */
extern void SchedCallsForget(lm_sched *sched);

/*
 * Run n embed calls of encoder model m together (one EncoderEmbedTexts
 * batch): call i's result bytes appended to out[i], or its error in
 * errors[i] (copied; NULL when it succeeded).  Should the batch fail, the
 * calls run one by one so that each gets the error it would get alone.  A
 * cancel is raised at once.
 */
extern void EncoderEmbedCalls(LmgenModel *m, const LmgenCall *const *calls, int n, StringInfo *out,
							  ErrorData **errors);

/*
 * Run fn(arg) catching an ERROR: NULL when it returned, else the error
 * (copied into the current memory context, error state flushed).  A cancel
 * or timeout (SQLSTATE 57014) is re-raised, never caught.  With scratch,
 * fn runs in a memory context of its own, deleted when it returns or fails,
 * so the engine state it tied to it is released at once (what fn returns
 * must live in other contexts).
 */
extern ErrorData *CatchCallError(void (*fn) (void *arg), void *arg, bool scratch);

/* One call to run alone with its model open (RunCallAlone's argument). */
typedef struct CallAlone
{
	LmgenModel *m;
	const LmgenCall *call;
	StringInfo	out;
} CallAlone;

/* Run one call alone with its model open (CatchCallError's fn; arg is a CallAlone). */
extern void RunCallAlone(void *arg);

#endif							/* LMGEN_CALL_SCHED_H */
