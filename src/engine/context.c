/*
 * context.c — contexts, batches, batch validation, the split of a batch into
 * steps, and the threaded matrix product every forward pass uses.
 *
 * On a compute device (lm_context_params.device) the same validation,
 * output rows and cache reservation run here; the cache's blocks are the
 * device pool's (a kvcache store over kv_alloc / kv_free / kv_copy), and
 * instead of the CPU steps each slice of n_batch tokens becomes one
 * lm_device_batch: the slice's sequences numbered as rows in order of first
 * appearance, each row's block table the device addresses of its blocks,
 * output rows relative to the slice's first, and every token's value order
 * resolved from the whole batch (as the CPU would).  The abort check runs
 * before each device call.
 */
#include "context_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_bert.h"
#include "model_ops.h"
#include "sampler.h"

#define CTX_DEFAULT_BATCH 512
#define CTX_MAX_BATCH 65536
#define CTX_MAX_SEQ 4096

/* Activation floats a matmul quantizes on the calling thread rather than on the pool (16 rows of 1024). */
#define CTX_XQ_INLINE_FLOATS (16 * 1024)

/* Cached positions the attention of one step may read (32 tokens at 4096 positions). */
#define CTX_STEP_POSITIONS (32 * 4096)

/* Default parameters. */
lm_context_params
lm_context_default_params(void)
{
	lm_context_params p = {.n_ctx = 0, .n_seq_max = 1, .n_batch = CTX_DEFAULT_BATCH, .n_threads = 1};

	return p;
}

/* Largest activation row (bytes) any matmul of the model needs. */
static size_t
max_act_row(const lm_model *m)
{
	size_t		best = lm_act_row_size(m->output.type, m->output.n_cols);

	for (int l = 0; l < m->cfg.n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		const lm_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};

		for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
		{
			size_t		s = lm_act_row_size(ws[i]->type, ws[i]->n_cols);

			if (s > best)
				best = s;
		}
	}
	return best;
}

/* Allocate n floats, recording failure. */
static float *
alloc_f(size_t n, bool *ok)
{
	float	   *p = calloc(n ? n : 1, sizeof(float));

	if (!p)
		*ok = false;
	return p;
}

/* Store alloc over the device pool: one block's address, NULL when the pool is exhausted. */
static void *
dev_kv_alloc(void *arg)
{
	lm_context *ctx = arg;

	return (void *) (uintptr_t) ctx->dev->kv_alloc(ctx->dev_model);
}

/* Store free over the device pool. */
static void
dev_kv_free(void *arg, void *block)
{
	lm_context *ctx = arg;

	ctx->dev->kv_free(ctx->dev_model, (uint64_t) (uintptr_t) block);
}

/* Store copy over the device pool (copy-on-write of a shared block). */
static bool
dev_kv_copy(void *arg, void *dst, const void *src, char *err, size_t errlen)
{
	lm_context *ctx = arg;

	return ctx->dev->kv_copy(ctx->dev_model, (uint64_t) (uintptr_t) dst, (uint64_t) (uintptr_t) src, err, errlen);
}

/* Bytes of the device's KV pool. */
static size_t
dev_pool_bytes(const lm_context *ctx)
{
	int64_t		n = ctx->dev->kv_blocks(ctx->dev_model);

	return n > 0 ? (size_t) n * ctx->kv->block_bytes : 0;
}

/* The device side of a context: cache blocks in the device pool, the call's arrays; false with a message. */
static bool
device_setup(lm_context *ctx, char *err, size_t errlen)
{
	lm_kv_store st = {dev_kv_alloc, dev_kv_free, dev_kv_copy, ctx, "device"};
	size_t		nb = (size_t) ctx->n_batch,
				blocks = (size_t) (ctx->n_ctx + LM_KV_BLOCK - 1) / LM_KV_BLOCK;

	if (ctx->model->cfg.encoder)
	{
		snprintf(err, errlen, "the %s architecture runs on the CPU only, not on a compute device",
				 ctx->model->cfg.arch);
		return false;
	}
	if (!ctx->dev_model)
	{
		snprintf(err, errlen, "a device context needs the model uploaded to the device");
		return false;
	}
	lm_kv_set_store(ctx->kv, &st);
	if (dev_pool_bytes(ctx) == 0)
	{
		snprintf(err, errlen, "the device's KV pool holds no block");
		return false;
	}
	lm_kv_set_budget(ctx->kv, dev_pool_bytes(ctx));
	ctx->dev_row_of_seq = malloc(sizeof(int32_t) * ctx->n_seq_max);
	ctx->dev_rows = malloc(sizeof(int32_t) * 3 * nb);
	ctx->dev_prefill = malloc(nb);
	ctx->dev_table = malloc(sizeof(uint64_t) * nb * blocks);
	if (!ctx->dev_row_of_seq || !ctx->dev_rows || !ctx->dev_prefill || !ctx->dev_table)
	{
		snprintf(err, errlen, "out of memory for device batches of %d tokens", ctx->n_batch);
		return false;
	}
	for (int s = 0; s < ctx->n_seq_max; s++)
		ctx->dev_row_of_seq[s] = -1;
	return true;
}

/* Create a context. */
lm_context *
lm_context_create(const lm_model *m, const lm_context_params *pp, char *err, size_t errlen)
{
	lm_context_params p = pp ? *pp : lm_context_default_params();
	const lm_model_config *c = &m->cfg;
	lm_context *ctx;
	size_t		nb;
	bool		ok = true;

	if (p.n_ctx <= 0)
		p.n_ctx = c->n_ctx_train;
	if (p.n_seq_max <= 0)
		p.n_seq_max = 1;
	if (p.n_batch <= 0)
		p.n_batch = CTX_DEFAULT_BATCH;
	if (p.n_threads <= 0 || p.device)
		p.n_threads = 1;
	/* an encoder takes whole texts per step */
	if (c->encoder && p.n_batch < LM_BERT_MIN_BATCH)
		p.n_batch = LM_BERT_MIN_BATCH;
	if (p.n_batch > CTX_MAX_BATCH || p.n_seq_max > CTX_MAX_SEQ)
	{
		snprintf(err, errlen, "context too large: n_batch %d (max %d), n_seq_max %d (max %d)",
				 p.n_batch, CTX_MAX_BATCH, p.n_seq_max, CTX_MAX_SEQ);
		return NULL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctx->model = m;
	ctx->n_ctx = p.n_ctx;
	ctx->n_seq_max = p.n_seq_max;
	ctx->n_batch = p.n_batch;
	ctx->kv = lm_kv_create(m, p.n_ctx, p.n_seq_max, err, errlen);
	if (!ctx->kv)
		goto fail;
	ctx->seq_next = calloc(p.n_seq_max, sizeof(int32_t));
	ctx->spans = calloc(p.n_seq_max, sizeof(lm_kv_span));
	if (!ctx->seq_next || !ctx->spans)
	{
		snprintf(err, errlen, "out of memory for a context of %d sequences", p.n_seq_max);
		goto fail;
	}
	if (p.device)
	{
		/* the device holds the weights, the blocks and the scratch: no CPU scratch here */
		ctx->dev = p.device;
		ctx->dev_model = p.device_model;
		if (!device_setup(ctx, err, errlen))
			goto fail;
		ctx->n_threads = ctx->n_tasks = 1;
		return ctx;
	}
	ctx->pool = lm_pool_create(p.n_threads, err, errlen);
	if (!ctx->pool)
		goto fail;
	ctx->n_threads = lm_pool_size(ctx->pool);
	ctx->n_tasks = ctx->n_threads == 1 ? 1 : 4 * ctx->n_threads;

	nb = (size_t) p.n_batch;
	ctx->x = alloc_f(nb * c->n_embd, &ok);
	ctx->xb = alloc_f(nb * c->n_embd, &ok);
	ctx->xb2 = alloc_f(nb * c->n_embd, &ok);
	ctx->q = alloc_f(nb * c->n_head * c->head_dim_k, &ok);
	ctx->k = alloc_f(nb * c->n_head_kv * c->head_dim_k, &ok);
	ctx->v = alloc_f(nb * c->n_head_kv * c->head_dim_v, &ok);
	ctx->att = alloc_f(nb * c->n_head * c->head_dim_v, &ok);
	ctx->hb = alloc_f(nb * c->n_ff, &ok);
	ctx->hb2 = alloc_f(nb * c->n_ff, &ok);
	ctx->rope_cs = alloc_f(nb * c->n_rot, &ok);
	ctx->scores = alloc_f((size_t) ctx->n_tasks * (c->encoder ? lm_bert_attention_scratch(c, p.n_ctx)
													: lm_op_attention_scratch(c, p.n_ctx)), &ok);
	ctx->xq_bytes = nb * max_act_row(m);
	for (int i = 0; i < 3; i++)
		if (!(ctx->xq[i] = malloc(ctx->xq_bytes ? ctx->xq_bytes : 1)))
			ok = false;
	ctx->out_rows = calloc(nb + 1, sizeof(int32_t));
	if (!ok || !ctx->out_rows)
	{
		snprintf(err, errlen, "out of memory allocating scratch for a batch of %d tokens", p.n_batch);
		goto fail;
	}
	return ctx;

fail:
	lm_context_free(ctx);
	return NULL;
}

/* Free the logits rows, page-locked (the device's host_free) or not. */
static void
free_logits(lm_context *ctx)
{
	if (ctx->logits_pinned)
		ctx->dev->host_free(ctx->logits);
	else
		free(ctx->logits);
	ctx->logits = NULL;
	ctx->logits_pinned = false;
}

/* Logits rows of `bytes` (old rows dropped): the device's page-locked memory where it gives some, else malloc. */
static bool
alloc_logits(lm_context *ctx, size_t bytes)
{
	free_logits(ctx);
	if (ctx->dev && (ctx->logits = ctx->dev->host_alloc(bytes)) != NULL)
	{
		ctx->logits_pinned = true;
		return true;
	}
	ctx->logits = malloc(bytes);
	return ctx->logits != NULL;
}

/* Free a context. */
void
lm_context_free(lm_context *ctx)
{
	if (!ctx)
		return;
	lm_bert_free_groups(ctx);
	lm_pool_free(ctx->pool);
	lm_kv_free(ctx->kv);
	free(ctx->x);
	free(ctx->xb);
	free(ctx->xb2);
	free(ctx->q);
	free(ctx->k);
	free(ctx->v);
	free(ctx->att);
	free(ctx->hb);
	free(ctx->hb2);
	free(ctx->rope_cs);
	free(ctx->scores);
	for (int i = 0; i < 3; i++)
		free(ctx->xq[i]);
	free(ctx->seq_next);
	free(ctx->spans);
	free(ctx->out_rows);
	free(ctx->out_idx);
	free(ctx->logit_idx);
	free_logits(ctx);
	free(ctx->hidden);
	free(ctx->argmax);
	free(ctx->dev_row_of_seq);
	free(ctx->dev_rows);
	free(ctx->dev_prefill);
	free(ctx->dev_table);
	free(ctx);
}

/* The model of a context. */
const lm_model *
lm_context_model(const lm_context *ctx)
{
	return ctx->model;
}

/* The KV cache of a context. */
lm_kv *
lm_context_kv(lm_context *ctx)
{
	return ctx->kv;
}

/* Positions per sequence. */
int
lm_context_n_ctx(const lm_context *ctx)
{
	return ctx->n_ctx;
}

/* Sequence slots. */
int
lm_context_n_seq_max(const lm_context *ctx)
{
	return ctx->n_seq_max;
}

/* Threads. */
int
lm_context_n_threads(const lm_context *ctx)
{
	return ctx->n_threads;
}

/* Tokens per internal step. */
int
lm_context_n_batch(const lm_context *ctx)
{
	return ctx->n_batch;
}

/* Install or clear the abort check. */
void
lm_context_set_abort(lm_context *ctx, lm_abort_fn fn, void *arg)
{
	ctx->abort_fn = fn;
	ctx->abort_arg = arg;
}

/* Cap the bytes of cache blocks (on a device, at most its pool). */
void
lm_context_set_kv_budget(lm_context *ctx, size_t bytes)
{
	if (ctx->dev && (bytes == 0 || bytes > dev_pool_bytes(ctx)))
		bytes = dev_pool_bytes(ctx);
	lm_kv_set_budget(ctx->kv, bytes);
}

/* The device of a context, or NULL. */
const lm_device_ops *
lm_context_device(const lm_context *ctx)
{
	return ctx->dev;
}

/* Output rows kept by lm_context_trim: enough for one-token decoding. */
#define CTX_OUT_KEEP 4

/* Give back cache blocks above kv_keep and output rows beyond a few. */
size_t
lm_context_trim(lm_context *ctx, size_t kv_keep)
{
	const lm_model_config *c = &ctx->model->cfg;
	size_t		freed = lm_kv_trim(ctx->kv, kv_keep);

	for (int i = 0; ctx->groups && i < ctx->n_threads - 1; i++)
		freed += lm_context_trim(ctx->groups[i], 0);

	if (ctx->out_cap > CTX_OUT_KEEP || ctx->logits_cap > CTX_OUT_KEEP || ctx->idx_cap > CTX_OUT_KEEP)
	{
		freed += sizeof(float) * ((size_t) ctx->out_cap * c->n_embd + (size_t) ctx->logits_cap * c->n_vocab) +
			2 * sizeof(int32_t) * (size_t) ctx->idx_cap + (ctx->dev ? sizeof(int32_t) * ctx->logits_cap : 0);
		free(ctx->hidden);
		free_logits(ctx);
		free(ctx->argmax);
		free(ctx->out_idx);
		free(ctx->logit_idx);
		ctx->argmax = NULL;
		ctx->hidden = NULL;
		ctx->out_idx = ctx->logit_idx = NULL;
		ctx->out_cap = ctx->logits_cap = ctx->idx_cap = 0;
		ctx->n_out = 0;
	}
	return freed;
}

/* Bytes of cache blocks and output rows. */
size_t
lm_context_dynamic_bytes(const lm_context *ctx)
{
	const lm_model_config *c = &ctx->model->cfg;

	size_t		bytes = lm_kv_bytes_held(ctx->kv) +
		sizeof(float) * ((size_t) ctx->out_cap * c->n_embd + (size_t) ctx->logits_cap * c->n_vocab) +
		2 * sizeof(int32_t) * (size_t) ctx->idx_cap;

	for (int i = 0; ctx->groups && i < ctx->n_threads - 1; i++)
		bytes += lm_context_dynamic_bytes(ctx->groups[i]);
	return bytes;
}

/* Check a batch against the model and the cache; count its outputs and the logits among them. */
static bool
validate_batch(lm_context *ctx, const lm_batch *b, int *n_out, int *n_logits, char *err, size_t errlen)
{
	const lm_model_config *c = &ctx->model->cfg;

	*n_out = *n_logits = 0;
	if (b->n_tokens < 0 || b->n_tokens > b->n_max)
	{
		snprintf(err, errlen, "batch has %d tokens but room for %d", b->n_tokens, b->n_max);
		return false;
	}
	for (int s = 0; s < ctx->n_seq_max; s++)
		ctx->seq_next[s] = -1;
	for (int i = 0; i < b->n_tokens; i++)
	{
		int32_t		t = b->token[i],
					p = b->pos[i],
					s = b->seq_id[i];

		if (t < 0 || t >= c->n_vocab)
		{
			snprintf(err, errlen, "batch token %d has id %d, outside the vocabulary 0..%d", i, t, c->n_vocab - 1);
			return false;
		}
		if (s < 0 || s >= ctx->n_seq_max)
		{
			snprintf(err, errlen, "batch token %d has sequence %d, outside 0..%d", i, s, ctx->n_seq_max - 1);
			return false;
		}
		if (p < 0 || p >= ctx->n_ctx)
		{
			snprintf(err, errlen, "batch token %d has position %d, outside the context 0..%d",
					 i, p, ctx->n_ctx - 1);
			return false;
		}
		if (ctx->seq_next[s] < 0 ? p > ctx->kv->len[s] : p != ctx->seq_next[s])
		{
			snprintf(err, errlen, "batch token %d of sequence %d has position %d, expected %d",
					 i, s, p, ctx->seq_next[s] < 0 ? ctx->kv->len[s] : ctx->seq_next[s]);
			return false;
		}
		if (b->out[i] != LM_OUT_NONE && b->out[i] != LM_OUT_LOGITS && b->out[i] != LM_OUT_HIDDEN)
		{
			snprintf(err, errlen, "batch token %d asks for output kind %d", i, b->out[i]);
			return false;
		}
		if (b->prefill[i] < LM_PREFILL_AUTO || b->prefill[i] > LM_PREFILL_YES)
		{
			snprintf(err, errlen, "batch token %d has prefill flag %d", i, b->prefill[i]);
			return false;
		}
		ctx->seq_next[s] = p + 1;
		if (b->out[i] != LM_OUT_NONE)
			(*n_out)++;
		if (b->out[i] == LM_OUT_LOGITS)
			(*n_logits)++;
	}
	return true;
}

/* Make room for n_out hidden-state rows and n_logits logits rows of a batch of n tokens. */
static bool
reserve_outputs(lm_context *ctx, int n, int n_out, int n_logits)
{
	const lm_model_config *c = &ctx->model->cfg;

	if (n > ctx->idx_cap)
	{
		int32_t    *p = realloc(ctx->out_idx, sizeof(int32_t) * n);

		if (!p)
			return false;
		ctx->out_idx = p;
		p = realloc(ctx->logit_idx, sizeof(int32_t) * n);
		if (!p)
			return false;
		ctx->logit_idx = p;
		ctx->idx_cap = n;
	}
	if (n_out > ctx->out_cap)
	{
		float	   *h = realloc(ctx->hidden, sizeof(float) * (size_t) n_out * c->n_embd);

		if (!h)
			return false;
		ctx->hidden = h;
		ctx->out_cap = n_out;
	}
	if (n_logits > ctx->logits_cap)
	{
		/* the rows of the last forward are not kept: the next one overwrites them */
		ctx->logits_cap = 0;
		if (!alloc_logits(ctx, sizeof(float) * (size_t) n_logits * c->n_vocab))
			return false;
		if (ctx->dev)
		{
			int32_t    *a = realloc(ctx->argmax, sizeof(int32_t) * n_logits);

			if (!a)
				return false;
			ctx->argmax = a;
		}
		ctx->logits_cap = n_logits;
	}
	return true;
}

/*
 * Rewind each sequence of a validated batch to where the batch starts it and
 * give it cache blocks for every position the batch writes; nothing changes
 * when that fails (over the budget, out of memory).
 */
bool
lm_context_reserve_kv(lm_context *ctx, const lm_batch *b, char *err, size_t errlen)
{
	int			n_spans = 0;

	for (int s = 0; s < ctx->n_seq_max; s++)
		ctx->seq_next[s] = -1;
	for (int i = 0; i < b->n_tokens; i++)
	{
		int32_t		s = b->seq_id[i];

		if (ctx->seq_next[s] < 0)
		{
			ctx->seq_next[s] = n_spans;
			ctx->spans[n_spans++] = (lm_kv_span) {s, b->pos[i], b->pos[i] + 1};
		}
		else
			ctx->spans[ctx->seq_next[s]].end = b->pos[i] + 1;
	}
	return lm_kv_reserve(ctx->kv, ctx->spans, n_spans, err, errlen);
}

/*
 * Run the CPU steps of a validated, reserved batch: steps of at most
 * n_batch tokens whose attention reads at most CTX_STEP_POSITIONS cached
 * positions in all (at least one token), so a step's jobs stay short at
 * long contexts; the abort check runs before every job (lm_ctx_run) and
 * the cache keeps only finished steps.  0, or -2 when stopped.
 */
int
lm_ctx_run_steps(lm_context *ctx, const lm_batch *b)
{
	bool		encoder = ctx->model->cfg.encoder;

	ctx->aborted = false;
	for (int i0 = 0, n; i0 < b->n_tokens; i0 += n)
	{
		int64_t		cost = (int64_t) b->pos[i0] + 1;
		lm_step		st;

		if (encoder)
		{
			/* whole texts up to n_batch tokens (each fits: lm_bert_check_batch) */
			for (n = 1; i0 + n < b->n_tokens && b->pos[i0 + n] != 0; n++)
				;
			for (int len; i0 + n < b->n_tokens; n += len)
			{
				for (len = 1; i0 + n + len < b->n_tokens && b->pos[i0 + n + len] != 0; len++)
					;
				if (n + len > ctx->n_batch)
					break;
			}
		}
		else
			for (n = 1; i0 + n < b->n_tokens && n < ctx->n_batch &&
				 cost + b->pos[i0 + n] + 1 <= CTX_STEP_POSITIONS; n++)
				cost += (int64_t) b->pos[i0 + n] + 1;
		st = (lm_step) {b, i0, n};
		switch (ctx->model->cfg.arch_id)
		{
			case LM_ARCH_BERT:
				lm_bert_forward_step(ctx, &st); /* model_bert.c */
				break;
			case LM_ARCH_GEMMA3:
				lm_gemma3_forward_step(ctx, &st);	/* model_gemma3.c */
				break;
			case LM_ARCH_LLAMA:
				lm_llama_forward_step(ctx, &st);	/* model_llama.c */
				break;
		}
		if (ctx->aborted)
			return -2;
		for (int i = i0; i < i0 + st.n && !encoder; i++)
			if (ctx->kv->len[b->seq_id[i]] < b->pos[i] + 1)
				ctx->kv->len[b->seq_id[i]] = b->pos[i] + 1;
	}
	return 0;
}

/*
 * Build the device call for tokens [i0, i0+n) of a validated, reserved
 * batch (output rows assigned) in ctx->dev_batch: rows in order of first
 * appearance, compact block tables, output rows relative to the slice's.
 */
static void
device_build(lm_context *ctx, const lm_batch *b, int i0, int n)
{
	const lm_model_config *c = &ctx->model->cfg;
	const lm_kv *kv = ctx->kv;
	lm_device_batch *db = &ctx->dev_batch;
	int32_t    *seq_row = ctx->dev_rows,
			   *out_row = ctx->dev_rows + ctx->n_batch,
			   *logit_row = ctx->dev_rows + 2 * ctx->n_batch;
	int			n_rows = 0,
				max_blocks = 1,
				row0 = -1,
				lrow0 = -1;

	for (int i = 0; i < n; i++)
	{
		int32_t		s = b->seq_id[i0 + i],
					nb = b->pos[i0 + i] / LM_KV_BLOCK + 1;

		if (ctx->dev_row_of_seq[s] < 0)
		{
			ctx->dev_row_of_seq[s] = n_rows;
			ctx->seq_next[n_rows++] = s;	/* row -> sequence */
		}
		seq_row[i] = ctx->dev_row_of_seq[s];
		if (nb > max_blocks)
			max_blocks = nb;
		if (row0 < 0 && ctx->out_idx[i0 + i] >= 0)
			row0 = ctx->out_idx[i0 + i];
		if (lrow0 < 0 && ctx->logit_idx[i0 + i] >= 0)
			lrow0 = ctx->logit_idx[i0 + i];
		/* the value order the CPU would use, decided on the whole batch */
		ctx->dev_prefill[i] = lm_op_value_lanes(b, i0 + i) == 16 ? LM_PREFILL_YES : LM_PREFILL_NO;
	}
	for (int i = 0; i < n; i++)
	{
		out_row[i] = ctx->out_idx[i0 + i] >= 0 ? ctx->out_idx[i0 + i] - row0 : -1;
		logit_row[i] = ctx->logit_idx[i0 + i] >= 0 ? ctx->logit_idx[i0 + i] - lrow0 : -1;
	}
	/* each row's blocks up to its last position in the slice, zeros after */
	memset(ctx->dev_table, 0, sizeof(uint64_t) * n_rows * max_blocks);
	for (int i = 0; i < n; i++)
	{
		uint64_t   *t = ctx->dev_table + (size_t) seq_row[i] * max_blocks;
		int32_t		s = b->seq_id[i0 + i];

		for (int j = 0; j <= b->pos[i0 + i] / LM_KV_BLOCK; j++)
			t[j] = (uint64_t) (uintptr_t) kv->block[kv->table[s][j]];
	}
	for (int r = 0; r < n_rows; r++)
		ctx->dev_row_of_seq[ctx->seq_next[r]] = -1;

	db->n_tokens = n;
	db->token = b->token + i0;
	db->pos = b->pos + i0;
	db->seq_row = seq_row;
	db->out = b->out + i0;
	db->out_row = out_row;
	db->logit_row = logit_row;
	db->n_rows = n_rows;
	db->max_blocks = max_blocks;
	db->block_table = ctx->dev_table;
	db->hidden = row0 >= 0 ? ctx->hidden + (size_t) row0 * c->n_embd : NULL;
	db->logits = lrow0 >= 0 ? ctx->logits + (size_t) lrow0 * c->n_vocab : NULL;
	db->argmax = lrow0 >= 0 ? ctx->argmax + lrow0 : NULL;
	db->prefill = ctx->dev_prefill;
}

/*
 * Run a validated, reserved batch on the device: one call per slice of
 * n_batch tokens, the abort check before each.  0; -1 with the device's
 * message; -2 when stopped (the batch's sequences are then undefined).
 */
static int
device_forward(lm_context *ctx, const lm_batch *b, char *err, size_t errlen)
{
	for (int i0 = 0, n; i0 < b->n_tokens; i0 += n)
	{
		char		why[400];

		n = b->n_tokens - i0 < ctx->n_batch ? b->n_tokens - i0 : ctx->n_batch;
		if (ctx->abort_fn && ctx->abort_fn(ctx->abort_arg))
		{
			snprintf(err, errlen, "forward pass stopped by request");
			return -2;
		}
		device_build(ctx, b, i0, n);
		why[0] = '\0';
		if (ctx->dev->forward(ctx->dev_model, &ctx->dev_batch, why, sizeof(why)) != 0)
		{
			snprintf(err, errlen, "the %s device failed a forward pass: %s", ctx->dev->name,
					 why[0] ? why : "no message");
			return -1;
		}
		for (int i = i0; i < i0 + n; i++)
			if (ctx->kv->len[b->seq_id[i]] < b->pos[i] + 1)
				ctx->kv->len[b->seq_id[i]] = b->pos[i] + 1;
	}
	return 0;
}

/* Evaluate a batch. */
int
lm_model_forward(lm_context *ctx, const lm_batch *b, char *err, size_t errlen)
{
	int			n_out,
				n_logits,
				row = 0,
				lrow = 0,
				rc;

	bool		encoder = ctx->model->cfg.encoder;

	ctx->n_out = 0;
	if (encoder)
	{
		/* whole texts, no cache, hidden states only (model_bert.c) */
		n_logits = 0;
		if (!lm_bert_check_batch(ctx, b, &n_out, err, errlen))
			return -1;
	}
	else if (!validate_batch(ctx, b, &n_out, &n_logits, err, errlen))
		return -1;
	if (!reserve_outputs(ctx, b->n_tokens, n_out, n_logits))
	{
		snprintf(err, errlen, "out of memory for the outputs of %d tokens", n_out);
		return -1;
	}
	if (!encoder && !lm_context_reserve_kv(ctx, b, err, errlen))
		return -1;
	/* output rows in batch order, so each step's rows are consecutive */
	for (int i = 0; i < b->n_tokens; i++)
	{
		ctx->out_idx[i] = b->out[i] != LM_OUT_NONE ? row++ : -1;
		ctx->logit_idx[i] = b->out[i] == LM_OUT_LOGITS ? lrow++ : -1;
	}
	ctx->n_out = n_out;

	if (ctx->dev)
	{
		rc = device_forward(ctx, b, err, errlen);
		if (rc != 0)
			ctx->n_out = 0;
		return rc;
	}
	if (lm_ctx_run_steps(ctx, b) != 0)
	{
		snprintf(err, errlen, "forward pass stopped by request");
		ctx->n_out = 0;
		return -2;
	}
	/* weights read from a file changed meanwhile may be garbage (gguf.h) */
	if (ctx->model->gguf && !lm_gguf_unchanged(ctx->model->gguf, err, errlen))
	{
		ctx->n_out = 0;
		return -1;
	}
	return 0;
}

/* Join the context's engine threads; the next forward pass starts them again. */
void
lm_context_stop_threads(lm_context *ctx)
{
	if (ctx)
		lm_pool_stop(ctx->pool);
}

/* Logits of batch token i. */
const float *
lm_context_logits(const lm_context *ctx, int i)
{
	if (i < 0 || ctx->n_out == 0 || i >= ctx->idx_cap || ctx->logit_idx[i] < 0)
		return NULL;
	return ctx->logits + (size_t) ctx->logit_idx[i] * ctx->model->cfg.n_vocab;
}

/* Greedy token of batch token i: the device's, or lm_argmax over the logits. */
int32_t
lm_context_argmax(const lm_context *ctx, int i)
{
	const float *l = lm_context_logits(ctx, i);

	if (!l)
		return -1;
	if (ctx->dev)
		return ctx->argmax[ctx->logit_idx[i]];
	return lm_argmax(l, ctx->model->cfg.n_vocab);
}

/* Final hidden state of batch token i. */
const float *
lm_context_hidden(const lm_context *ctx, int i)
{
	if (i < 0 || ctx->n_out == 0 || i >= ctx->idx_cap || ctx->out_idx[i] < 0)
		return NULL;
	return ctx->hidden + (size_t) ctx->out_idx[i] * ctx->model->cfg.n_embd;
}

/* Allocate a batch. */
lm_batch *
lm_batch_create(int n_max)
{
	lm_batch   *b;

	if (n_max < 1)
		n_max = 1;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->n_max = n_max;
	b->token = malloc(sizeof(int32_t) * n_max);
	b->pos = malloc(sizeof(int32_t) * n_max);
	b->seq_id = malloc(sizeof(int32_t) * n_max);
	b->out = malloc(sizeof(int8_t) * n_max);
	b->prefill = malloc(sizeof(int8_t) * n_max);
	if (!b->token || !b->pos || !b->seq_id || !b->out || !b->prefill)
	{
		lm_batch_free(b);
		return NULL;
	}
	return b;
}

/* Free a batch. */
void
lm_batch_free(lm_batch *b)
{
	if (!b)
		return;
	free(b->token);
	free(b->pos);
	free(b->seq_id);
	free(b->out);
	free(b->prefill);
	free(b);
}

/* Empty a batch. */
void
lm_batch_clear(lm_batch *b)
{
	b->n_tokens = 0;
}

/* Append one token: logits or nothing, value order inferred from the batch. */
bool
lm_batch_add(lm_batch *b, int32_t token, int32_t pos, int32_t seq_id, bool logits)
{
	return lm_batch_add_token(b, token, pos, seq_id, logits ? LM_OUT_LOGITS : LM_OUT_NONE, LM_PREFILL_AUTO);
}

/* Append one token with its output kind and value order. */
bool
lm_batch_add_token(lm_batch *b, int32_t token, int32_t pos, int32_t seq_id, lm_out out, int prefill)
{
	if (b->n_tokens >= b->n_max)
		return false;
	b->token[b->n_tokens] = token;
	b->pos[b->n_tokens] = pos;
	b->seq_id[b->n_tokens] = seq_id;
	b->out[b->n_tokens] = (int8_t) out;
	b->prefill[b->n_tokens] = (int8_t) prefill;
	b->n_tokens++;
	return true;
}

/* Shared state of one threaded matmul job. */
typedef struct mm_job
{
	int			n_mm;			/* matrices */
	const lm_weight *w[3];		/* weights */
	const void *xq[3];			/* activation rows for each matrix */
	size_t		xq_row[3];		/* bytes per activation row */
	float	   *y[3];			/* outputs, (n, w->n_rows) */
	int			n;				/* tokens */
	int64_t		total;			/* sum of rows */
} mm_job;

/* This thread's rows of the concatenated row space, cut at multiples of 4. */
static void
mm_worker(void *arg, int ith, int nth)
{
	mm_job	   *j = arg;
	int64_t		lo = (j->total * ith / nth) & ~(int64_t) 3,
				hi = ith == nth - 1 ? j->total : (j->total * (ith + 1) / nth) & ~(int64_t) 3,
				off = 0;

	for (int m = 0; m < j->n_mm; m++)
	{
		const lm_weight *w = j->w[m];
		int64_t		r0 = lo - off > 0 ? lo - off : 0,
					r1 = hi - off < w->n_rows ? hi - off : w->n_rows;

		if (r0 < r1)
			lm_matmul_rows(w->type, w->data, w->row_bytes, w->n_cols, r0, r1,
						   j->xq[m], j->xq_row[m], j->n, j->y[m], w->n_rows);
		off += w->n_rows;
	}
}

/* Activation rows to quantize before a matmul, one format per entry. */
typedef struct xq_job
{
	int			n_fmt;			/* formats */
	lm_type		wtype[3];		/* weight type that selects each format */
	void	   *dst[3];			/* destination rows */
	size_t		row[3];			/* bytes per destination row */
	const float *x;				/* (n, n_cols) input */
	int64_t		n_cols;			/* floats per row */
	int			n;				/* rows */
} xq_job;

/* Task ith of nth: rows [n*ith/nth, n*(ith+1)/nth) in every format. */
static void
xq_worker(void *arg, int ith, int nth)
{
	xq_job	   *j = arg;
	int			b0 = (int) ((int64_t) j->n * ith / nth),
				b1 = (int) ((int64_t) j->n * (ith + 1) / nth);

	for (int f = 0; f < j->n_fmt; f++)
		for (int b = b0; b < b1; b++)
			lm_act_quantize_row(j->wtype[f], j->x + (size_t) b * j->n_cols,
								(char *) j->dst[f] + (size_t) b * j->row[f], j->n_cols);
}

/* Y_j = W_j x for up to 3 matrices sharing one input. */
void
lm_ctx_matmul(lm_context *ctx, int n, const float *x, int n_mm, const lm_weight *const *w,
			  float *const *y)
{
	mm_job		j;
	xq_job		q = {0};
	int64_t		n_cols = w[0]->n_cols;

	q.x = x;
	q.n_cols = n_cols;
	q.n = n;
	j.n_mm = n_mm;
	j.n = n;
	j.total = 0;
	for (int m = 0; m < n_mm; m++)
	{
		lm_type		at = lm_vec_dot_type(w[m]->type);
		int			same = -1;

		for (int e = 0; e < m; e++)
			if (lm_vec_dot_type(w[e]->type) == at)
				same = e;
		j.w[m] = w[m];
		j.y[m] = y[m];
		j.xq_row[m] = lm_act_row_size(w[m]->type, n_cols);
		if (same >= 0)
			j.xq[m] = j.xq[same];
		else if (at == LM_TYPE_F32)
			j.xq[m] = x;		/* F32 weights read the floats as they are */
		else
		{
			/* every activation row is quantized once for this format (below) */
			q.wtype[q.n_fmt] = w[m]->type;
			q.dst[q.n_fmt] = ctx->xq[m];
			q.row[q.n_fmt] = j.xq_row[m];
			q.n_fmt++;
			j.xq[m] = ctx->xq[m];
		}
		j.total += w[m]->n_rows;
	}
	/*
	 * Quantize the activations: rows split across the pool when there are
	 * many; a few (a decode step's) on this thread, cheaper than a barrier.
	 */
	if (q.n_fmt > 0)
	{
		if ((int64_t) n * n_cols * q.n_fmt <= CTX_XQ_INLINE_FLOATS || ctx->n_tasks <= 1)
			xq_worker(&q, 0, 1);
		else
			lm_ctx_run(ctx, xq_worker, &q);
	}
	/* several tasks per thread, so a busy or late thread delays little */
	lm_ctx_run(ctx, mm_worker, &j);
}

/* Run a job of ctx->n_tasks tasks on the pool, unless the abort check says stop. */
void
lm_ctx_run(lm_context *ctx, lm_pool_fn fn, void *arg)
{
	if (!ctx->aborted && ctx->abort_fn && ctx->abort_fn(ctx->abort_arg))
		ctx->aborted = true;
	if (ctx->aborted)
		return;
	if (ctx->serial)
		fn(arg, 0, 1);
	else
		lm_pool_run_n(ctx->pool, fn, arg, ctx->n_tasks);
}
