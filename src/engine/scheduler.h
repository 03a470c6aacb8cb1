/*
 * scheduler.h — continuous batching over one context: requests (generate,
 * embed) wait in a queue, are admitted into the context's sequence slots
 * while KV memory allows, and every lm_sched_step() runs ONE forward pass
 * over all running sequences: the decode token of every generating sequence
 * first, then prefill chunks of prompts within the step's token budget.
 * Requests that arrive while others run join at the next step.  Scoring
 * requests (label log-likelihoods for classify) batch the same way.
 *
 * Same answers everywhere: a request's tokens, text and embedding are
 * byte-identical whether it runs alone, among any other requests, with any
 * step_tokens (chunked prefill), and to lm_generate() / lm_embed() on a
 * context of its own: the forward pass keeps a fixed reduction order per
 * token that depends only on the token's own sequence and on whether it is
 * a prompt or a generated token (context.h), and each request has its own
 * sampler and RNG.
 *
 * KV memory: a request is admitted only when the worst case of its
 * positions (prompt + max_tokens, at most n_ctx; the prompt for an embed)
 * fits in the context's KV budget (lm_context_set_kv_budget) beside the
 * worst cases of the running ones, so a running sequence never fails for
 * lack of blocks; otherwise it waits (first come, first served).  A request
 * whose worst case exceeds the whole budget, or whose prompt does not fit
 * the context, fails at submit with a message.  A sequence's blocks go back
 * to the pool when it ends or is cancelled (but the prompt prefix a request
 * that ended well may leave for later ones, below).
 *
 * Shared prompt prefixes (share_prefixes, on by default): a request starts
 * from the longest prefix of its prompt whose KV another running request
 * has computed, or a finished one left in an idle sequence slot, sharing
 * those blocks (lm_kv_seq_share) and evaluating only the rest (always at
 * least its last prompt token).  Requests admitted together whose common
 * prefix (16 tokens or more) nobody has computed yet let the oldest compute
 * it and start from it once it is computed.  Embeddings evaluate their whole
 * prompt (they pool every position) but others may start from theirs.
 * Kept prefixes never make a request wait: they are dropped when a slot or
 * KV memory is needed.  Results are the same bits with sharing on or off.
 *
 * Threads: an lm_sched is not thread-safe; one thread makes all calls (the
 * engine's own threads run inside lm_sched_step).  The scheduler owns
 * sequences 0..max_seqs-1 of the context it borrows; nothing else may use
 * them while it lives.
 */
#ifndef LM_SCHEDULER_H
#define LM_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "generate.h"
#include "tokenizer.h"

/* Sizes of a scheduler. */
typedef struct lm_sched_params
{
	int			max_seqs;		/* sequences running at once (<= the context's n_seq_max); 0 = n_seq_max */
	int			step_tokens;	/* token budget of one forward pass: every running decode token first,
								 * then prefill chunks of waiting prompts fill the rest; 0 = 256.
								 * Keep it above max_seqs, or prompts wait while every slot decodes */
	bool		share_prefixes; /* reuse the KV of prompt prefixes computed by other requests (and kept
								 * from finished ones); results are identical either way */
} lm_sched_params;

typedef struct lm_sched lm_sched;

/* What a request computes. */
typedef enum lm_sched_kind
{
	LM_SCHED_GENERATE = 0,		/* text generation (lm_gen_params) */
	LM_SCHED_EMBED,				/* mean-pooled, L2-normalised final hidden states (lm_embed_pool) */
	LM_SCHED_SCORE				/* log-likelihood of each of several continuations (labels) */
} lm_sched_kind;

/* How a request ended. */
typedef enum lm_sched_status
{
	LM_SCHED_OK = 0,			/* finished normally */
	LM_SCHED_CANCELLED = 1,		/* lm_sched_cancel() (the text keeps what was produced) */
	LM_SCHED_ERROR = -1			/* failed; err holds the message */
} lm_sched_status;

/* A finished request, as lm_sched_take_finished() hands it out. */
typedef struct lm_sched_result
{
	int64_t		id;				/* the id submit returned */
	lm_sched_kind kind;			/* what it computed */
	lm_sched_status status;		/* how it ended */
	char		err[256];		/* message when status is LM_SCHED_ERROR */
	const char *text;			/* generate: text, NUL-terminated (stop string excluded) */
	size_t		len;			/* generate: bytes of text */
	const int32_t *tokens;		/* generate: generated ids (a final EOG included) */
	int			n_tokens;		/* generate: count */
	lm_gen_stop reason;			/* generate: why it ended */
	const float *embedding;		/* embed: n_embd floats */
	int			n_embd;			/* embed: count */
	const double *scores;		/* score: log p(label | prompt) of each label, in submit order */
	int			n_scores;		/* score: count */
	int			n_prompt;		/* prompt tokens */
	int			n_reused;		/* of which shared from another request's KV instead of evaluated */
	double		queue_s;		/* seconds from submit to admission */
	double		run_s;			/* seconds from admission to the end */
} lm_sched_result;

/* Cumulative counters of a scheduler and its KV memory now. */
typedef struct lm_sched_stats
{
	int64_t		steps;			/* forward passes run */
	int64_t		prompt_tokens;	/* prompt tokens evaluated */
	int64_t		prompt_tokens_reused;	/* prompt positions shared from computed prefixes instead */
	int64_t		prefix_evictions;	/* kept prefixes dropped to make room for running requests */
	int			prefixes_cached;	/* prefixes of finished requests kept now (their blocks count in kv_in_use) */
	int64_t		generated_tokens;	/* tokens sampled */
	int64_t		seqs_sum;		/* sum over steps of the sequences in the step */
	int			seqs_max;		/* most sequences in one step */
	int64_t		finished;		/* requests finished (any status) */
	int64_t		cancelled;		/* of which cancelled */
	int64_t		errors;			/* of which failed */
	size_t		kv_reserved;	/* bytes of KV blocks the running requests may use (worst case) */
	size_t		kv_in_use;		/* bytes of KV blocks referenced now */
	size_t		kv_budget;		/* the context's KV budget (0 = no limit) */
	size_t		kv_block_bytes; /* bytes of one block */
} lm_sched_stats;

/* Defaults: every sequence slot of the context, 256 tokens per step, shared prefixes. */
extern lm_sched_params lm_sched_default_params(void);

/*
 * A scheduler over ctx (borrowed; it must outlive the scheduler) whose
 * generations detokenize with tok (borrowed; NULL = ids only, no text, no
 * stop strings).  NULL with a message for bad parameters or out of memory.
 */
extern lm_sched *lm_sched_create(lm_context *ctx, const lm_tokenizer *tok, const lm_sched_params *p,
								 char *err, size_t errlen);

/* Free a scheduler, its requests and results, and clear its sequences; NULL is allowed. */
extern void lm_sched_free(lm_sched *s);

/*
 * Queue a generation after prompt (n ids, usually starting with BOS).
 * Copies everything it needs (ids, parameters, stop strings).  Returns an
 * id >= 0, or -1 with a message (bad ids or parameters, a prompt that does
 * not fit the context, a worst case beyond the KV budget, out of memory).
 */
extern int64_t lm_sched_submit_generate(lm_sched *s, const int32_t *prompt, int n,
										const lm_gen_params *p, char *err, size_t errlen);

/* Queue an embedding of prompt (n ids); as lm_sched_submit_generate. */
extern int64_t lm_sched_submit_embed(lm_sched *s, const int32_t *prompt, int n,
									 char *err, size_t errlen);

/*
 * Queue the scoring of n_labels continuations of prompt (n ids): label k is
 * the ids labels[k][0 .. n_ids[k]-1] (at least one), and its score the sum,
 * in token order, of log p(token j | prompt, tokens before j) (lm_logprob).
 * Label tokens evaluated after the prompt use the value order classify has
 * always used: the decode order for the first token of a two-token label,
 * the prompt order for the tokens of longer labels, so scores equal
 * sqlfuncs_classify.c's trie scorer bit for bit.  The labels are evaluated
 * one per step, each rewinding the sequence to the end of the prompt.
 * Copies everything; as lm_sched_submit_generate.
 */
extern int64_t lm_sched_submit_score(lm_sched *s, const int32_t *prompt, int n,
									 const int32_t *const *labels, const int *n_ids, int n_labels,
									 char *err, size_t errlen);

/*
 * Cancel a request: waiting or running, it finishes at once with status
 * LM_SCHED_CANCELLED and its KV blocks go back to the pool; finished or
 * unknown ids are ignored.
 */
extern void lm_sched_cancel(lm_sched *s, int64_t id);

/*
 * Admit waiting requests while sequence slots and KV memory allow, then run
 * one forward pass over every running sequence and advance them (sample,
 * detokenize, stop; accumulate embeddings).  Returns the tokens evaluated
 * (0 = nothing to do); -1 on an engine error (the requests of that step are
 * finished with the message, the scheduler stays usable); -2 when the
 * context's abort check stopped the pass (nothing changed: the running
 * sequences are back where they were and the next step redoes the work).
 */
extern int	lm_sched_step(lm_sched *s, char *err, size_t errlen);

/*
 * Take one finished request (the oldest); false when none.  Its pointers
 * stay valid until lm_sched_release(s, r->id) or lm_sched_free.
 */
extern bool lm_sched_take_finished(lm_sched *s, lm_sched_result *r);

/* Free a finished request (taken or not); waiting, running and unknown ids are ignored. */
extern void lm_sched_release(lm_sched *s, int64_t id);

/* Requests running (holding a sequence) and waiting for admission. */
extern int	lm_sched_n_running(const lm_sched *s);
extern int	lm_sched_n_waiting(const lm_sched *s);

/* Counters and KV memory. */
extern void lm_sched_get_stats(const lm_sched *s, lm_sched_stats *out);

#endif							/* LM_SCHEDULER_H */
