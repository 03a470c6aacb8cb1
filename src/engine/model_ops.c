/*
 * model_ops.c — RMSNorm, RoPE and attention shared by the forward passes.
 *
 *   RMSNorm    sum of squares in double, scale = 1/sqrtf(mean + eps) in
 *              float, then (x * scale) * weight (ggml's rms_norm + mul).
 *   RoPE       theta_i built by repeated float multiplication from pos, as
 *              ggml's rope cache does; cosf/sinf.  NORM pairs (2i, 2i+1),
 *              NEOX pairs (i, i + n_rot/2).
 *   attention  scores = dot(q, k) (canonical F32 dot) * scale, softmax with
 *              max subtraction, sum in double, each weight times
 *              (float)(1/sum); output = sum_j p_j v_j in position order.
 */
#include "model_ops.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

/* out = rmsnorm(x) * w for one row. */
void
lm_op_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
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

/* cos/sin pairs of each step token's position. */
void
lm_op_rope_angles(float *cs, const lm_step *st, int n_rot, float base, float freq_scale,
				  const float *freqs)
{
	float		theta_scale = powf(base, -2.0f / (float) n_rot);

	for (int t = 0; t < st->n; t++)
	{
		float	   *row = cs + (size_t) t * n_rot;
		float		theta = (float) st->batch->pos[st->i0 + t];

		for (int i = 0; i < n_rot / 2; i++)
		{
			float		th = freq_scale * (freqs ? theta / freqs[i] : theta);

			row[2 * i] = cosf(th);
			row[2 * i + 1] = sinf(th);
			theta *= theta_scale;
		}
	}
}

/* Rotate the first n_rot dimensions of each head. */
void
lm_op_rope_apply(float *vec, int n_heads, int hd, int n_rot, lm_rope_type type, const float *cs)
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

			/* ggml's build contracts these into one fma each */
			v[i0] = fmaf(x0, c, -(x1 * s));
			v[i1] = fmaf(x0, s, x1 * c);
		}
	}
}

/* Shared state of one layer's attention job. */
typedef struct attn_job
{
	lm_context *ctx;			/* context */
	const lm_step *st;			/* step */
	int			layer;			/* layer index */
	float		scale;			/* multiplies every score */
	int			n_swa;			/* sliding window (0 = none) */
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

	for (int64_t w = w0; w < w1; w++)
	{
		int			t = (int) (w / H),
					h = (int) (w % H),
					g = h / group,
					bi = j->st->i0 + t,
					seq = j->st->batch->seq_id[bi],
					pos = j->st->batch->pos[bi],
					p0 = (j->n_swa > 0 && pos - j->n_swa + 1 > 0) ? pos - j->n_swa + 1 : 0;
		const float *qh = ctx->q + (size_t) t * H * hdk + (size_t) h * hdk;
		float	   *out = ctx->att + (size_t) t * H * hdv + (size_t) h * hdv;
		float		max = -INFINITY,
					inv;
		double		sum = 0.0;

		/* scores over the visible positions p0..pos */
		for (int p = p0; p <= pos; p++)
		{
			float		s = lm_dot_f32(qh, lm_kv_k(kv, seq, j->layer, p) + (size_t) g * hdk, hdk) * j->scale;

			sc[p] = s;
			if (s > max)
				max = s;
		}
		/* softmax */
		for (int p = p0; p <= pos; p++)
		{
			float		e = expf(sc[p] - max);

			sc[p] = e;
			sum += (double) e;
		}
		inv = (float) (1.0 / sum);
		for (int p = p0; p <= pos; p++)
			sc[p] *= inv;
		/* weighted sum of the values */
		memset(out, 0, sizeof(float) * hdv);
		for (int p = p0; p <= pos; p++)
		{
			const float *vp = lm_kv_v(kv, seq, j->layer, p) + (size_t) g * hdv;
			float		a = sc[p];

			for (int d = 0; d < hdv; d++)
				out[d] += a * vp[d];
		}
	}
}

/* Attention of one layer for the whole step. */
void
lm_op_attention(lm_context *ctx, const lm_step *st, int layer, float scale, int n_swa)
{
	attn_job	j = {ctx, st, layer, scale, n_swa, ((size_t) ctx->n_ctx + 63) & ~(size_t) 63};

	lm_pool_run(ctx->pool, attn_worker, &j);
}
