/*
 * attention.c — causal (optionally sliding-window) grouped-query attention
 * of one layer over the KV cache's 16-position blocks, blocked for the
 * cache and split across the pool.
 *
 * What each (token, head) gets is fixed by the reference, ggml's non-flash
 * CPU attention with an F32 KV cache (see model_ops.c's header): per
 * visible position a score = F32 dot(q, k) * scale, softmax with ggml's
 * exponential and block-wise sum, then each output dimension as lane
 * sums of fma chains over positions (lane = position % nl), the lanes
 * combined as a tree.  This file only changes how that work is arranged:
 *
 *   items    the query rows of a tile of up to `tile` consecutive tokens of
 *            one sequence and the heads of one KV head (all of them, or one
 *            when a step has too few tokens to keep the threads busy; a
 *            decode step first tries tiles of fewer tokens) form an item.
 *            Its key blocks are read once for all its rows (not once per
 *            row), and each value row once per 4 rows (a GEMM-like tile: 4
 *            rows x 4 vectors of columns held in registers, one value load
 *            serving the 4 heads of a token).  Vectors run
 *            across positions or value columns,
 *            never along one sum, so every instruction set gives the
 *            reference's floats.
 *   passes   scores for every row and visible position (the rows' scratch
 *            holds them; keys copied column-major, a block at a time, and
 *            4..16 positions per vector), softmax per row, then the value
 *            rows into each row's lanes, lane by lane (a lane's chain over
 *            its positions stays in registers from start to end; vectors
 *            along the value columns, as the reference: subnormal lane
 *            sums then cost no more), and the lanes combined per output.
 *   threads  items are split across ctx->pool by their cost (visible
 *            positions), so early and late prompt tokens balance.  Rows
 *            never depend on the split, the tile or the other rows.
 */
#include "model_ops.h"

#include <math.h>
#include <string.h>

#include "kernels.h"
#include "attention_simd.h"

/* The scalar instance of attention_simd.h: 4 positions per vector, one fmaf per lane. */
typedef float att_v4 __attribute__((vector_size(16), aligned(4)));

/* fmaf on each of 4 lanes. */
static inline att_v4
att_fma4(att_v4 a, att_v4 b, att_v4 c)
{
	att_v4		r;

	for (int i = 0; i < 4; i++)
		r[i] = fmaf(a[i], b[i], c[i]);
	return r;
}

#define ATT_VW 4
#define ATT_SUFFIX scalar
#define ATT_FMA(a, b, c) att_fma4((a), (b), (c))
#define ATT_FMAF(a, b, c) fmaf((a), (b), (c))
#include "attention_simd.h"

/* Shared state of one layer's attention job. */
typedef struct att_job
{
	lm_context *ctx;			/* context */
	const lm_step *st;			/* step */
	int			layer;			/* layer index */
	float		scale;			/* multiplies every score */
	int			n_swa;			/* sliding window (0 = none) */
	int			tile;			/* tokens per item */
	int			n_tiles;		/* token tiles of the step */
	int			hpi;			/* query heads per item (group size or 1) */
	int			n_items;		/* n_tiles * n_head / hpi */
} att_job;

/* Query heads of an item at most: the KV head's group, or one when the group is too large. */
static int
att_heads_max(const lm_model_config *c)
{
	int			group = c->n_head / c->n_head_kv;

	return group <= LM_ATT_MAX_ROWS ? group : 1;
}

/* Tokens per tile: items of about 48 rows (at least one token). */
static int
att_tile_tokens(const lm_model_config *c)
{
	int			t = 48 / att_heads_max(c);

	return t < 1 ? 1 : t;
}

/*
 * Floats of value lanes a task holds: 16 lanes for every row of an item, or
 * 64 for the rows of one token (a sequence alone in its batch gets 64 lanes;
 * items with more rows at 64 lanes are cut to fit, see att_worker).
 */
static size_t
att_acc_floats(const lm_model_config *c)
{
	size_t		rows = (size_t) att_tile_tokens(c) * att_heads_max(c),
				lanes = rows * 16 > (size_t) att_heads_max(c) * 64 ? rows * 16 : (size_t) att_heads_max(c) * 64;

	return lanes * c->head_dim_v;
}

/* Floats of scratch one task needs: its rows' scores, their value lanes, a transposed key block. */
size_t
lm_op_attention_scratch(const lm_model_config *c, int n_ctx)
{
	size_t		rows = (size_t) att_tile_tokens(c) * att_heads_max(c),
				sc = ((size_t) n_ctx + 2 * LM_KV_BLOCK) & ~(size_t) (LM_KV_BLOCK - 1);

	return rows * sc + att_acc_floats(c) + (size_t) LM_KV_BLOCK * c->head_dim_k;
}

/* First position a token at pos sees. */
static inline int
att_first(int pos, int n_swa)
{
	return (n_swa > 0 && pos - n_swa + 1 > 0) ? pos - n_swa + 1 : 0;
}

/* Cost of item w: its rows' visible positions plus a fixed overhead. */
static int64_t
att_item_cost(const att_job *j, int w)
{
	const lm_batch *b = j->st->batch;
	int			k = w % j->n_tiles,
				t1 = (k + 1) * j->tile < j->st->n ? (k + 1) * j->tile : j->st->n;
	int64_t		cost = 0;

	for (int t = k * j->tile; t < t1; t++)
	{
		int			pos = b->pos[j->st->i0 + t];

		cost += (int64_t) (pos - att_first(pos, j->n_swa) + 1 + 64) * j->hpi;
	}
	return cost;
}

/*
 * First item of task ith of nth: tasks get consecutive items whose summed
 * cost is about 1/nth of the total each.
 */
static int
att_split(const att_job *j, int ith, int nth)
{
	int64_t		total = 0,
				target,
				cum = 0;

	if (ith <= 0)
		return 0;
	if (ith >= nth)
		return j->n_items;
	for (int w = 0; w < j->n_items; w++)
		total += att_item_cost(j, w);
	target = total * ith / nth;
	for (int w = 0; w < j->n_items; w++)
	{
		cum += att_item_cost(j, w);
		if (cum > target)
			return w + 1;
	}
	return j->n_items;
}

/* Run one item's passes on the selected instruction set and write its rows' outputs. */
static void
att_run_item(lm_att_item *it)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa == LM_ISA_AVX512)
		lm_att_scores_avx512(it);
	else if (isa == LM_ISA_AVX2)
		lm_att_scores_avx2(it);
	else
		lm_att_scores_scalar(it);
	/* softmax of each row over the positions it sees */
	for (int r = 0; r < it->n_rows; r++)
	{
		float	   *e = it->sc + (size_t) r * it->sc_stride + (it->lo[r] - it->blo * LM_KV_BLOCK);
		int			n = it->hi[r] - it->lo[r] + 1;

		lm_op_exp_sub(e, it->max[r], n);
		lm_op_scale(e, (float) (1.0 / lm_op_softmax_sum(e, it->lo[r], n)), n);
	}
	if (isa == LM_ISA_AVX512)
		lm_att_values_avx512(it);
	else if (isa == LM_ISA_AVX2)
		lm_att_values_avx2(it);
	else
		lm_att_values_scalar(it);
}

/* Attention for this task's share of items. */
static void
att_worker(void *arg, int ith, int nth)
{
	att_job    *j = arg;
	lm_context *ctx = j->ctx;
	const lm_model_config *c = &ctx->model->cfg;
	const lm_batch *b = j->st->batch;
	int			H = c->n_head,
				hdk = c->head_dim_k,
				hdv = c->head_dim_v,
				group = H / c->n_head_kv,
				w0 = att_split(j, ith, nth),
				w1 = att_split(j, ith + 1, nth);
	size_t		rows = (size_t) j->tile * att_heads_max(c),
				acc_floats = att_acc_floats(c),
				per_task = lm_op_attention_scratch(c, ctx->n_ctx);
	float	   *scratch = ctx->scores + per_task * ith;
	lm_att_item it;

	it.kv = ctx->kv;
	it.layer = j->layer;
	it.hdk = hdk;
	it.hdv = hdv;
	it.scale = j->scale;
	it.sc = scratch;
	it.sc_stride = ((size_t) ctx->n_ctx + 2 * LM_KV_BLOCK) & ~(size_t) (LM_KV_BLOCK - 1);
	it.acc = it.sc + rows * it.sc_stride;
	it.tb = it.acc + acc_floats;

	for (int w = w0; w < w1; w++)
	{
		int			k = w % j->n_tiles,	/* items of one KV head are consecutive */
					sub = w / j->n_tiles,
					h0 = sub * j->hpi,	/* first query head of the item */
					t1 = (k + 1) * j->tile < j->st->n ? (k + 1) * j->tile : j->st->n;

		/* the tile's tokens, in runs of one sequence */
		for (int t = k * j->tile; t < t1;)
		{
			int			seq = b->seq_id[j->st->i0 + t],
						te = t;

			it.seq = seq;
			it.g = h0 / group;
			it.nl = lm_op_value_lanes(b, j->st->i0 + t);
			it.n_rows = 0;
			it.blo = 1 << 30;
			it.bhi = -1;
			/* (a sequence's tokens have one lane count; cut where 64-lane rows would overflow the lanes) */
			for (; te < t1 && b->seq_id[j->st->i0 + te] == seq &&
				 (size_t) (it.n_rows + j->hpi) * it.nl * hdv <= acc_floats; te++)
			{
				int			pos = b->pos[j->st->i0 + te],
							lo = att_first(pos, j->n_swa);

				if (lo / LM_KV_BLOCK < it.blo)
					it.blo = lo / LM_KV_BLOCK;
				if (pos / LM_KV_BLOCK > it.bhi)
					it.bhi = pos / LM_KV_BLOCK;
				for (int h = h0; h < h0 + j->hpi; h++)
				{
					it.q[it.n_rows] = ctx->q + ((size_t) te * H + h) * hdk;
					it.out[it.n_rows] = ctx->att + ((size_t) te * H + h) * hdv;
					it.lo[it.n_rows] = lo;
					it.hi[it.n_rows] = pos;
					it.n_rows++;
				}
			}
			att_run_item(&it);
			t = te;
		}
	}
}

/* Whether no two neighbouring tokens of the step belong to one sequence (a decode step). */
static bool
att_one_token_runs(const lm_step *st)
{
	const lm_batch *b = st->batch;

	for (int t = 1; t < st->n; t++)
		if (b->seq_id[st->i0 + t] == b->seq_id[st->i0 + t - 1])
			return false;
	return true;
}

/* Attention of one layer for the whole step. */
void
lm_op_attention(lm_context *ctx, const lm_step *st, int layer, float scale, int n_swa)
{
	const lm_model_config *c = &ctx->model->cfg;
	att_job		j = {ctx, st, layer, scale, n_swa, 0, 0, 0, 0};

	j.tile = att_tile_tokens(c);
	j.n_tiles = (st->n + j.tile - 1) / j.tile;
	/*
	 * Whole KV-head groups share their key/value reads.  When the items
	 * would be too few to keep the threads busy: in a step of one-token
	 * runs (decoding: a tile shares nothing between its tokens) smaller
	 * tiles first; single heads when that is not enough, or for prompts.
	 */
	if ((int64_t) j.n_tiles * c->n_head_kv < 2 * ctx->n_tasks && st->n > j.n_tiles &&
		att_one_token_runs(st))
	{
		int			want = (2 * ctx->n_tasks + c->n_head_kv - 1) / c->n_head_kv;

		j.tile = st->n / want > 1 ? st->n / want : 1;
		j.n_tiles = (st->n + j.tile - 1) / j.tile;
	}
	j.hpi = (int64_t) j.n_tiles * c->n_head_kv >= 2 * ctx->n_tasks ? att_heads_max(c) : 1;
	j.n_items = j.n_tiles * (c->n_head / j.hpi);
	lm_ctx_run(ctx, att_worker, &j);
}
