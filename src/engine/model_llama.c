/*
 * model_llama.c — the forward pass of the llama architecture (llama2.c's
 * order of operations; llama.cpp's arithmetic where it matters).
 *
 * One step evaluates n tokens at once, one row per token in every scratch
 * buffer.  Matrix products go through lm_ctx_matmul (weights read once for
 * all n rows, rows split across threads); attention runs one (token, head)
 * pair per work item over that token's own sequence in the cache.
 *
 * Arithmetic follows ggml's CPU code so that the quantized models, whose
 * activations are re-quantized before every matmul, stay on the reference's
 * path:
 *   RMSNorm    sum of squares in double, scale = 1/sqrtf(mean + eps) in
 *              float, then (x * scale) * weight.
 *   RoPE       theta_i = pos * base^(-2i/n_rot), built by repeated float
 *              multiplication, divided by rope_freqs[i] when present and
 *              multiplied by the linear frequency scale; cosf/sinf.
 *   attention  scores = dot(q, k) (canonical F32 dot), times 1/sqrt(d_head),
 *              softmax with max subtraction, sum in double, then each weight
 *              times (float)(1/sum); output = sum_j p_j v_j.
 *   SwiGLU     silu(g) * u with silu(g) = g / (1 + expf(-g)).
 */
#include <math.h>
#include <string.h>

#include "context_impl.h"
#include "kernels.h"
#include "quant.h"

/* out = rmsnorm(x) * w for one row of n floats. */
static void
rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
	double		sum = 0.0;
	float		mean,
				scale;

	for (int i = 0; i < n; i++)
		sum += (double) (x[i] * x[i]);
	mean = (float) (sum / n);
	scale = 1.0f / sqrtf(mean + eps);
	for (int i = 0; i < n; i++)
		out[i] = (x[i] * scale) * w[i];
}

/* cos/sin of every rotated pair for each token's position: rope_cs[t] = (c0, s0, c1, s1, ...). */
static void
rope_angles(lm_context *ctx, const lm_step *st)
{
	const lm_model_config *c = &ctx->model->cfg;
	const float *ff = ctx->model->rope_freqs;
	float		theta_scale = powf(c->rope_freq_base, -2.0f / (float) c->n_rot);

	for (int t = 0; t < st->n; t++)
	{
		float	   *cs = ctx->rope_cs + (size_t) t * c->n_rot;
		float		theta = (float) st->batch->pos[st->i0 + t];

		for (int i = 0; i < c->n_rot / 2; i++)
		{
			float		th = c->rope_freq_scale * (ff ? theta / ff[i] : theta);

			cs[2 * i] = cosf(th);
			cs[2 * i + 1] = sinf(th);
			theta *= theta_scale;
		}
	}
}

/* Rotate the first n_rot dimensions of each of n_heads heads of width hd. */
static void
rope_apply(float *vec, int n_heads, int hd, int n_rot, lm_rope_type type, const float *cs)
{
	int			half = n_rot / 2;

	for (int h = 0; h < n_heads; h++)
	{
		float	   *v = vec + (size_t) h * hd;

		for (int i = 0; i < half; i++)
		{
			int			i0 = type == LM_ROPE_NEOX ? i : 2 * i,
						i1 = type == LM_ROPE_NEOX ? i + half : 2 * i + 1;
			float		x0 = v[i0],
						x1 = v[i1],
						c = cs[2 * i],
						s = cs[2 * i + 1];

			v[i0] = x0 * c - x1 * s;
			v[i1] = x0 * s + x1 * c;
		}
	}
}

/* Shared state of the attention job of one layer. */
typedef struct attn_job
{
	lm_context *ctx;			/* context */
	const lm_step *st;			/* step */
	int			layer;			/* layer index */
	size_t		scores_stride;	/* floats of scratch per thread */
} attn_job;

/* Attention for this thread's share of (token, head) pairs. */
static void
attn_worker(void *arg, int ith, int nth)
{
	attn_job   *j = arg;
	lm_context *ctx = j->ctx;
	const lm_model_config *c = &ctx->model->cfg;
	const lm_kv *kv = ctx->kv;
	int			H = c->n_head,
				hdk = c->head_dim_k,
				hdv = c->head_dim_v,
				group = c->n_head / c->n_head_kv;
	int64_t		total = (int64_t) j->st->n * H,
				w0 = total * ith / nth,
				w1 = total * (ith + 1) / nth;
	float	   *sc = ctx->scores + j->scores_stride * ith;
	float		scale = 1.0f / sqrtf((float) hdk);

	for (int64_t w = w0; w < w1; w++)
	{
		int			t = (int) (w / H),
					h = (int) (w % H),
					g = h / group,
					bi = j->st->i0 + t,
					seq = j->st->batch->seq_id[bi],
					pos = j->st->batch->pos[bi];
		const float *qh = ctx->q + (size_t) t * H * hdk + (size_t) h * hdk;
		float	   *out = ctx->att + (size_t) t * H * hdv + (size_t) h * hdv;
		float		max = -INFINITY,
					inv;
		double		sum = 0.0;

		/* scores over this sequence's positions 0..pos (causal) */
		for (int p = 0; p <= pos; p++)
		{
			float		s = lm_dot_f32(qh, lm_kv_k(kv, seq, j->layer, p) + (size_t) g * hdk, hdk) * scale;

			sc[p] = s;
			if (s > max)
				max = s;
		}
		/* softmax */
		for (int p = 0; p <= pos; p++)
		{
			float		e = expf(sc[p] - max);

			sc[p] = e;
			sum += (double) e;
		}
		inv = (float) (1.0 / sum);
		for (int p = 0; p <= pos; p++)
			sc[p] *= inv;
		/* weighted sum of the values */
		memset(out, 0, sizeof(float) * hdv);
		for (int p = 0; p <= pos; p++)
		{
			const float *vp = lm_kv_v(kv, seq, j->layer, p) + (size_t) g * hdv;
			float		a = sc[p];

			for (int d = 0; d < hdv; d++)
				out[d] += a * vp[d];
		}
	}
}

/* Run the llama forward pass for one step of a batch. */
void
lm_llama_forward_step(lm_context *ctx, const lm_step *st)
{
	const lm_model *m = ctx->model;
	const lm_model_config *c = &m->cfg;
	const lm_batch *b = st->batch;
	lm_kv	   *kv = ctx->kv;
	int			n = st->n,
				E = c->n_embd,
				F = c->n_ff,
				kd = c->n_head_kv * c->head_dim_k,
				vd = c->n_head_kv * c->head_dim_v,
				qd = c->n_head * c->head_dim_k,
				n_sel = 0,
				first_row = -1;

	/* token embeddings: one dequantized row of token_embd per token */
	for (int t = 0; t < n; t++)
		lm_dequantize_row(m->tok_embd.type,
						  (const char *) m->tok_embd.data + (size_t) b->token[st->i0 + t] * m->tok_embd.row_bytes,
						  ctx->x + (size_t) t * E, E);

	/* RoPE angles for each token's position */
	rope_angles(ctx, st);

	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		attn_job	aj = {ctx, st, l, ((size_t) ctx->n_ctx + 63) & ~(size_t) 63};

		/* attention RMSNorm */
		for (int t = 0; t < n; t++)
			rmsnorm(ctx->xb + (size_t) t * E, ctx->x + (size_t) t * E, L->attn_norm, E, c->rms_eps);

		/* Q, K, V projections */
		{
			const lm_weight *w[3] = {&L->wq, &L->wk, &L->wv};
			float	   *y[3] = {ctx->q, ctx->k, ctx->v};

			lm_ctx_matmul(ctx, n, ctx->xb, 3, w, y);
		}

		/* RoPE on queries and keys, then keys and values into the cache */
		for (int t = 0; t < n; t++)
		{
			const float *cs = ctx->rope_cs + (size_t) t * c->n_rot;
			int			seq = b->seq_id[st->i0 + t],
						pos = b->pos[st->i0 + t];

			rope_apply(ctx->q + (size_t) t * qd, c->n_head, c->head_dim_k, c->n_rot, c->rope_type, cs);
			rope_apply(ctx->k + (size_t) t * kd, c->n_head_kv, c->head_dim_k, c->n_rot, c->rope_type, cs);
			memcpy(lm_kv_k(kv, seq, l, pos), ctx->k + (size_t) t * kd, sizeof(float) * kd);
			memcpy(lm_kv_v(kv, seq, l, pos), ctx->v + (size_t) t * vd, sizeof(float) * vd);
		}

		/* grouped-query attention with causal masking */
		lm_pool_run(ctx->pool, attn_worker, &aj);

		/* output projection */
		{
			const lm_weight *w[1] = {&L->wo};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->att, 1, w, y);
		}

		/* residual */
		for (size_t i = 0; i < (size_t) n * E; i++)
			ctx->x[i] = ctx->xb2[i] + ctx->x[i];

		/* FFN RMSNorm */
		for (int t = 0; t < n; t++)
			rmsnorm(ctx->xb + (size_t) t * E, ctx->x + (size_t) t * E, L->ffn_norm, E, c->rms_eps);

		/* gate and up projections */
		{
			const lm_weight *w[2] = {&L->ffn_gate, &L->ffn_up};
			float	   *y[2] = {ctx->hb, ctx->hb2};

			lm_ctx_matmul(ctx, n, ctx->xb, 2, w, y);
		}

		/* SwiGLU: silu(gate) * up */
		for (size_t i = 0; i < (size_t) n * F; i++)
		{
			float		g = ctx->hb[i];

			ctx->hb[i] = (g / (1.0f + expf(-g))) * ctx->hb2[i];
		}

		/* down projection */
		{
			const lm_weight *w[1] = {&L->ffn_down};
			float	   *y[1] = {ctx->xb2};

			lm_ctx_matmul(ctx, n, ctx->hb, 1, w, y);
		}

		/* residual */
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

	/* final RMSNorm (kept as the hidden state) and the classifier */
	{
		float	   *hid = ctx->hidden + (size_t) first_row * E;
		const lm_weight *w[1] = {&m->output};
		float	   *y[1] = {ctx->logits + (size_t) first_row * c->n_vocab};

		for (int t = 0; t < n_sel; t++)
			rmsnorm(hid + (size_t) t * E, ctx->xb + (size_t) t * E, m->output_norm, E, c->rms_eps);
		lm_ctx_matmul(ctx, n_sel, hid, 1, w, y);
	}
}
