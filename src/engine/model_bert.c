/*
 * model_bert.c — the bert encoder: loading its metadata and weights, its
 * forward pass, and sentence embeddings (pooling and normalisation) of many
 * texts per forward pass.
 *
 * The network (Hugging Face's BertModel, as sentence-transformers runs it):
 *   x = LayerNorm(tok_embd[id] + pos_embd[pos] + type_embd[0])
 *   per layer (post-LN):
 *     q, k, v = x Wq + bq, x Wk + bk, x Wv + bv
 *     a = softmax(q k^T / sqrt(head_dim)) v     per head, over every token
 *                                               of the same text (no mask
 *                                               beyond the text: bidirectional)
 *     x = LayerNorm(x + (a Wo + bo))
 *     x = LayerNorm(x + (gelu(x W1 + b1) W2 + b2))      gelu = erf form
 *                                               (erf to 3e-7: bert_ops.h)
 * then, for an embedding, the mean of the text's final rows ([CLS] and
 * [SEP] included; or the first row for CLS pooling), L2-normalised.
 *
 * Batching: a forward pass holds whole texts one after another (position 0
 * starts a text), so every matrix product is one GEMM over all their tokens
 * (F32 weights: gemm_f32.h's outer-product kernel, 32-row panels split
 * across the pool; other types: lm_ctx_matmul), and attention runs per
 * (text, head, 64-query chunk) on the pool, itself as two small products
 * on the same outer-product kernel (scores = Q K^T, then out = P V; see
 * attend), with no padding beyond the text's own tokens.  A call of
 * several texts on several threads instead gives each thread a group of
 * whole texts, run as one-thread passes of up to BERT_PASS_TOKENS tokens
 * (see Thread groups below): the threads never meet inside a pass.
 * Layer products in 13-bit integers (the default; lm_bert_set_f32 picks
 * F32): every F32 layer matrix is quantized per output row once, when the
 * model loads (lm_model.bert_i16), and each product's input per token
 * (gemm_i16.h; the LayerNorm stages quantize the rows they finish, the
 * attention output and the GELU output get a row stage of their own).
 * Chosen by measurement on all-MiniLM-L6-v2's 12 golden texts (minimum
 * cosine to the reference) and the 200 synopsis -> description pairs:
 *     F32                                    1.0000000   recall@1 0.895
 *     13 bits (4095 levels) rows x tokens    0.99998     0.890
 *     int8 rows x tokens                     0.9857      0.895
 *     int8 blocks of 32 x blocks of 32       0.9983      0.890
 *     int8 weights only, F32 activations     0.9965      0.890
 *     int8 blocks of 32, FFN only            0.9992      0.890
 * so no int8 scheme keeps the goal's cosine >= 0.9999.  (Recall hinges
 * on one query whose own description leads by 1.3e-4 in F32.)
 * A text's rows depend only on its own tokens, so its embedding is the same
 * alone or packed with others.  There is no KV cache: nothing is kept
 * between forward passes.
 *
 * LayerNorm sums in double over 16 lanes (bert_ops.h); biases are added
 * to a finished product (in the GEMM's store) before the residual, in
 * PyTorch's order; softmax subtracts the row maximum and sums 16-lane
 * float blocks in double (lm_op_softmax_sum).  Every element-wise step is
 * vectorised with the same floats on the scalar, AVX2 and AVX-512 paths.
 */
#include "model_bert.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_ops.h"
#include "context_impl.h"
#include "gemm_f32.h"
#include "gemm_i16.h"
#include "kernels.h"
#include "model_ops.h"
#include "quant.h"

/* Queries per attention work item. */
#define BERT_ATT_CHUNK 64

/* Read bert's own metadata. */
bool
lm_bert_read_config(const lm_gguf *g, lm_model_config *c, char *err, size_t errlen)
{
	double		eps = 1e-12;
	int64_t		v;
	bool		b;

	c->encoder = true;
	if (lm_gguf_find(g, "bert.attention.layer_norm_epsilon") != NULL &&
		(!lm_gguf_get_f64(g, "bert.attention.layer_norm_epsilon", &eps) || !(eps > 0.0) || !isfinite(eps)))
	{
		snprintf(err, errlen, "model metadata \"bert.attention.layer_norm_epsilon\" is not a positive number");
		return false;
	}
	c->norm_eps = (float) eps;
	if (lm_gguf_get_bool(g, "bert.attention.causal", &b) && b)
	{
		snprintf(err, errlen, "bert model with causal attention is not supported");
		return false;
	}
	c->pooling = 1;
	if (lm_gguf_get_i64(g, "bert.pooling_type", &v))
	{
		if (v != 1 && v != 2)
		{
			snprintf(err, errlen, "bert.pooling_type %lld is not supported (1 = mean, 2 = CLS)", (long long) v);
			return false;
		}
		c->pooling = (int32_t) v;
	}
	c->normalize = true;
	if (lm_gguf_get_bool(g, "sentence_transformers.normalize", &b))
		c->normalize = b;
	c->max_seq_len = c->n_ctx_train;
	if (lm_gguf_get_i64(g, "tokenizer.wordpiece.max_seq_length", &v))
	{
		if (v < 2 || v > c->n_ctx_train)
		{
			snprintf(err, errlen, "tokenizer.wordpiece.max_seq_length %lld is outside 2..%d (the model's positions)",
					 (long long) v, c->n_ctx_train);
			return false;
		}
		c->max_seq_len = (int32_t) v;
	}
	if (c->n_head_kv != c->n_head || c->head_dim_k * c->n_head != c->n_embd || c->head_dim_v != c->head_dim_k)
	{
		snprintf(err, errlen, "bert model must have n_embd = heads x head size and no grouped keys");
		return false;
	}
	return true;
}

/* Layer products per layer in lm_model.bert_i16. */
#define BERT_N_MM 6
_Static_assert(GEMM_I16_PANEL == GEMM_F32_PANEL, "one panel split serves both products");

/* Layer product i of L in the order of lm_model.bert_i16 (q, k, v, o, up, down). */
static const lm_weight *
layer_matrix(const lm_layer_weights *L, int i)
{
	const lm_weight *w[BERT_N_MM] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_up, &L->ffn_down};

	return w[i];
}

/* The integer form of the layer's product w (one of layer_matrix's), or NULL. */
static const lm_gemm_i16_weight *
layer_i16(const lm_model *m, int l, const lm_weight *w)
{
	if (m->bert_i16 == NULL)
		return NULL;
	for (int i = 0; i < BERT_N_MM; i++)
		if (layer_matrix(&m->layers[l], i) == w)
			return &m->bert_i16[l * BERT_N_MM + i];
	return NULL;
}

/* Quantize every layer product once, when all are F32 (other types keep lm_ctx_matmul). */
static bool
make_i16(lm_model *m, char *err, size_t errlen)
{
	int			n = m->cfg.n_layer * BERT_N_MM;

	if (n <= 0)
		return true;
	for (int i = 0; i < n; i++)
		if (layer_matrix(&m->layers[i / BERT_N_MM], i % BERT_N_MM)->type != LM_TYPE_F32)
			return true;
	m->bert_i16 = calloc((size_t) n, sizeof(lm_gemm_i16_weight));
	if (m->bert_i16 == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		const lm_weight *w = layer_matrix(&m->layers[i / BERT_N_MM], i % BERT_N_MM);

		if (!lm_gemm_i16_weight_make(w->data, w->n_rows, w->n_cols, &m->bert_i16[i]))
		{
			lm_bert_free(m);
			snprintf(err, errlen, "out of memory quantizing the layer weights");
			return false;
		}
	}
	return true;
}

/* Bind every bert tensor. */
bool
lm_bert_bind(lm_model *m, char *err, size_t errlen)
{
	const lm_gguf *g = m->gguf;
	lm_model_config *c = &m->cfg;
	const lm_gguf_tensor *tt = lm_gguf_find_tensor(g, "token_types.weight");
	int64_t		E = c->n_embd,
				F = c->n_ff;
	char		name[96];

	if (tt == NULL || tt->ne[1] < 1 || tt->ne[1] > 16)
	{
		snprintf(err, errlen, "model file lacks tensor \"token_types.weight\" with 1..16 rows");
		return false;
	}
	c->n_token_types = (int32_t) tt->ne[1];
	if (!lm_model_bind_matrix(g, "position_embd.weight", E, c->n_ctx_train, false, &m->pos_embd, err, errlen) ||
		!lm_model_bind_matrix(g, "token_types.weight", E, c->n_token_types, false, &m->type_embd, err, errlen) ||
		!lm_model_bind_vector(g, "token_embd_norm.weight", E, &m->embd_norm, err, errlen) ||
		!lm_model_bind_vector(g, "token_embd_norm.bias", E, &m->embd_norm_b, err, errlen))
		return false;
	if (m->pos_embd.type != LM_TYPE_F32 || m->type_embd.type != LM_TYPE_F32)
	{
		snprintf(err, errlen, "bert position and token-type embeddings must be F32");
		return false;
	}
	m->layers = calloc(c->n_layer, sizeof(lm_layer_weights));
	if (!m->layers)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (int l = 0; l < c->n_layer; l++)
	{
		lm_layer_weights *L = &m->layers[l];

#define NAME(s) (snprintf(name, sizeof(name), "blk.%d." s, l), name)
		if (!lm_model_bind_matrix(g, NAME("attn_q.weight"), E, E, true, &L->wq, err, errlen) ||
			!lm_model_bind_vector(g, NAME("attn_q.bias"), E, &L->bq, err, errlen) ||
			!lm_model_bind_matrix(g, NAME("attn_k.weight"), E, E, true, &L->wk, err, errlen) ||
			!lm_model_bind_vector(g, NAME("attn_k.bias"), E, &L->bk, err, errlen) ||
			!lm_model_bind_matrix(g, NAME("attn_v.weight"), E, E, true, &L->wv, err, errlen) ||
			!lm_model_bind_vector(g, NAME("attn_v.bias"), E, &L->bv, err, errlen) ||
			!lm_model_bind_matrix(g, NAME("attn_output.weight"), E, E, true, &L->wo, err, errlen) ||
			!lm_model_bind_vector(g, NAME("attn_output.bias"), E, &L->bo, err, errlen) ||
			!lm_model_bind_vector(g, NAME("attn_output_norm.weight"), E, &L->attn_out_norm, err, errlen) ||
			!lm_model_bind_vector(g, NAME("attn_output_norm.bias"), E, &L->attn_out_norm_b, err, errlen) ||
			!lm_model_bind_matrix(g, NAME("ffn_up.weight"), E, F, true, &L->ffn_up, err, errlen) ||
			!lm_model_bind_vector(g, NAME("ffn_up.bias"), F, &L->ffn_up_b, err, errlen) ||
			!lm_model_bind_matrix(g, NAME("ffn_down.weight"), F, E, true, &L->ffn_down, err, errlen) ||
			!lm_model_bind_vector(g, NAME("ffn_down.bias"), E, &L->ffn_down_b, err, errlen) ||
			!lm_model_bind_vector(g, NAME("layer_output_norm.weight"), E, &L->out_norm, err, errlen) ||
			!lm_model_bind_vector(g, NAME("layer_output_norm.bias"), E, &L->out_norm_b, err, errlen))
			return false;
#undef NAME
	}
	return make_i16(m, err, errlen);
}

/* Free the integer forms of the layer products. */
void
lm_bert_free(lm_model *m)
{
	if (m->bert_i16 == NULL)
		return;
	for (int i = 0; i < m->cfg.n_layer * BERT_N_MM; i++)
		lm_gemm_i16_weight_free(&m->bert_i16[i]);
	free(m->bert_i16);
	m->bert_i16 = NULL;
}

/* Choose F32 or 13-bit integer layer products for ctx. */
void
lm_bert_set_f32(lm_context *ctx, bool f32)
{
	ctx->bert_f32 = f32;
}

/* Check an encoder batch. */
bool
lm_bert_check_batch(const lm_context *ctx, const lm_batch *b, int *n_out, char *err, size_t errlen)
{
	const lm_model_config *c = &ctx->model->cfg;
	int			start = 0;

	*n_out = 0;
	if (b->n_tokens < 0 || b->n_tokens > b->n_max)
	{
		snprintf(err, errlen, "batch has %d tokens but room for %d", b->n_tokens, b->n_max);
		return false;
	}
	for (int i = 0; i < b->n_tokens; i++)
	{
		int32_t		t = b->token[i],
					p = b->pos[i];

		if (t < 0 || t >= c->n_vocab)
		{
			snprintf(err, errlen, "batch token %d has id %d, outside the vocabulary 0..%d", i, t, c->n_vocab - 1);
			return false;
		}
		if (p == 0)
			start = i;
		else if (i == 0 || p != b->pos[i - 1] + 1)
		{
			snprintf(err, errlen, "batch token %d has position %d; an encoder takes whole texts, positions 0, 1, 2, ...",
					 i, p);
			return false;
		}
		if (p >= ctx->n_ctx || p >= c->n_ctx_train || i - start + 1 > ctx->n_batch)
		{
			snprintf(err, errlen, "batch token %d has position %d; an encoder text holds at most %d tokens",
					 i, p, ctx->n_ctx < ctx->n_batch ? ctx->n_ctx : ctx->n_batch);
			return false;
		}
		if (b->out[i] == LM_OUT_LOGITS)
		{
			snprintf(err, errlen, "model architecture \"%s\" is a sentence encoder: it gives embeddings, not text",
					 c->arch);
			return false;
		}
		if (b->out[i] == LM_OUT_HIDDEN)
			(*n_out)++;
	}
	return true;
}

/* What the row stages of one layer need. */
typedef struct bert_rows
{
	lm_context *ctx;			/* context */
	const lm_step *st;			/* step */
	const lm_layer_weights *L;	/* layer, NULL for the embedding stage */
	bool		quantize;		/* also quantize each finished row for the next integer product */
} bert_rows;

/* Whether ctx's products of n rows of k inputs run on the integer form (it is there, and the scratch fits). */
static bool
use_i16(const lm_context *ctx, int n, int64_t k)
{
	return !ctx->bert_f32 && ctx->model->bert_i16 != NULL &&
		(size_t) GEMM_I16_KPAD(k) * sizeof(int16_t) * n <= ctx->xq_bytes && sizeof(float) * n <= ctx->xq_bytes;
}

/* Quantize row t of x (n_embd floats) into the integer products' input scratch (ctx->xq[0], scales in xq[1]). */
static void
quantize_x_row(bert_rows *r, int t)
{
	int64_t		E = r->ctx->model->cfg.n_embd;

	if (r->quantize)
		lm_gemm_i16_quantize_rows(r->ctx->x, E, E, t, t + 1, r->ctx->xq[0], GEMM_I16_KPAD(E), r->ctx->xq[1]);
}

/* Row stage: x = LayerNorm(tok_embd[id] + pos_embd[pos] + type_embd[0]). */
static void
stage_embed(void *arg, int t0, int t1)
{
	bert_rows  *r = arg;
	const lm_model *m = r->ctx->model;
	const lm_batch *b = r->st->batch;
	int			E = m->cfg.n_embd;
	const float *type0 = m->type_embd.data;

	for (int t = t0; t < t1; t++)
	{
		float	   *x = r->ctx->x + (size_t) t * E;
		const float *pe = (const float *) ((const char *) m->pos_embd.data +
										   (size_t) b->pos[r->st->i0 + t] * m->pos_embd.row_bytes);

		lm_dequantize_row(m->tok_embd.type,
						  (const char *) m->tok_embd.data + (size_t) b->token[r->st->i0 + t] * m->tok_embd.row_bytes,
						  x, E);
		for (int i = 0; i < E; i++)
			x[i] = (x[i] + pe[i]) + type0[i];
		lm_bert_add_norm_row(x, NULL, m->embd_norm, m->embd_norm_b, E, m->cfg.norm_eps);
		quantize_x_row(r, t);
	}
}

/* x = LayerNorm(x + xb2) for tokens [t0, t1) (xb2 holds a product with its bias added). */
static void
residual_norm(bert_rows *r, int t0, int t1, const float *w, const float *wb)
{
	int			E = r->ctx->model->cfg.n_embd;

	for (int t = t0; t < t1; t++)
	{
		lm_bert_add_norm_row(r->ctx->x + (size_t) t * E, r->ctx->xb2 + (size_t) t * E, w, wb, E,
							 r->ctx->model->cfg.norm_eps);
		quantize_x_row(r, t);
	}
}

/* Row stage: x = LayerNorm(x + (attention output Wo + bo)). */
static void
stage_attn_residual(void *arg, int t0, int t1)
{
	bert_rows  *r = arg;

	residual_norm(r, t0, t1, r->L->attn_out_norm, r->L->attn_out_norm_b);
}

/* Row stage: hb = gelu(hb) (hb = x W1 + b1), the erf form (bert_ops.h). */
static void
stage_gelu(void *arg, int t0, int t1)
{
	bert_rows  *r = arg;
	int			F = r->ctx->model->cfg.n_ff;

	for (int t = t0; t < t1; t++)
		lm_bert_gelu_row(r->ctx->hb + (size_t) t * F, F);
}

/* Row stage: x = LayerNorm(x + (FFN output W2 + b2)). */
static void
stage_ffn_residual(void *arg, int t0, int t1)
{
	bert_rows  *r = arg;

	residual_norm(r, t0, t1, r->L->out_norm, r->L->out_norm_b);
}

/* One attention job: the step's texts (ctx->out_rows holds their first rows, n_texts + 1 entries). */
typedef struct bert_att
{
	lm_context *ctx;			/* context */
	int			n_texts;		/* texts in the step */
	int64_t		n_items;		/* (text, head, chunk) items in all */
	float		scale;			/* 1 / sqrt(head_dim) */
} bert_att;

/* Floats of scratch one task needs: attention of texts of up to n_ctx tokens, or a GEMM panel. */
size_t
lm_bert_attention_scratch(const lm_model_config *c, int n_ctx)
{
	size_t		panel = GEMM_F32_SCRATCH(n_ctx > c->head_dim_k ? n_ctx : c->head_dim_k),
				att = (size_t) BERT_ATT_CHUNK * n_ctx + panel,
				gemm = GEMM_F32_SCRATCH(c->n_ff > c->n_embd ? c->n_ff : c->n_embd);

	/* scores and weights (chunk x n_ctx), then one packed panel of keys or values */
	return att > gemm ? att : gemm;
}

/*
 * Attention of queries [q0, q1) of text rows [s0, s0 + len), head h, into
 * ctx->att, as two products on the outer-product F32 kernel (gemm_f32.h):
 * scores = Q K^T, 32 keys per packed panel, the queries read in place;
 * then out = P V, whose panels are the values themselves (a k-major panel
 * of V^T is V's rows: 32 head columns each).  Each output element is an
 * fma chain over its own query's head dimensions, then over the text's
 * keys in order, whatever the chunk or the batch.
 */
static void
attend(lm_context *ctx, int s0, int len, int h, int q0, int q1, float scale, float *scratch)
{
	const lm_model_config *c = &ctx->model->cfg;
	int			E = c->n_embd,
				hd = c->head_dim_k,
				nq = q1 - q0;
	float	   *sc = scratch,	/* (chunk, len) scores, then weights */
			   *panel = sc + (size_t) BERT_ATT_CHUNK * ctx->n_ctx;	/* one packed panel */
	const float *q = ctx->q + (size_t) (s0 + q0) * E + (size_t) h * hd,
			   *k = ctx->k + (size_t) s0 * E + (size_t) h * hd,
			   *v = ctx->v + (size_t) s0 * E + (size_t) h * hd;

	/* scores: sc[i * len + j] = dot(q_i, k_j) */
	for (int j0 = 0; j0 < len; j0 += GEMM_F32_PANEL)
	{
		int			nr = len - j0 < GEMM_F32_PANEL ? len - j0 : GEMM_F32_PANEL;

		lm_gemm_f32_pack(k, E, hd, j0, nr, panel);
		lm_gemm_f32_panel(panel, hd, nr, q, E, nq, sc + j0, len, NULL);
	}

	/* softmax of each query's scores (max subtracted; 16-lane float blocks summed in double), in place */
	for (int i = 0; i < nq; i++)
	{
		float	   *srow = sc + (size_t) i * len;

		lm_op_scale(srow, scale, len);
		lm_op_exp_sub(srow, lm_bert_max_row(srow, len), len);
		lm_op_scale(srow, (float) (1.0 / lm_op_softmax_sum(srow, 0, len)), len);
	}

	/* out[i][d] = sum over j of p_i[j] v_j[d], 32 head columns per panel */
	for (int d0 = 0; d0 < hd; d0 += GEMM_F32_PANEL)
	{
		int			nr = hd - d0 < GEMM_F32_PANEL ? hd - d0 : GEMM_F32_PANEL;

		if (nr < GEMM_F32_PANEL)
			memset(panel, 0, sizeof(float) * GEMM_F32_SCRATCH(len));
		for (int j = 0; j < len; j++)
			memcpy(panel + (size_t) j * GEMM_F32_PANEL, v + (size_t) j * E + d0, sizeof(float) * nr);
		lm_gemm_f32_panel(panel, len, nr, sc, len, nq, ctx->att + (size_t) (s0 + q0) * E + (size_t) h * hd + d0, E,
						  NULL);
	}
}

/* Task ith of nth: a contiguous range of (text, head, chunk) items. */
static void
att_worker(void *arg, int ith, int nth)
{
	bert_att   *j = arg;
	lm_context *ctx = j->ctx;
	const lm_model_config *c = &ctx->model->cfg;
	int64_t		lo = j->n_items * ith / nth,
				hi = j->n_items * (ith + 1) / nth,
				base = 0;
	float	   *scratch = ctx->scores + lm_bert_attention_scratch(c, ctx->n_ctx) * (size_t) ith;

	for (int s = 0; s < j->n_texts && base < hi; s++)
	{
		int			s0 = ctx->out_rows[s],
					len = ctx->out_rows[s + 1] - s0,
					chunks = (len + BERT_ATT_CHUNK - 1) / BERT_ATT_CHUNK;
		int64_t		n = (int64_t) chunks * c->n_head;

		for (int64_t it = lo > base ? lo - base : 0; it < n && base + it < hi; it++)
		{
			int			h = (int) (it / chunks),
						q0 = (int) (it % chunks) * BERT_ATT_CHUNK,
						q1 = q0 + BERT_ATT_CHUNK < len ? q0 + BERT_ATT_CHUNK : len;

			attend(ctx, s0, len, h, q0, q1, j->scale, scratch);
		}
		base += n;
	}
}

/* One threaded product of up to 3 F32 matrices sharing an input (gemm_f32.h). */
typedef struct bert_mm
{
	lm_context *ctx;			/* context (per-task scratch in ctx->scores) */
	int			n_mm;			/* matrices */
	const lm_weight *w[3];		/* weights */
	const float *b[3];			/* biases (w->n_rows floats) */
	float	   *y[3];			/* outputs, (n, w->n_rows) */
	const float *x;				/* (n, n_cols) input */
	int			n;				/* activation rows */
	int64_t		panels;			/* panels of all matrices */
	bool		gelu;			/* apply GELU to the outputs (one matrix only) */
	const lm_gemm_i16_weight *q[3];	/* integer forms of w, or NULL: F32 */
	int16_t    *xq;				/* (n, xq_stride) x quantized, when q[0] is set */
	int64_t		xq_stride;		/* int16 per quantized row */
	float	   *xq_scale;		/* (n) their scales */
} bert_mm;

/* Row stage: quantize the product's input rows (gemm_i16.h). */
static void
stage_quantize(void *arg, int t0, int t1)
{
	bert_mm    *j = arg;

	lm_gemm_i16_quantize_rows(j->x, j->w[0]->n_cols, j->w[0]->n_cols, t0, t1, j->xq, j->xq_stride, j->xq_scale);
}

/* Task ith of nth: a contiguous range of the matrices' 32-row panels. */
static void
mm_worker(void *arg, int ith, int nth)
{
	bert_mm    *j = arg;
	const lm_model_config *c = &j->ctx->model->cfg;
	float	   *scratch = j->ctx->scores + lm_bert_attention_scratch(c, j->ctx->n_ctx) * (size_t) ith;
	int64_t		lo = j->panels * ith / nth,
				hi = j->panels * (ith + 1) / nth,
				base = 0;

	for (int m = 0; m < j->n_mm; m++)
	{
		const lm_weight *w = j->w[m];
		int64_t		np = (w->n_rows + GEMM_F32_PANEL - 1) / GEMM_F32_PANEL,
					p0 = lo > base ? lo - base : 0,
					p1 = hi - base < np ? hi - base : np;

		if (p0 < p1)
		{
			int64_t		r0 = p0 * GEMM_F32_PANEL,
						r1 = p1 * GEMM_F32_PANEL < w->n_rows ? p1 * GEMM_F32_PANEL : w->n_rows;

			if (j->q[m])
				lm_gemm_i16_rows(j->q[m], r0, r1, j->xq, j->xq_stride, j->xq_scale, j->n, j->y[m], w->n_rows,
								 j->b[m]);
			else
				lm_gemm_f32_rows(w->data, w->n_cols, r0, r1, j->x, w->n_cols, j->n, j->y[m], w->n_rows, j->b[m],
								 scratch);
			/* GELU on this task's own columns while they are still in cache */
			for (int t = 0; j->gelu && t < j->n; t++)
				lm_bert_gelu_row(j->y[m] + (size_t) t * w->n_rows + r0, (int) (r1 - r0));
		}
		base += np;
	}
}

/*
 * Y_j = W_j x + b_j for up to 3 matrices sharing one input: F32 weights
 * (the converted files) through the outer-product GEMM, panels split
 * across the pool, the bias added to each finished sum, and with gelu
 * (one matrix) GELU applied by each task to the columns it computed;
 * other types through lm_ctx_matmul, then the bias.  Returns whether the
 * GELU was applied.  A model's weights have one type per matrix, so every
 * text always takes the same path.
 */
static bool
bert_matmul(lm_context *ctx, int l, int n, const float *x, bool x_quantized, int n_mm, const lm_weight *const *w,
			const float *const *b, float *const *y, bool gelu)
{
	bert_mm		j = {.ctx = ctx, .n_mm = n_mm, .x = x, .n = n, .gelu = gelu && n_mm == 1};
	int64_t		kp = GEMM_I16_KPAD(w[0]->n_cols);
	bool		i16 = use_i16(ctx, n, w[0]->n_cols);

	for (int m = 0; m < n_mm; m++)
	{
		if (w[m]->type != LM_TYPE_F32)
		{
			lm_ctx_matmul(ctx, n, x, n_mm, w, y);
			for (int mm = 0; mm < n_mm; mm++)
				for (int t = 0; t < n; t++)
					for (int i = 0; i < w[mm]->n_rows; i++)
						y[mm][(size_t) t * w[mm]->n_rows + i] += b[mm][i];
			return false;
		}
		j.w[m] = w[m];
		j.b[m] = b[m];
		j.y[m] = y[m];
		j.q[m] = i16 ? layer_i16(ctx->model, l, w[m]) : NULL;
		j.panels += (w[m]->n_rows + GEMM_F32_PANEL - 1) / GEMM_F32_PANEL;
	}
	if (j.q[0])
	{
		/* the input quantized once for all the matrices (scratch: the unused activation buffers) */
		j.xq = ctx->xq[0];
		j.xq_stride = kp;
		j.xq_scale = ctx->xq[1];
		if (!x_quantized)
			lm_op_for_rows(ctx, n, stage_quantize, &j);
	}
	lm_ctx_run(ctx, mm_worker, &j);
	return j.gelu;
}

/* Run the bert forward pass for one step of whole texts. */
void
lm_bert_forward_step(lm_context *ctx, const lm_step *st)
{
	const lm_model *m = ctx->model;
	const lm_model_config *c = &m->cfg;
	const lm_batch *b = st->batch;
	int			n = st->n,
				E = c->n_embd;
	bert_rows	r = {ctx, st, NULL, use_i16(ctx, n, c->n_embd)};
	bert_att	aj = {ctx, 0, 0, 1.0f / sqrtf((float) c->head_dim_k)};

	/* the step's texts: first rows, then the end */
	for (int t = 0; t < n; t++)
		if (b->pos[st->i0 + t] == 0)
		{
			int			len = 1;

			while (t + len < n && b->pos[st->i0 + t + len] != 0)
				len++;
			ctx->out_rows[aj.n_texts++] = t;
			aj.n_items += (int64_t) ((len + BERT_ATT_CHUNK - 1) / BERT_ATT_CHUNK) * c->n_head;
		}
	ctx->out_rows[aj.n_texts] = n;

	/* embeddings and their LayerNorm */
	lm_op_for_rows(ctx, n, stage_embed, &r);

	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];

		r.L = L;
		/* Q, K, V projections with their biases */
		{
			const lm_weight *w[3] = {&L->wq, &L->wk, &L->wv};
			const float *bias[3] = {L->bq, L->bk, L->bv};
			float	   *y[3] = {ctx->q, ctx->k, ctx->v};

			bert_matmul(ctx, l, n, ctx->x, r.quantize, 3, w, bias, y, false);
		}

		/* bidirectional attention within each text */
		lm_ctx_run(ctx, att_worker, &aj);

		/* output projection, bias, residual, LayerNorm */
		{
			const lm_weight *w[1] = {&L->wo};
			const float *bias[1] = {L->bo};
			float	   *y[1] = {ctx->xb2};

			bert_matmul(ctx, l, n, ctx->att, false, 1, w, bias, y, false);
		}
		lm_op_for_rows(ctx, n, stage_attn_residual, &r);

		/* feed-forward: up and GELU (fused on F32 weights), down, residual, LayerNorm */
		{
			const lm_weight *w[1] = {&L->ffn_up};
			const float *bias[1] = {L->ffn_up_b};
			float	   *y[1] = {ctx->hb};

			if (!bert_matmul(ctx, l, n, ctx->x, r.quantize, 1, w, bias, y, true))
				lm_op_for_rows(ctx, n, stage_gelu, &r);
		}
		{
			const lm_weight *w[1] = {&L->ffn_down};
			const float *bias[1] = {L->ffn_down_b};
			float	   *y[1] = {ctx->xb2};

			bert_matmul(ctx, l, n, ctx->hb, false, 1, w, bias, y, false);
		}
		r.quantize = r.quantize && l + 1 < c->n_layer;	/* the last layer's rows feed no product */
		lm_op_for_rows(ctx, n, stage_ffn_residual, &r);
	}

	/* the final rows of the tokens that asked for outputs */
	for (int t = 0; t < n; t++)
	{
		int32_t		row = ctx->out_idx[st->i0 + t];

		if (row >= 0)
			memcpy(ctx->hidden + (size_t) row * E, ctx->x + (size_t) t * E, sizeof(float) * E);
	}
}

/* Pool the hidden rows of batch tokens [first_tok, first_tok + n) of one text into out (n_embd floats) and normalise. */
static void
pool_text(const lm_context *ctx, int first_tok, int n, float *out)
{
	const lm_model_config *c = &ctx->model->cfg;
	int			E = c->n_embd;
	double		norm = 0.0;
	double	   *sum = calloc(E, sizeof(double));

	if (sum == NULL)
	{
		/* fall back to float sums: no memory for the double accumulators */
		for (int e = 0; e < E; e++)
			out[e] = 0.0f;
		for (int k = 0; k < n; k++)
		{
			const float *h = lm_context_hidden(ctx, first_tok + k);

			for (int e = 0; e < E; e++)
				out[e] += h[e] / n;
		}
	}
	else
	{
		for (int k = 0; k < n; k++)
		{
			const float *h = lm_context_hidden(ctx, first_tok + k);

			for (int e = 0; e < E; e++)
				sum[e] += h[e];
		}
		for (int e = 0; e < E; e++)
			out[e] = (float) (sum[e] / n);
		free(sum);
	}
	if (!c->normalize)
		return;
	for (int e = 0; e < E; e++)
		norm += (double) out[e] * out[e];
	norm = sqrt(norm);
	for (int e = 0; e < E; e++)
		out[e] = norm > 0.0 ? (float) (out[e] / norm) : 0.0f;
}

/*
 * Tokens per forward pass that one thread runs alone (a longer text gets a
 * pass of its own): a pass's activations, the FFN's 6 KiB a token above
 * all, then stay in the core's 2 MiB L2 from stage to stage (about 4 %
 * more rows per CPU second than passes of 512 on this machine's cores);
 * passes split across threads keep n_batch, fewer passes meeting fewer
 * times.
 */
#define BERT_PASS_TOKENS 256

/*
 * Whole texts of a call, forward pass by forward pass, on one context:
 * texts which[0 .. n) (indexes into ids / n_ids / out rows), packed in that
 * order, as many whole texts per pass as n_batch tokens hold
 * (BERT_PASS_TOKENS on one thread).
 */
static int
embed_passes(lm_context *ctx, const int32_t *const *ids, const int *n_ids, const int *which, int n,
			 float *out, char *err, size_t errlen)
{
	const lm_model_config *c = &ctx->model->cfg;
	lm_batch   *b = lm_batch_create(ctx->n_batch);
	int			rc = 0,
				cap = (ctx->serial || ctx->n_threads == 1) && BERT_PASS_TOKENS < ctx->n_batch ? BERT_PASS_TOKENS
				: ctx->n_batch;

	if (b == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n && rc == 0;)
	{
		int			first = i;

		lm_batch_clear(b);
		/* whole texts, as many as fit */
		while (i < n)
		{
			int			t = which[i],
						len = n_ids[t] < c->max_seq_len ? n_ids[t] : c->max_seq_len;

			if (b->n_tokens > 0 && b->n_tokens + len > cap)
				break;
			for (int k = 0; k < len; k++)
			{
				/* a cut text keeps its last token ([SEP]) at the end */
				int32_t		id = (k == len - 1) ? ids[t][n_ids[t] - 1] : ids[t][k];

				lm_batch_add_token(b, id, k, 0, c->pooling == 1 || k == 0 ? LM_OUT_HIDDEN : LM_OUT_NONE,
								   LM_PREFILL_AUTO);
			}
			i++;
		}
		rc = lm_model_forward(ctx, b, err, errlen);
		if (rc != 0)
			break;
		/* each text's output rows are consecutive from its first token */
		for (int k = first, tok = 0; k < i; k++)
		{
			int			t = which[k],
						len = n_ids[t] < c->max_seq_len ? n_ids[t] : c->max_seq_len;

			pool_text(ctx, tok, c->pooling == 1 ? len : 1, out + (size_t) t * c->n_embd);
			tok += len;
		}
	}
	lm_batch_free(b);
	return rc;
}

/*
 * Thread groups.  A forward pass split across the pool meets its threads
 * at every stage (about nine jobs per layer), and each product reads the
 * activation rows that the other threads' stage has just written; on two
 * cores that left 1.6x of one thread's speed.  So when a call brings
 * several texts, each thread takes a group of whole texts instead and runs
 * their forward passes alone (one-thread jobs, nothing shared but the
 * weights), meeting the others once, at the end of the call.  Group 0
 * runs on the caller's context made serial, the others on one-thread
 * contexts kept in ctx->groups.  The groups are balanced by an estimate of
 * each text's cost (longest first, each into the cheapest group); a call
 * whose texts cannot be balanced well (one long text among short ones)
 * keeps the passes split across threads.  A text's floats depend only on
 * its own tokens, so the embeddings are the same either way.
 *
 * Cancellation: engine threads must not run the host's abort check, so
 * every group context checks a shared stop flag instead, and the caller's
 * thread, whichever group it runs, also runs the host's check and raises
 * the flag; a failing group raises it too.  The others stop at their next
 * job.
 */

/* Work of a text of len tokens, relative: its layer products, and its attention counted at half their speed. */
static double
text_cost(const lm_model_config *c, int len)
{
	double		E = c->n_embd,
				F = c->n_ff;

	return (double) len * (4.0 * E * E + 2.0 * E * F + 8.0 * E * len);
}

/* A text and its cost, for sorting. */
typedef struct bert_text_cost
{
	double		cost;			/* text_cost */
	int			index;			/* text */
} bert_text_cost;

/* Costlier first, then by index. */
static int
cmp_cost_desc(const void *a, const void *b)
{
	const bert_text_cost *x = a,
			   *y = b;

	if (x->cost != y->cost)
		return x->cost > y->cost ? -1 : 1;
	return x->index - y->index;
}

/*
 * Texts into n_groups groups of nearly equal cost: order gets the texts
 * group by group (each group in text order), group g being order[start[g]
 * .. start[g + 1]).  False when the costliest group would exceed the mean
 * by more than a quarter (threads would wait), or out of memory.
 */
static bool
plan_groups(const lm_model_config *c, const int *n_ids, int n_texts, int n_groups, int *order, int *start)
{
	bert_text_cost *tc = malloc(sizeof(bert_text_cost) * n_texts);
	double	   *load = calloc(n_groups, sizeof(double));
	int		   *group = malloc(sizeof(int) * n_texts);
	double		total = 0.0,
				most = 0.0;
	bool		ok = tc && load && group && n_texts >= n_groups;

	for (int i = 0; ok && i < n_texts; i++)
	{
		tc[i].cost = text_cost(c, n_ids[i] < c->max_seq_len ? n_ids[i] : c->max_seq_len);
		tc[i].index = i;
		total += tc[i].cost;
	}
	if (ok)
		qsort(tc, n_texts, sizeof(bert_text_cost), cmp_cost_desc);
	for (int i = 0; ok && i < n_texts; i++)
	{
		int			g = 0;

		for (int h = 1; h < n_groups; h++)
			if (load[h] < load[g])
				g = h;
		load[g] += tc[i].cost;
		group[tc[i].index] = g;
		most = load[g] > most ? load[g] : most;
	}
	ok = ok && most * n_groups <= 1.25 * total;
	if (ok)
	{
		/* counting sort by group, each group in text order */
		for (int g = 0; g <= n_groups; g++)
			start[g] = 0;
		for (int i = 0; i < n_texts; i++)
			start[group[i] + 1]++;
		for (int g = 0; g < n_groups; g++)
			start[g + 1] += start[g];
		for (int g = 0, k = 0; g < n_groups; g++)
			for (int i = 0; i < n_texts; i++)
				if (group[i] == g)
					order[k++] = i;
	}
	free(tc);
	free(load);
	free(group);
	return ok;
}

/* One call's thread groups. */
typedef struct bert_groups
{
	lm_context *ctx;			/* the caller's context: group 0's, and the host's abort check */
	const int32_t *const *ids;	/* the call's texts */
	const int  *n_ids;			/* their token counts */
	const int  *order;			/* texts group by group (plan_groups) */
	const int  *start;			/* (n_groups + 1) where each group starts in order */
	float	   *out;			/* (n_texts, n_embd) embeddings */
	pthread_t	caller;			/* the thread that may run the host's abort check */
	lm_abort_fn abort_fn;		/* the host's abort check (ctx's), or NULL */
	void	   *abort_arg;		/* its argument */
	atomic_bool stop;			/* set by a failing group or the abort check: the others stop */
	int		   *rc;				/* (n_groups) each group's result */
	char	   *err;			/* (n_groups, BERT_GROUP_ERR) each group's message */
} bert_groups;

/* Bytes of one group's message. */
#define BERT_GROUP_ERR 256

/* The abort check of every group's context: the shared flag, and the host's check on the caller's thread. */
static bool
group_abort(void *arg)
{
	bert_groups *j = arg;

	if (atomic_load(&j->stop))
		return true;
	if (j->abort_fn && pthread_equal(pthread_self(), j->caller) && j->abort_fn(j->abort_arg))
	{
		atomic_store(&j->stop, true);
		return true;
	}
	return false;
}

/* Task g: group g's texts on its context. */
static void
group_task(void *arg, int g, int n_groups)
{
	bert_groups *j = arg;
	lm_context *c = g == 0 ? j->ctx : j->ctx->groups[g - 1];
	char	   *err = j->err + (size_t) g * BERT_GROUP_ERR;

	if (group_abort(j))
	{
		snprintf(err, BERT_GROUP_ERR, "forward pass stopped by request");
		j->rc[g] = -2;
		return;
	}
	j->rc[g] = embed_passes(c, j->ids, j->n_ids, j->order + j->start[g], j->start[g + 1] - j->start[g], j->out,
							err, BERT_GROUP_ERR);
	if (j->rc[g] != 0)
		atomic_store(&j->stop, true);
}

/* Make ctx's one-thread group contexts (kept until ctx is freed); false when out of memory. */
static bool
make_groups(lm_context *ctx)
{
	lm_context_params p = lm_context_default_params();
	char		err[256];

	if (ctx->groups)
		return true;
	ctx->groups = calloc(ctx->n_threads - 1, sizeof(lm_context *));
	if (ctx->groups == NULL)
		return false;
	p.n_ctx = ctx->n_ctx;
	p.n_seq_max = 1;
	p.n_batch = ctx->n_batch;
	p.n_threads = 1;
	for (int i = 0; i < ctx->n_threads - 1; i++)
		if ((ctx->groups[i] = lm_context_create(ctx->model, &p, err, sizeof(err))) == NULL)
		{
			lm_bert_free_groups(ctx);
			return false;
		}
	return true;
}

/* Free ctx's group contexts. */
void
lm_bert_free_groups(lm_context *ctx)
{
	if (ctx->groups == NULL)
		return;
	for (int i = 0; i < ctx->n_threads - 1; i++)
		lm_context_free(ctx->groups[i]);
	free(ctx->groups);
	ctx->groups = NULL;
}

/*
 * The call's texts in one group per thread (see Thread groups); 1 when they
 * ran, 0 when they could not be split well (nothing ran), or the first
 * failing group's result (-1, -2) with its message.
 */
static int
embed_groups(lm_context *ctx, const int32_t *const *ids, const int *n_ids, int n_texts, float *out,
			 char *err, size_t errlen)
{
	int			n_groups = ctx->n_threads,
				result = 1;
	int		   *order = malloc(sizeof(int) * n_texts),
			   *start = malloc(sizeof(int) * (n_groups + 1)),
			   *rc = calloc(n_groups, sizeof(int));
	char	   *msgs = calloc(n_groups, BERT_GROUP_ERR);
	bert_groups j;

	if (!order || !start || !rc || !msgs || !plan_groups(&ctx->model->cfg, n_ids, n_texts, n_groups, order, start) ||
		!make_groups(ctx))
	{
		free(order);
		free(start);
		free(rc);
		free(msgs);
		return 0;
	}
	j = (bert_groups) {ctx, ids, n_ids, order, start, out, pthread_self(), ctx->abort_fn, ctx->abort_arg,
	false, rc, msgs};
	for (int g = 1; g < n_groups; g++)
	{
		ctx->groups[g - 1]->bert_f32 = ctx->bert_f32;
		lm_context_set_abort(ctx->groups[g - 1], group_abort, &j);
	}
	/* group 0 on ctx itself, its jobs on whichever thread runs it */
	ctx->serial = true;
	ctx->abort_fn = group_abort;
	ctx->abort_arg = &j;
	lm_pool_run_n(ctx->pool, group_task, &j, n_groups);
	ctx->serial = false;
	ctx->abort_fn = j.abort_fn;
	ctx->abort_arg = j.abort_arg;
	for (int g = 1; g < n_groups; g++)
		lm_context_set_abort(ctx->groups[g - 1], NULL, NULL);
	/* a group's own failure before the stops it caused in the others */
	for (int g = 0; g < n_groups && result == 1; g++)
		if (rc[g] == -1)
			result = -1, snprintf(err, errlen, "%s", msgs + (size_t) g * BERT_GROUP_ERR);
	for (int g = 0; g < n_groups && result == 1; g++)
		if (rc[g] != 0)
			result = rc[g], snprintf(err, errlen, "%s", msgs + (size_t) g * BERT_GROUP_ERR);
	free(order);
	free(start);
	free(rc);
	free(msgs);
	return result;
}

/* Sentence embeddings of many texts. */
int
lm_bert_embed(lm_context *ctx, const int32_t *const *ids, const int *n_ids, int n_texts, float *out,
			  char *err, size_t errlen)
{
	const lm_model_config *c = &ctx->model->cfg;
	int		   *which;
	int			rc;

	ctx->n_groups_run = 1;
	if (!c->encoder)
	{
		snprintf(err, errlen, "model architecture \"%s\" is not an encoder", c->arch);
		return -1;
	}
	for (int i = 0; i < n_texts; i++)
		if (n_ids[i] < 1)
		{
			snprintf(err, errlen, "text %d has no tokens", i);
			return -1;
		}
	if (ctx->n_threads > 1 && n_texts >= ctx->n_threads)
	{
		rc = embed_groups(ctx, ids, n_ids, n_texts, out, err, errlen);
		if (rc != 0)
		{
			if (rc == 1)
				ctx->n_groups_run = ctx->n_threads;
			return rc == 1 ? 0 : rc;
		}
	}
	/* one pass after another, each split across the threads */
	which = malloc(sizeof(int) * (n_texts > 0 ? n_texts : 1));
	if (which == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n_texts; i++)
		which[i] = i;
	rc = embed_passes(ctx, ids, n_ids, which, n_texts, out, err, errlen);
	free(which);
	return rc;
}

/* Thread groups the last lm_bert_embed call on ctx ran (1: its passes were split across the threads). */
int
lm_bert_groups_run(const lm_context *ctx)
{
	return ctx->n_groups_run;
}
