/*
 * model_gemma3.c — the Gemma 3 architecture: configuration, its extra
 * weights, and its forward pass.
 *
 * Gemma 3 is llama with these changes (llama.cpp's llm_build_gemma3):
 *   - the token embedding is multiplied by sqrtf(n_embd) (a float);
 *   - queries and keys get a per-head RMSNorm (attn_q_norm / attn_k_norm,
 *     one head_dim vector shared by all heads) before RoPE, and RoPE is NEOX;
 *   - queries are scaled before the scores, by `gemma3.attention.scale`
 *     when the file sets it, else by 1/sqrt(head_dim) (Gemma's
 *     query_pre_attn_scalar = head_dim, true of every size but 27B, whose
 *     1/sqrt(n_embd/n_head) a file must state in that key); the scores are
 *     not scaled again;
 *   - the attention output and the FFN output are each RMS-normalised
 *     (post_attention_norm, post_ffw_norm) before their residual add;
 *   - the FFN is GEGLU: gelu_tanh(gate) * up;
 *   - 5 of every 6 layers are local: a sliding window of
 *     attention.sliding_window positions and RoPE base 10000; every 6th
 *     layer (5, 11, 17, ...) is global with rope.freq_base.
 * The Gemma norms' "1 + w" is folded into the stored weights by the GGUF
 * converter, so they are applied exactly like llama's.  Output logits use
 * the tied embedding; final_logit_softcapping is applied only when the file
 * sets it and has no sliding window (llama.cpp's sliding-window build never
 * applies it; Gemma 3 files do not set it).
 *
 * GELU follows ggml's CPU path (GGML_GELU_FP16): the input is rounded to
 * fp16 and looked up in a 64K table of fp16(gelu_tanh(x)); inputs <= -10
 * give 0 and inputs >= 10 pass through (lm_op_geglu_row).  The norms of a
 * row stage go through lm_op_rmsnorm_rows several rows at a time (same
 * floats per row).
 */
#include "model_gemma3.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "context_impl.h"
#include "kernels.h"
#include "model_ops.h"
#include "quant.h"

#define GEMMA3_SWA_PATTERN 6			/* one global layer in every 6 */
#define GEMMA3_ROPE_BASE_LOCAL 10000.0f /* RoPE base of the sliding-window layers */

/* Complete a gemma3 configuration. */
bool
lm_gemma3_read_config(const lm_gguf *g, lm_model_config *c, char *err, size_t errlen)
{
	char		key[128];
	uint64_t	swa = 0;
	double		cap = 0.0,
				scale;

	c->rope_type = LM_ROPE_NEOX;
	snprintf(key, sizeof(key), "%s.attention.sliding_window", c->arch);
	if (lm_gguf_find(g, key) != NULL && (!lm_gguf_get_u64(g, key, &swa) || swa > INT32_MAX))
	{
		snprintf(err, errlen, "model metadata \"%s\" is not a valid window size", key);
		return false;
	}
	c->n_swa = (int32_t) swa;
	c->swa_pattern = swa > 0 ? GEMMA3_SWA_PATTERN : 0;
	c->rope_freq_base_swa = GEMMA3_ROPE_BASE_LOCAL;
	snprintf(key, sizeof(key), "%s.final_logit_softcapping", c->arch);
	if (lm_gguf_find(g, key) != NULL && (!lm_gguf_get_f64(g, key, &cap) || !isfinite(cap) || cap < 0.0))
	{
		snprintf(err, errlen, "model metadata \"%s\" is not a non-negative number", key);
		return false;
	}
	c->final_logit_softcap = (float) cap;
	snprintf(key, sizeof(key), "%s.attention.scale", c->arch);
	if (lm_gguf_find(g, key) == NULL)
		c->attn_q_scale = 1.0f / sqrtf((float) c->head_dim_k);
	else if (!lm_gguf_get_f64(g, key, &scale) || !isfinite(scale) || !(scale > 0.0))
	{
		snprintf(err, errlen, "model metadata \"%s\" is not a positive number", key);
		return false;
	}
	else
		c->attn_q_scale = (float) scale;
	return true;
}

/* Bind one F32 vector of n elements named "blk.<l>.<suffix>". */
static bool
bind_norm(const lm_gguf *g, int l, const char *suffix, int64_t n, const float **out,
		  char *err, size_t errlen)
{
	char		name[96];
	const lm_gguf_tensor *t;

	snprintf(name, sizeof(name), "blk.%d.%s", l, suffix);
	t = lm_gguf_find_tensor(g, name);
	if (t == NULL)
	{
		snprintf(err, errlen, "model file lacks tensor \"%s\"", name);
		return false;
	}
	if (t->type != LM_TYPE_F32 || t->n_elements != (uint64_t) n || t->ne[0] != n)
	{
		snprintf(err, errlen, "tensor \"%s\" is %s [%lld, %lld], expected F32 [%lld]",
				 name, lm_type_name(t->type), (long long) t->ne[0], (long long) t->ne[1],
				 (long long) n);
		return false;
	}
	*out = t->data;
	return true;
}

/* Bind the extra norms of every layer. */
bool
lm_gemma3_bind(lm_model *m, char *err, size_t errlen)
{
	const lm_model_config *c = &m->cfg;

	for (int l = 0; l < c->n_layer; l++)
	{
		lm_layer_weights *L = &m->layers[l];

		if (!bind_norm(m->gguf, l, "attn_q_norm.weight", c->head_dim_k, &L->attn_q_norm, err, errlen) ||
			!bind_norm(m->gguf, l, "attn_k_norm.weight", c->head_dim_k, &L->attn_k_norm, err, errlen) ||
			!bind_norm(m->gguf, l, "post_attention_norm.weight", c->n_embd, &L->attn_post_norm, err, errlen) ||
			!bind_norm(m->gguf, l, "post_ffw_norm.weight", c->n_embd, &L->ffn_post_norm, err, errlen))
			return false;
	}
	return true;
}

/* True when layer il uses the sliding window (and the local RoPE base). */
static inline bool
layer_is_local(const lm_model_config *c, int il)
{
	return c->swa_pattern > 0 && il % c->swa_pattern < c->swa_pattern - 1;
}

/* What the row stages of one gemma3 layer need. */
typedef struct gemma3_rows
{
	lm_context *ctx;			/* context */
	const lm_step *st;			/* step */
	int			layer;			/* layer index */
	const float *post;			/* norm of xb2 before the residual add, NULL for no add */
	const float *pre;			/* norm of x into xb after it, NULL for none */
	float		q_scale;		/* multiplies the queries */
} gemma3_rows;

/* Row stage: [xb2 = rmsnorm(xb2) * post; x += xb2;] then xb = rmsnorm(x) * pre when set. */
static void
stage_post_add_norm(void *arg, int t0, int t1)
{
	gemma3_rows *r = arg;
	const lm_model_config *c = &r->ctx->model->cfg;
	int			E = c->n_embd;
	float	   *x = r->ctx->x + (size_t) t0 * E,
			   *d = r->ctx->xb2 + (size_t) t0 * E;
	size_t		n = (size_t) (t1 - t0) * E;

	if (r->post)
	{
		lm_op_rmsnorm_rows(d, E, d, E, r->post, E, t1 - t0, c->rms_eps);
		for (size_t i = 0; i < n; i++)
			x[i] = d[i] + x[i];
	}
	if (r->pre)
		lm_op_rmsnorm_rows(r->ctx->xb + (size_t) t0 * E, E, x, E, r->pre, E, t1 - t0, c->rms_eps);
}

/* Row stage: per-head Q/K norms, RoPE, query scale; keys and values into the cache. */
static void
stage_qk(void *arg, int t0, int t1)
{
	gemma3_rows *r = arg;
	lm_context *ctx = r->ctx;
	const lm_model_config *c = &ctx->model->cfg;
	const lm_layer_weights *L = &ctx->model->layers[r->layer];
	const lm_batch *b = r->st->batch;
	int			hdk = c->head_dim_k,
				kd = c->n_head_kv * c->head_dim_k,
				vd = c->n_head_kv * c->head_dim_v,
				qd = c->n_head * c->head_dim_k;

	/* the heads of consecutive tokens are consecutive rows of hdk floats */
	lm_op_rmsnorm_rows(ctx->q + (size_t) t0 * qd, hdk, ctx->q + (size_t) t0 * qd, hdk, L->attn_q_norm, hdk,
					   (t1 - t0) * c->n_head, c->rms_eps);
	lm_op_rmsnorm_rows(ctx->k + (size_t) t0 * kd, hdk, ctx->k + (size_t) t0 * kd, hdk, L->attn_k_norm, hdk,
					   (t1 - t0) * c->n_head_kv, c->rms_eps);
	for (int t = t0; t < t1; t++)
	{
		const float *cs = ctx->rope_cs + (size_t) t * c->n_rot;
		float	   *q = ctx->q + (size_t) t * qd,
				   *k = ctx->k + (size_t) t * kd;
		int			seq = b->seq_id[r->st->i0 + t],
					pos = b->pos[r->st->i0 + t];

		lm_op_rope_apply(q, c->n_head, hdk, c->n_rot, c->rope_type, cs);
		lm_op_rope_apply(k, c->n_head_kv, hdk, c->n_rot, c->rope_type, cs);
		lm_op_scale(q, r->q_scale, qd);
		memcpy(lm_kv_k(ctx->kv, seq, r->layer, pos), k, sizeof(float) * kd);
		memcpy(lm_kv_v(ctx->kv, seq, r->layer, pos), ctx->v + (size_t) t * vd, sizeof(float) * vd);
	}
}

/* Row stage: GEGLU, hb = gelu(hb) * hb2. */
static void
stage_geglu(void *arg, int t0, int t1)
{
	gemma3_rows *r = arg;
	size_t		F = (size_t) r->ctx->model->cfg.n_ff;

	lm_op_geglu_row(r->ctx->hb + (size_t) t0 * F, r->ctx->hb2 + (size_t) t0 * F, (int) ((size_t) (t1 - t0) * F));
}

/* Run the gemma3 forward pass for one step of a batch. */
void
lm_gemma3_forward_step(lm_context *ctx, const lm_step *st)
{
	const lm_model *m = ctx->model;
	const lm_model_config *c = &m->cfg;
	const lm_batch *b = st->batch;
	int			n = st->n,
				E = c->n_embd;
	float		embd_scale = sqrtf((float) E),
				angles_base = 0.0f;
	gemma3_rows r = {ctx, st, 0, NULL, m->layers[0].attn_norm, c->attn_q_scale};

	/* token embeddings, scaled by sqrt(n_embd) */
	for (int t = 0; t < n; t++)
	{
		float	   *x = ctx->x + (size_t) t * E;

		lm_dequantize_row(m->tok_embd.type,
						  (const char *) m->tok_embd.data + (size_t) b->token[st->i0 + t] * m->tok_embd.row_bytes,
						  x, E);
		for (int i = 0; i < E; i++)
			x[i] *= embd_scale;
	}

	/* attention RMSNorm of layer 0 (later layers' come with the previous residual) */
	lm_op_for_rows(ctx, n, stage_post_add_norm, &r);

	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		bool		local = layer_is_local(c, l);
		float		base = local ? c->rope_freq_base_swa : c->rope_freq_base;

		r.layer = l;

		/* RoPE angles for this layer's base (recomputed only when it changes) */
		if (base != angles_base)
		{
			lm_op_rope_angles(ctx->rope_cs, st, c->n_rot, base, c->rope_freq_scale, m->rope_freqs);
			angles_base = base;
		}

		/* Q, K, V projections */
		{
			const lm_weight *w[3] = {&L->wq, &L->wk, &L->wv};
			float	   *y[3] = {ctx->q, ctx->k, ctx->v};

			lm_ctx_matmul(ctx, n, ctx->xb, 3, w, y);
		}

		/* per-head Q/K norms, RoPE, query scale; keys and values into the cache */
		lm_op_for_rows(ctx, n, stage_qk, &r);

		/* causal attention, windowed on local layers; scores unscaled */
		lm_op_attention(ctx, st, l, 1.0f, local ? c->n_swa : 0);

		/* output projection; post-attention norm, residual, FFN RMSNorm */
		{
			const lm_weight *w[1] = {&L->wo};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->att, 1, w, y);
		}
		r.post = L->attn_post_norm;
		r.pre = L->ffn_norm;
		lm_op_for_rows(ctx, n, stage_post_add_norm, &r);

		/* gate and up projections, GEGLU */
		{
			const lm_weight *w[2] = {&L->ffn_gate, &L->ffn_up};
			float	   *y[2] = {ctx->hb, ctx->hb2};

			lm_ctx_matmul(ctx, n, ctx->xb, 2, w, y);
		}
		lm_op_for_rows(ctx, n, stage_geglu, &r);

		/* down projection; post-FFN norm, residual, next layer's attention RMSNorm */
		{
			const lm_weight *w[1] = {&L->ffn_down};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->hb, 1, w, y);
		}
		r.post = L->ffn_post_norm;
		r.pre = l + 1 < c->n_layer ? m->layers[l + 1].attn_norm : NULL;
		lm_op_for_rows(ctx, n, stage_post_add_norm, &r);
	}

	/* final norm, tied classifier; llama.cpp soft-caps only in its build without a sliding window */
	lm_op_output(ctx, st, c->swa_pattern == 0 ? c->final_logit_softcap : 0.0f);
}
