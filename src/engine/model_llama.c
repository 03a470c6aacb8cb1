/*
 * model_llama.c — the forward pass of the llama architecture (llama2.c's
 * order of operations; llama.cpp's arithmetic where it matters).
 *
 * One step evaluates n tokens at once, one row per token in every scratch
 * buffer.  Matrix products go through lm_ctx_matmul (weights read once for
 * all n rows, rows split across threads); RMSNorm, RoPE, attention (scores
 * scaled by 1/sqrt(head_dim)) and the output tail are model_ops.c's, whose
 * header describes their ggml-matching arithmetic.  SwiGLU is
 * silu(g) * u with silu(g) = g / (1 + exp(-g)), exp computed as ggml does.
 *
 * The per-token work between the matrix products (norms, residual adds,
 * RoPE, SwiGLU) runs in row stages on the pool (lm_op_for_rows); each token's
 * row is computed alone, so results do not depend on the split.
 */
#include <math.h>
#include <string.h>

#include "context_impl.h"
#include "model_ops.h"
#include "quant.h"

/* What the row stages of one layer need. */
typedef struct llama_rows
{
	lm_context *ctx;			/* context */
	const lm_step *st;			/* step */
	int			layer;			/* layer index */
	const float *norm;			/* RMSNorm weight of the stage, NULL for none */
} llama_rows;

/* Tokens [t0, t1): x += xb2 when add is set, then xb = rmsnorm(x) * norm (if any). */
static void
residual_norm(llama_rows *r, int t0, int t1, bool add)
{
	const lm_model_config *c = &r->ctx->model->cfg;
	int			E = c->n_embd;
	float	   *x = r->ctx->x + (size_t) t0 * E;
	const float *d = r->ctx->xb2 + (size_t) t0 * E;

	if (add)
		for (size_t i = 0; i < (size_t) (t1 - t0) * E; i++)
			x[i] = d[i] + x[i];
	/* several rows at once: the same floats per row, faster */
	if (r->norm)
		lm_op_rmsnorm_rows(r->ctx->xb + (size_t) t0 * E, E, x, E, r->norm, E, t1 - t0, c->rms_eps);
}

/* Row stage: xb = rmsnorm(x) * norm. */
static void
stage_norm(void *arg, int t0, int t1)
{
	residual_norm(arg, t0, t1, false);
}

/* Row stage: x += xb2, then xb = rmsnorm(x) * norm when norm is set. */
static void
stage_add_norm(void *arg, int t0, int t1)
{
	residual_norm(arg, t0, t1, true);
}

/* Row stage: RoPE on queries and keys, then keys and values into the cache. */
static void
stage_rope_store(void *arg, int t0, int t1)
{
	llama_rows *r = arg;
	lm_context *ctx = r->ctx;
	const lm_model_config *c = &ctx->model->cfg;
	const lm_batch *b = r->st->batch;
	int			kd = c->n_head_kv * c->head_dim_k,
				vd = c->n_head_kv * c->head_dim_v,
				qd = c->n_head * c->head_dim_k;

	for (int t = t0; t < t1; t++)
	{
		const float *cs = ctx->rope_cs + (size_t) t * c->n_rot;
		int			seq = b->seq_id[r->st->i0 + t],
					pos = b->pos[r->st->i0 + t];

		lm_op_rope_apply(ctx->q + (size_t) t * qd, c->n_head, c->head_dim_k, c->n_rot, c->rope_type, cs);
		lm_op_rope_apply(ctx->k + (size_t) t * kd, c->n_head_kv, c->head_dim_k, c->n_rot, c->rope_type, cs);
		memcpy(lm_kv_k(ctx->kv, seq, r->layer, pos), ctx->k + (size_t) t * kd, sizeof(float) * kd);
		memcpy(lm_kv_v(ctx->kv, seq, r->layer, pos), ctx->v + (size_t) t * vd, sizeof(float) * vd);
	}
}

/* Row stage: SwiGLU, hb = silu(hb) * hb2. */
static void
stage_swiglu(void *arg, int t0, int t1)
{
	llama_rows *r = arg;
	size_t		F = (size_t) r->ctx->model->cfg.n_ff;

	for (size_t t = (size_t) t0; t < (size_t) t1; t++)
		lm_op_swiglu_row(r->ctx->hb + t * F, r->ctx->hb2 + t * F, (int) F);
}

/* Run the llama forward pass for one step of a batch. */
void
lm_llama_forward_step(lm_context *ctx, const lm_step *st)
{
	const lm_model *m = ctx->model;
	const lm_model_config *c = &m->cfg;
	const lm_batch *b = st->batch;
	int			n = st->n,
				E = c->n_embd;
	float		att_scale = 1.0f / sqrtf((float) c->head_dim_k);
	llama_rows	r = {ctx, st, 0, m->layers[0].attn_norm};

	/* token embeddings: one dequantized row of token_embd per token */
	for (int t = 0; t < n; t++)
		lm_dequantize_row(m->tok_embd.type,
						  (const char *) m->tok_embd.data + (size_t) b->token[st->i0 + t] * m->tok_embd.row_bytes,
						  ctx->x + (size_t) t * E, E);

	/* RoPE angles for each token's position */
	lm_op_rope_angles(ctx->rope_cs, st, c->n_rot, c->rope_freq_base, c->rope_freq_scale, m->rope_freqs);

	/* attention RMSNorm of layer 0 (later layers' come with the previous residual) */
	lm_op_for_rows(ctx, n, stage_norm, &r);

	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];

		r.layer = l;

		/* Q, K, V projections */
		{
			const lm_weight *w[3] = {&L->wq, &L->wk, &L->wv};
			float	   *y[3] = {ctx->q, ctx->k, ctx->v};

			lm_ctx_matmul(ctx, n, ctx->xb, 3, w, y);
		}

		/* RoPE on queries and keys, then keys and values into the cache */
		lm_op_for_rows(ctx, n, stage_rope_store, &r);

		/* grouped-query attention with causal masking */
		lm_op_attention(ctx, st, l, att_scale, 0);

		/* output projection */
		{
			const lm_weight *w[1] = {&L->wo};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->att, 1, w, y);
		}

		/* residual, FFN RMSNorm */
		r.norm = L->ffn_norm;
		lm_op_for_rows(ctx, n, stage_add_norm, &r);

		/* gate and up projections, SwiGLU */
		{
			const lm_weight *w[2] = {&L->ffn_gate, &L->ffn_up};
			float	   *y[2] = {ctx->hb, ctx->hb2};

			lm_ctx_matmul(ctx, n, ctx->xb, 2, w, y);
		}
		lm_op_for_rows(ctx, n, stage_swiglu, &r);

		/* down projection */
		{
			const lm_weight *w[1] = {&L->ffn_down};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->hb, 1, w, y);
		}

		/* residual, and the next layer's attention RMSNorm */
		r.norm = l + 1 < c->n_layer ? m->layers[l + 1].attn_norm : NULL;
		lm_op_for_rows(ctx, n, stage_add_norm, &r);
	}

	/* final norm and classifier */
	lm_op_output(ctx, st, 0.0f);
}
