/*
 * context_impl.h — the inside of an lm_context, shared by context.c (set-up,
 * batches, matmul dispatch) and the per-architecture forward passes
 * (model_llama.c, model_gemma3.c, model_ops.c).  Not for other callers.
 */
#ifndef LM_CONTEXT_IMPL_H
#define LM_CONTEXT_IMPL_H

#include "context.h"
#include "device.h"
#include "threads.h"

/* A context: cache, threads and the scratch of one step of up to n_batch tokens. */
struct lm_context
{
	const lm_model *model;		/* borrowed */
	lm_kv	   *kv;				/* paged F32 cache (kvcache.h) */
	lm_pool    *pool;			/* n_threads workers */
	int			n_ctx;			/* most positions per sequence */
	int			n_seq_max;		/* sequence ids */
	int			n_batch;		/* tokens per step */
	int			n_threads;		/* pool size */
	int			n_tasks;		/* tasks of every pool job (lm_ctx_run) */
	lm_abort_fn abort_fn;		/* checked before every pool job, may be NULL */
	void	   *abort_arg;		/* its argument */
	bool		aborted;		/* abort_fn said stop: the step's remaining jobs are skipped */
	bool		bert_f32;		/* an encoder's products in F32 instead of 13-bit integers (lm_bert_set_f32) */
	bool		serial;			/* run every job on the calling thread as one task (model_bert.c's thread groups) */
	lm_context **groups;		/* (n_threads - 1) one-thread contexts an encoder's other thread groups use, or NULL */
	int			n_groups_run;	/* thread groups of the last lm_bert_embed call (1: passes split across threads) */

	/* a compute device (context.h, lm_context_params.device), or NULL */
	const lm_device_ops *dev;	/* its functions */
	lm_device_model *dev_model; /* the model's weights and KV pool there */
	lm_device_batch dev_batch;	/* the call being built; its arrays below */
	int32_t    *dev_row_of_seq; /* (n_seq_max) sequence -> row of the call, or -1 */
	int32_t    *dev_rows;		/* (3 * n_batch) seq_row, out_row, logit_row */
	int8_t	   *dev_prefill;	/* (n_batch) resolved value order */
	uint64_t   *dev_table;		/* (n_batch * blocks of n_ctx) compact block tables */

	/* scratch of one step (row-major, one row per token) */
	float	   *x;				/* (n_batch, n_embd) residual stream */
	float	   *xb;				/* (n_batch, n_embd) normalised input of a block */
	float	   *xb2;			/* (n_batch, n_embd) output of a projection */
	float	   *q;				/* (n_batch, n_head * head_dim_k) queries */
	float	   *k;				/* (n_batch, n_head_kv * head_dim_k) new keys */
	float	   *v;				/* (n_batch, n_head_kv * head_dim_v) new values */
	float	   *att;			/* (n_batch, n_head * head_dim_v) attention output */
	float	   *hb;				/* (n_batch, n_ff) gate, then silu(gate) * up */
	float	   *hb2;			/* (n_batch, n_ff) up */
	float	   *rope_cs;		/* (n_batch, n_rot) cos/sin pairs per token */
	float	   *scores;			/* (n_tasks, lm_op_attention_scratch floats) attention scratch per task */
	void	   *xq[3];			/* quantized activations, one per distinct format */
	size_t		xq_bytes;		/* size of each xq buffer */
	int32_t    *seq_next;		/* (n_seq_max) batch validation, span of each sequence */
	lm_kv_span *spans;			/* (n_seq_max) cache spans of the batch being evaluated */
	int32_t    *out_rows;		/* (n_batch + 1) step token -> output row; bert: first rows of the step's texts */

	/* outputs of the last forward pass */
	int			n_out;			/* tokens that asked for outputs (logits or hidden) */
	int			out_cap;		/* rows allocated in hidden */
	int			logits_cap;		/* rows allocated in logits */
	int			idx_cap;		/* entries allocated in out_idx and logit_idx */
	int32_t    *out_idx;		/* (batch size) batch index -> hidden row, -1 if none */
	int32_t    *logit_idx;		/* (batch size) batch index -> logits row, -1 if none */
	float	   *logits;			/* (logits_cap, n_vocab) rows of the LM_OUT_LOGITS tokens */
	bool		logits_pinned;	/* logits came from the device's host_alloc */
	float	   *hidden;			/* (out_cap, n_embd) final normalised hidden states */
	int32_t    *argmax;			/* (logits_cap) greedy token per logits row (device only) */
};

/* One step: tokens [i0, i0+n) of a validated batch, all with caches ready. */
typedef struct lm_step
{
	const lm_batch *batch;		/* the whole batch */
	int			i0;				/* first token of this step */
	int			n;				/* tokens in this step */
} lm_step;

/*
 * Y_j = W_j x for n_mm matrices sharing one input: x is (n, n_cols), y[j] is
 * (n, w[j]->n_rows).  Activations are quantized once per distinct format,
 * then rows are split across the pool.
 */
extern void lm_ctx_matmul(lm_context *ctx, int n, const float *x, int n_mm,
						  const lm_weight *const *w, float *const *y);

/*
 * Run fn(arg, i, ctx->n_tasks) for i in 0..n_tasks-1 on the context's pool
 * and wait; first run the abort check (the calling thread is the only one
 * that ever calls it), and once it has said stop do nothing until the
 * forward pass returns.  A serial context (ctx->serial) calls fn(arg, 0, 1)
 * on the calling thread instead.  Every job of a context has the same task count (1
 * on one thread, else 4 per thread), so a job's split of work, and with it
 * every result, depends only on the thread count.  (Jobs with differing
 * counts would be safe too: threads.c's generation-checked claims keep a
 * late worker from running a task of another job.)
 */
extern void lm_ctx_run(lm_context *ctx, lm_pool_fn fn, void *arg);

/*
 * Run every internal step of a validated batch whose cache blocks are
 * reserved and output rows assigned (out_idx, logit_idx) on the CPU; 0, or
 * -2 when the abort check stopped it.  Also what the host-memory test
 * device runs over a cache view of the blocks it is given.
 */
extern int	lm_ctx_run_steps(lm_context *ctx, const lm_batch *b);

/* Run the llama forward pass for one step. */
extern void lm_llama_forward_step(lm_context *ctx, const lm_step *st);

/* Run the gemma3 forward pass for one step (model_gemma3.c). */
extern void lm_gemma3_forward_step(lm_context *ctx, const lm_step *st);

/* Run the bert forward pass for one step of whole texts (model_bert.c). */
extern void lm_bert_forward_step(lm_context *ctx, const lm_step *st);

#endif							/* LM_CONTEXT_IMPL_H */
