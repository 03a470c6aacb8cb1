/*
 * context.h — running a model: a context (KV cache, thread pool, scratch
 * buffers) and batches of tokens from any number of sequences.
 *
 * Memory: a context allocates its per-step scratch (sized by n_batch) when
 * it is created; cache blocks are taken from its pool as batches need them
 * (n_ctx only bounds a sequence's positions), up to a budget, and output
 * rows (logits, hidden states) grow with the outputs a batch asks for.
 * lm_context_trim() gives back what a finished call no longer needs.
 *
 * A batch lists tokens, each with its position, its sequence, what it
 * returns (logits and hidden state, the hidden state only, or nothing) and
 * whether it is a prompt token.  Prompt prefill, one-token decoding and
 * embeddings of several sequences can share one batch: every weight matrix
 * is read once per step for all of them, and the vocabulary projection runs
 * only for the tokens that want logits.  A token's outputs depend only on its
 * own sequence and on its prompt flag (kernels keep a fixed reduction order
 * per output element, the cache is per sequence, and the attention's value
 * order is chosen per token: see lm_batch.prefill), so they are bit-identical
 * alone or in any batch, and a prompt gives the same bits fed whole or in
 * chunks of any size.
 *
 * Positions of one sequence within a batch must be consecutive, in batch
 * order, and start at or before the sequence's cached length; starting before
 * it discards the cached positions from there on (rewind).
 */
#ifndef LM_CONTEXT_H
#define LM_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvcache.h"
#include "model.h"

struct lm_device_ops;
struct lm_device_model;

/* Sizes of a context. */
typedef struct lm_context_params
{
	int			n_ctx;			/* most positions per sequence; 0 = the model's context_length */
	int			n_seq_max;		/* sequence ids 0..n_seq_max-1; 0 = 1 */
	int			n_batch;		/* tokens per internal step (bigger batches are split); 0 = 512 */
	int			n_threads;		/* threads, the caller's included; 0 = 1 */

	/*
	 * A compute device (device.h), or NULL for the CPU.  With a device the
	 * forward passes run there on device_model (uploaded for at least
	 * n_batch tokens, n_seq_max sequences and n_ctx positions), the cache's
	 * blocks come from its KV pool (the budget is the pool; n_threads is
	 * unused), and the context holds no CPU scratch.  Encoders (bert) stay
	 * on the CPU: a device context for one is refused.
	 */
	const struct lm_device_ops *device;
	struct lm_device_model *device_model;
} lm_context_params;

/* What the forward pass returns for one token of a batch. */
typedef enum lm_out
{
	LM_OUT_NONE = 0,			/* nothing (the token only fills the cache) */
	LM_OUT_LOGITS = 1,			/* logits and final hidden state */
	LM_OUT_HIDDEN = 2			/* final hidden state only (no vocabulary projection) */
} lm_out;

/* Value order of a token's attention (lm_batch.prefill). */
#define LM_PREFILL_AUTO (-1)	/* prompt order when its sequence has another token in the batch */
#define LM_PREFILL_NO 0			/* a generated token, or a one-token prompt: decode order */
#define LM_PREFILL_YES 1		/* a token of a prompt of several tokens: prompt order */

/* Tokens to evaluate together. */
typedef struct lm_batch
{
	int			n_tokens;		/* tokens in use */
	int			n_max;			/* capacity */
	int32_t    *token;			/* (n_max) token ids */
	int32_t    *pos;			/* (n_max) positions in their sequence */
	int32_t    *seq_id;			/* (n_max) sequence slots */
	int8_t	   *out;			/* (n_max) lm_out: what to return for this token */
	int8_t	   *prefill;		/* (n_max) LM_PREFILL_*: the attention's value order (model_ops.h,
								 * lm_op_value_lanes); explicit values make a prompt's results
								 * independent of how it is cut into batches */
} lm_batch;

typedef struct lm_context lm_context;

/* Called between internal steps of a long batch; returning true stops the forward pass. */
typedef bool (*lm_abort_fn) (void *arg);

/* Default parameters (all zeros resolve to the defaults above). */
extern lm_context_params lm_context_default_params(void);

/* Create a context for model m (borrowed); NULL with a message on failure. */
extern lm_context *lm_context_create(const lm_model *m, const lm_context_params *p,
									 char *err, size_t errlen);

/* Free a context; NULL is allowed. */
extern void lm_context_free(lm_context *ctx);

/*
 * Join the context's engine threads (none run between forward passes
 * afterwards); the next forward pass starts them again.  NULL is allowed.
 */
extern void lm_context_stop_threads(lm_context *ctx);

/* The model, cache and resolved sizes of a context (n_batch: tokens per internal step). */
extern const lm_model *lm_context_model(const lm_context *ctx);
extern lm_kv *lm_context_kv(lm_context *ctx);
extern int	lm_context_n_ctx(const lm_context *ctx);
extern int	lm_context_n_seq_max(const lm_context *ctx);
extern int	lm_context_n_threads(const lm_context *ctx);
extern int	lm_context_n_batch(const lm_context *ctx);

/*
 * Install (or clear with NULL) an abort check: lm_model_forward runs it on
 * the calling thread before each of its pool jobs (a few per layer) and
 * stops when it returns true.
 */
extern void lm_context_set_abort(lm_context *ctx, lm_abort_fn fn, void *arg);

/* Cap the bytes of KV cache blocks the context may hold (0 = no limit; on a device, at most its pool). */
extern void lm_context_set_kv_budget(lm_context *ctx, size_t bytes);

/*
 * Give back memory a finished call no longer needs: free cache blocks no
 * sequence uses while more than kv_keep bytes are held, and output rows
 * beyond a few (lm_context_logits/hidden of the last batch are then gone).
 * Returns the bytes freed.
 */
extern size_t lm_context_trim(lm_context *ctx, size_t kv_keep);

/* Bytes the context holds for cache blocks and output rows (its fixed scratch excluded). */
extern size_t lm_context_dynamic_bytes(const lm_context *ctx);

/*
 * Evaluate a batch: append its tokens to their sequences' caches and compute
 * the outputs (lm_out) of the tokens that ask for them.  Cache blocks for every
 * position the batch writes are reserved first.  Returns 0 on success; -1
 * with a message for an invalid batch, or when the cache would exceed its
 * budget or memory runs out (nothing changed); -2 when the abort check
 * stopped it (the sequences in the batch are then in an undefined state:
 * clear or rewind them).
 */
extern int	lm_model_forward(lm_context *ctx, const lm_batch *b, char *err, size_t errlen);

/*
 * Reserve the cache blocks a batch (valid for lm_model_forward) will write,
 * as lm_model_forward does first: rewind each of its sequences to where the
 * batch starts it and give it writable blocks (copies of shared ones it
 * writes into).  False with a message when over the budget or out of memory
 * (nothing changed).  Lets a caller make room (drop cached sequences) before
 * the pass; lm_model_forward reserving the same batch again changes nothing.
 */
extern bool lm_context_reserve_kv(lm_context *ctx, const lm_batch *b, char *err, size_t errlen);

/* Logits (n_vocab floats) of batch token i from the last forward; NULL unless it asked for LM_OUT_LOGITS. */
extern const float *lm_context_logits(const lm_context *ctx, int i);

/*
 * Greedy token of batch token i from the last forward (the lowest id among
 * equal maximal logits, lm_argmax); -1 unless it asked for LM_OUT_LOGITS.
 * A device computes it beside the logits; on the CPU it is computed from
 * them here, so both answer the same.
 */
extern int32_t lm_context_argmax(const lm_context *ctx, int i);

/* The device a context runs on (its ops table), or NULL for the CPU. */
extern const struct lm_device_ops *lm_context_device(const lm_context *ctx);

/* Final hidden state (n_embd floats, after the output norm) of batch token i; NULL if it asked for none. */
extern const float *lm_context_hidden(const lm_context *ctx, int i);

/* Allocate a batch for up to n_max tokens; NULL on failure. */
extern lm_batch *lm_batch_create(int n_max);

/* Free a batch; NULL is allowed. */
extern void lm_batch_free(lm_batch *b);

/* Empty a batch. */
extern void lm_batch_clear(lm_batch *b);

/* Append one token (logits or nothing, value order LM_PREFILL_AUTO); false when the batch is full. */
extern bool lm_batch_add(lm_batch *b, int32_t token, int32_t pos, int32_t seq_id, bool logits);

/* Append one token with its output kind and LM_PREFILL_* value order; false when the batch is full. */
extern bool lm_batch_add_token(lm_batch *b, int32_t token, int32_t pos, int32_t seq_id, lm_out out,
							   int prefill);

#endif							/* LM_CONTEXT_H */
