/*
 * model_gemma3.c — the Gemma 3 architecture: configuration, its extra
 * weights, and its forward pass.
 *
 * Gemma 3 is llama with these changes (llama.cpp's llm_build_gemma3):
 *   - the token embedding is multiplied by sqrtf(n_embd) (a float);
 *   - queries and keys get a per-head RMSNorm (attn_q_norm / attn_k_norm,
 *     one head_dim vector shared by all heads) before RoPE, and RoPE is NEOX;
 *   - queries are scaled by 1/sqrt(head_dim) before the scores (the 27B
 *     model uses 1/sqrt(n_embd/n_head)); the scores are not scaled again;
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
 * give 0 and inputs >= 10 pass through.
 */
#include "model_gemma3.h"

#include <math.h>
#include <pthread.h>
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
	double		cap = 0.0;

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

/* fp16(gelu_tanh(x)) for every fp16 bit pattern x; filled once. */
static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

/* Fill gelu_table as ggml does (its build contracts 1 + a*x*x into one fma). */
static void
gelu_table_init(void)
{
	for (int i = 0; i < (1 << 16); i++)
	{
		float		x = lm_fp16_to_fp32((uint16_t) i);
		float		inner = fmaf(0.044715f * x, x, 1.0f);
		float		y = 0.5f * x * (1.0f + tanhf(0.79788456080286535587989211986876f * x * inner));

		gelu_table[i] = lm_fp32_to_fp16(y);
	}
}

/* gelu_tanh(g) * u, ggml's table path. */
static inline float
geglu(float g, float u)
{
	if (g <= -10.0f)
		return 0.0f;
	if (g >= 10.0f)
		return g * u;
	return lm_fp16_to_fp32(gelu_table[lm_fp32_to_fp16(g)]) * u;
}

/* True when layer il uses the sliding window (and the local RoPE base). */
static inline bool
layer_is_local(const lm_model_config *c, int il)
{
	return c->swa_pattern > 0 && il % c->swa_pattern < c->swa_pattern - 1;
}

/* Run the gemma3 forward pass for one step of a batch. */
void
lm_gemma3_forward_step(lm_context *ctx, const lm_step *st)
{
	const lm_model *m = ctx->model;
	const lm_model_config *c = &m->cfg;
	const lm_batch *b = st->batch;
	lm_kv	   *kv = ctx->kv;
	int			n = st->n,
				E = c->n_embd,
				F = c->n_ff,
				hdk = c->head_dim_k,
				kd = c->n_head_kv * c->head_dim_k,
				vd = c->n_head_kv * c->head_dim_v,
				qd = c->n_head * c->head_dim_k,
				n_sel = 0,
				first_row = -1;
	float		embd_scale = sqrtf((float) E),
				q_scale = c->n_layer == 62 ? 1.0f / sqrtf((float) (E / c->n_head)) : 1.0f / sqrtf((float) hdk),
				angles_base = 0.0f;

	pthread_once(&gelu_once, gelu_table_init);

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

	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		bool		local = layer_is_local(c, l);
		float		base = local ? c->rope_freq_base_swa : c->rope_freq_base;

		/* RoPE angles for this layer's base (recomputed only when it changes) */
		if (base != angles_base)
		{
			lm_op_rope_angles(ctx->rope_cs, st, c->n_rot, base, c->rope_freq_scale, m->rope_freqs);
			angles_base = base;
		}

		/* attention RMSNorm */
		for (int t = 0; t < n; t++)
			lm_op_rmsnorm(ctx->xb + (size_t) t * E, ctx->x + (size_t) t * E, L->attn_norm, E, c->rms_eps);

		/* Q, K, V projections */
		{
			const lm_weight *w[3] = {&L->wq, &L->wk, &L->wv};
			float	   *y[3] = {ctx->q, ctx->k, ctx->v};

			lm_ctx_matmul(ctx, n, ctx->xb, 3, w, y);
		}

		/* per-head Q/K norms, RoPE, query scale; keys and values into the cache */
		for (int t = 0; t < n; t++)
		{
			const float *cs = ctx->rope_cs + (size_t) t * c->n_rot;
			float	   *q = ctx->q + (size_t) t * qd,
					   *k = ctx->k + (size_t) t * kd;
			int			seq = b->seq_id[st->i0 + t],
						pos = b->pos[st->i0 + t];

			for (int h = 0; h < c->n_head; h++)
				lm_op_rmsnorm(q + (size_t) h * hdk, q + (size_t) h * hdk, L->attn_q_norm, hdk, c->rms_eps);
			for (int h = 0; h < c->n_head_kv; h++)
				lm_op_rmsnorm(k + (size_t) h * hdk, k + (size_t) h * hdk, L->attn_k_norm, hdk, c->rms_eps);
			lm_op_rope_apply(q, c->n_head, hdk, c->n_rot, c->rope_type, cs);
			lm_op_rope_apply(k, c->n_head_kv, hdk, c->n_rot, c->rope_type, cs);
			for (int i = 0; i < qd; i++)
				q[i] *= q_scale;
			memcpy(lm_kv_k(kv, seq, l, pos), k, sizeof(float) * kd);
			memcpy(lm_kv_v(kv, seq, l, pos), ctx->v + (size_t) t * vd, sizeof(float) * vd);
		}

		/* causal attention, windowed on local layers; scores unscaled */
		lm_op_attention(ctx, st, l, 1.0f, local ? c->n_swa : 0);

		/* output projection, post-attention norm, residual */
		{
			const lm_weight *w[1] = {&L->wo};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->att, 1, w, y);
		}
		for (int t = 0; t < n; t++)
			lm_op_rmsnorm(ctx->xb2 + (size_t) t * E, ctx->xb2 + (size_t) t * E, L->attn_post_norm, E, c->rms_eps);
		for (size_t i = 0; i < (size_t) n * E; i++)
			ctx->x[i] = ctx->xb2[i] + ctx->x[i];

		/* FFN RMSNorm */
		for (int t = 0; t < n; t++)
			lm_op_rmsnorm(ctx->xb + (size_t) t * E, ctx->x + (size_t) t * E, L->ffn_norm, E, c->rms_eps);

		/* gate and up projections, GEGLU */
		{
			const lm_weight *w[2] = {&L->ffn_gate, &L->ffn_up};
			float	   *y[2] = {ctx->hb, ctx->hb2};

			lm_ctx_matmul(ctx, n, ctx->xb, 2, w, y);
		}
		for (size_t i = 0; i < (size_t) n * F; i++)
			ctx->hb[i] = geglu(ctx->hb[i], ctx->hb2[i]);

		/* down projection, post-FFN norm, residual */
		{
			const lm_weight *w[1] = {&L->ffn_down};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->hb, 1, w, y);
		}
		for (int t = 0; t < n; t++)
			lm_op_rmsnorm(ctx->xb2 + (size_t) t * E, ctx->xb2 + (size_t) t * E, L->ffn_post_norm, E, c->rms_eps);
		for (size_t i = 0; i < (size_t) n * E; i++)
			ctx->x[i] = ctx->xb2[i] + ctx->x[i];
	}

	/* tokens that want outputs, compacted into xb */
	for (int t = 0; t < n; t++)
		if (b->logits[st->i0 + t])
		{
			if (first_row < 0)
				first_row = ctx->out_idx[st->i0 + t];
			memcpy(ctx->xb + (size_t) n_sel * E, ctx->x + (size_t) t * E, sizeof(float) * E);
			n_sel++;
		}
	if (n_sel == 0)
		return;

	/* final RMSNorm (kept as the hidden state), tied classifier, optional soft-cap */
	{
		float	   *hid = ctx->hidden + (size_t) first_row * E;
		float	   *logits = ctx->logits + (size_t) first_row * c->n_vocab;
		const lm_weight *w[1] = {&m->output};
		float	   *y[1] = {logits};

		for (int t = 0; t < n_sel; t++)
			lm_op_rmsnorm(hid + (size_t) t * E, ctx->xb + (size_t) t * E, m->output_norm, E, c->rms_eps);
		lm_ctx_matmul(ctx, n_sel, hid, 1, w, y);
		/* llama.cpp soft-caps only in its build without a sliding window */
		if (c->final_logit_softcap > 0.0f && c->swa_pattern == 0)
		{
			float		cap = c->final_logit_softcap;

			for (size_t i = 0; i < (size_t) n_sel * c->n_vocab; i++)
				logits[i] = tanhf(logits[i] * (1.0f / cap)) * cap;
		}
	}
}
