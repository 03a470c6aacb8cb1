/*
 * model_ops.c — RMSNorm, RoPE, attention's softmax and value order (the
 * loops themselves are in attention.c), the output tail (final norm,
 * classifier, soft-cap) and per-token row jobs shared by the forward passes.
 *
 *   RMSNorm    sum of squares in double (element order, one chain per
 *              row; lm_op_rmsnorm_rows runs 8 rows' chains side by side),
 *              scale = 1/sqrtf(mean + eps) in float, then (x * scale) *
 *              weight (ggml's rms_norm + mul).
 *   GEGLU      ggml's GGML_GELU_FP16 path: gate rounded to fp16, looked up
 *              in a 64K table of fp16(gelu_tanh(x)), times up; gate <= -10
 *              gives 0, gate >= 10 gate * up (vectors gather from a float
 *              copy of the table: same values).
 *   RoPE       theta_i built by repeated float multiplication from pos, as
 *              ggml's rope cache does; cosf/sinf.  NORM pairs (2i, 2i+1),
 *              NEOX pairs (i, i + n_rot/2).
 *   attention  what ggml's non-flash CPU attention computes with an F32
 *              KV cache on AVX-512 (llama.cpp 3f545bec), bit for bit:
 *              scores = F32 dot(q, k) (ggml_vec_dot_f32's 4x16 lanes) *
 *              scale; max; e = ggml_v_expf(s - max) (lm_op_expf: its fma
 *              range reduction and polynomial, portable); the sum over
 *              16-position blocks aligned to position 0 (ggml's KV view
 *              holds a multiple of 256 cells, masked ones exp to 0), each
 *              block a float tree sum, blocks added in double; weights
 *              times (float)(1/sum); output[d] = the F32 dot of the
 *              weights with V's column d (V cached transposed in ggml) as
 *              lanes over positions aligned to 0, an fma chain per lane,
 *              then a tree.  llama.cpp's lane count
 *              depends on its batch: 64 (ggml_vec_dot_f32) for one token,
 *              16 (tinyBLAS sgemm) for several.  By default lmgen does the
 *              same: tokens whose sequence has several tokens in the
 *              forward call use 16 lanes (exact agreement on long prompts;
 *              see lm_op_value_lanes); lm_op_set_prefill_order(false) gives
 *              every token 64, so results never depend on batching.
 *              Exponentials run in AVX2/AVX-512 vectors (model_ops_simd.h),
 *              scores and value sums in attention.c's blocked loops, same
 *              floats as the scalar code.
 *   output     rows that want outputs compacted, final RMSNorm into
 *              ctx->hidden, classifier into ctx->logits for the rows that
 *              want logits (LM_OUT_LOGITS; LM_OUT_HIDDEN rows skip it),
 *              then tanh(l / cap) * cap if cap > 0.
 */
#include "model_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "kernels.h"
#include "model_ops_simd.h"
#include "quant.h"

/*
 * Sums of squares of k rows (n floats, stride apart) into sum[0..k): each
 * row's sum is a chain of double additions in element order, as the
 * one-row loop's, with the k chains interleaved so that k additions are
 * in flight instead of one (the chain's latency bounded the one-row loop).
 */
static inline __attribute__((always_inline)) void
sumsq_chains(const float *x, size_t stride, int n, const int k, double *sum)
{
	double		s[8];

	_Pragma("GCC unroll 8")
	for (int r = 0; r < k; r++)
		s[r] = 0.0;
	for (int i = 0; i < n; i++)
		_Pragma("GCC unroll 8")
		for (int r = 0; r < k; r++)
		{
			float		v = x[(size_t) r * stride + i];

			s[r] += (double) (v * v);
		}
	_Pragma("GCC unroll 8")
	for (int r = 0; r < k; r++)
		sum[r] = s[r];
}

/* out = rmsnorm(x) * w for rows rows (n floats, x_stride / out_stride apart; out may equal x). */
void
lm_op_rmsnorm_rows(float *out, size_t out_stride, const float *x, size_t x_stride,
				   const float *w, int n, int rows, float eps)
{
	lm_isa		isa = lm_kernels_isa();

	for (int r0 = 0; r0 < rows; r0 += 8)
	{
		int			k = rows - r0 < 8 ? rows - r0 : 8;
		double		sum[8];

		if (k == 8)
			sumsq_chains(x + (size_t) r0 * x_stride, x_stride, n, 8, sum);
		else if (k >= 4)
		{
			sumsq_chains(x + (size_t) r0 * x_stride, x_stride, n, 4, sum);
			for (int r = 4; r < k; r++)
				sumsq_chains(x + (size_t) (r0 + r) * x_stride, x_stride, n, 1, sum + r);
		}
		else
			for (int r = 0; r < k; r++)
				sumsq_chains(x + (size_t) (r0 + r) * x_stride, x_stride, n, 1, sum + r);
		for (int r = 0; r < k; r++)
		{
			const float *xr = x + (size_t) (r0 + r) * x_stride;
			float	   *o = out + (size_t) (r0 + r) * out_stride;
			float		mean = (float) (sum[r] / n),
						scale = 1.0f / sqrtf(mean + eps);

			if (isa == LM_ISA_AVX512)
				lm_op_scale_mul_avx512(o, xr, scale, w, n);
			else if (isa == LM_ISA_AVX2)
				lm_op_scale_mul_avx2(o, xr, scale, w, n);
			else
				for (int i = 0; i < n; i++)
					o[i] = (xr[i] * scale) * w[i];
		}
	}
}

/* out = rmsnorm(x) * w for one row. */
void
lm_op_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
	lm_op_rmsnorm_rows(out, 0, x, 0, w, n, 1, eps);
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

/* Rotate the first n_rot dimensions of each head (in vectors where the CPU allows: adjacent pairs with n_rot a multiple of 16, halves with n_rot a multiple of 32). */
void
lm_op_rope_apply(float *vec, int n_heads, int hd, int n_rot, lm_rope_type type, const float *cs)
{
	int			half = n_rot / 2;
	lm_isa		isa = lm_kernels_isa();

	if (type == LM_ROPE_NORM && n_rot % 16 == 0 && isa >= LM_ISA_AVX2)
	{
		if (isa == LM_ISA_AVX512)
			lm_op_rope_norm_avx512(vec, n_heads, hd, n_rot, cs);
		else
			lm_op_rope_norm_avx2(vec, n_heads, hd, n_rot, cs);
		return;
	}
	if (type == LM_ROPE_NEOX && n_rot % 32 == 0 && isa >= LM_ISA_AVX2)
	{
		if (isa == LM_ISA_AVX512)
			lm_op_rope_neox_avx512(vec, n_heads, hd, n_rot, cs);
		else
			lm_op_rope_neox_avx2(vec, n_heads, hd, n_rot, cs);
		return;
	}

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

/* x[i] *= a, vectorised where the CPU allows (same floats on every path). */
void
lm_op_scale(float *x, float a, int n)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa == LM_ISA_AVX512)
		lm_op_scale_avx512(x, a, n);
	else if (isa == LM_ISA_AVX2)
		lm_op_scale_avx2(x, a, n);
	else
		for (int i = 0; i < n; i++)
			x[i] *= a;
}

/* 2^e for e in [-126, 127]. */
static inline float
pow2f(int e)
{
	uint32_t	bits = (uint32_t) (e + 127) << 23;
	float		f;

	memcpy(&f, &bits, sizeof f);
	return f;
}

/* ggml's vectorised exp (see the header): fma range reduction, degree-5 polynomial, scale by 2^n. */
float
lm_op_expf(float x)
{
	const float r = 0x1.8p23f;
	float		z = fmaf(x, 0x1.715476p+0f, r),
				n = z - r,
				b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x)),
				u = b * b,
				j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
							  fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
						 u, fmaf(0x1.ffffecp-1f, b, 1.0f));
	int			ni,
				e1;

	if (fabsf(n) > 192.0f)
		return n <= 0.0f ? 0.0f : INFINITY;
	if (isnan(n))
		return j;
	ni = (int) n;
	e1 = ni >= 0 ? ni / 2 : -((1 - ni) / 2);	/* floor(ni / 2) */
	/* j * 2^n with one rounding: the first product is exact */
	return (j * pow2f(e1)) * pow2f(ni - e1);
}

/* x[i] = lm_op_expf(x[i] - max), vectorised where the CPU allows. */
void
lm_op_exp_sub(float *x, float max, int n)
{
	lm_isa		isa = lm_kernels_isa();

	if (isa == LM_ISA_AVX512)
		lm_op_exp_sub_avx512(x, max, n);
	else if (isa == LM_ISA_AVX2)
		lm_op_exp_sub_avx2(x, max, n);
	else
		for (int i = 0; i < n; i++)
			x[i] = lm_op_expf(x[i] - max);
}

/* SwiGLU of one row: ggml's exp on the first n rounded down to 16, libm's on the rest. */
void
lm_op_swiglu_row(float *g, const float *u, int n)
{
	lm_isa		isa = lm_kernels_isa();
	int			n16 = n & ~15,
				i = 0;

	if (isa == LM_ISA_AVX512)
		lm_op_swiglu_avx512(g, u, n16);
	else if (isa == LM_ISA_AVX2)
		lm_op_swiglu_avx2(g, u, n16);
	else
		for (; i < n16; i++)
			g[i] = (g[i] / (1.0f + lm_op_expf(-g[i]))) * u[i];
	for (i = n16; i < n; i++)
		g[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* fp16(gelu_tanh(x)) for every fp16 bit pattern x, and the same values as floats (the vectors' gather table); filled once. */
static uint16_t gelu_table[1 << 16];
static float gelu_table_f32[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

/* Fill the GELU tables as ggml does (its build contracts 1 + a*x*x into one fma). */
static void
gelu_table_init(void)
{
	for (int i = 0; i < (1 << 16); i++)
	{
		float		x = lm_fp16_to_fp32((uint16_t) i);
		float		inner = fmaf(0.044715f * x, x, 1.0f);
		float		y = 0.5f * x * (1.0f + tanhf(0.79788456080286535587989211986876f * x * inner));

		gelu_table[i] = lm_fp32_to_fp16(y);
		gelu_table_f32[i] = lm_fp16_to_fp32(gelu_table[i]);
	}
}

/* The filled fp16 GELU table (for the CUDA backend, which must use the same values). */
const uint16_t *
lm_op_gelu_table(void)
{
	pthread_once(&gelu_once, gelu_table_init);
	return gelu_table;
}

/* GEGLU of one row, ggml's table path: g[i] = gelu_tanh(g[i]) * u[i]. */
void
lm_op_geglu_row(float *g, const float *u, int n)
{
	lm_isa		isa = lm_kernels_isa();
	int			i = 0;

	pthread_once(&gelu_once, gelu_table_init);
	if (isa == LM_ISA_AVX512)
		i = lm_op_geglu_avx512(g, u, n, gelu_table_f32);
	else if (isa == LM_ISA_AVX2)
		i = lm_op_geglu_avx2(g, u, n, gelu_table_f32);
	for (; i < n; i++)
	{
		float		x = g[i];

		if (x <= -10.0f)
			g[i] = 0.0f;
		else if (x >= 10.0f)
			g[i] = x * u[i];
		else
			g[i] = lm_fp16_to_fp32(gelu_table[lm_fp32_to_fp16(x)]) * u[i];
	}
}

/* Sum of 16 lanes in the order of GCC's _mm512_reduce_add_ps. */
static inline float
lanes_reduce16(const float a[16])
{
	float		t[8],
				q[4];

	for (int l = 0; l < 8; l++)
		t[l] = a[8 + l] + a[l];
	for (int l = 0; l < 4; l++)
		q[l] = t[4 + l] + t[l];
	return (q[0] + q[2]) + (q[1] + q[3]);
}

/*
 * Softmax denominator of the n weights of positions p0 .. p0+n-1: blocks of
 * 16 positions aligned to position 0 (absent positions count 0), each summed
 * as lanes_reduce16 in float, the block sums added in double in order.
 */
double
lm_op_softmax_sum(const float *e, int p0, int n)
{
	lm_isa		isa = lm_kernels_isa();
	double		sum = 0.0;

	if (isa == LM_ISA_AVX512)
		return lm_op_softmax_sum_avx512(e, p0, n);
	if (isa == LM_ISA_AVX2)
		return lm_op_softmax_sum_avx2(e, p0, n);

	for (int b0 = p0 & ~15; b0 < p0 + n; b0 += 16)
	{
		float		blk[16];

		for (int l = 0; l < 16; l++)
		{
			int			i = b0 + l - p0;

			blk[l] = (i >= 0 && i < n) ? e[i] : 0.0f;
		}
		sum += (double) lanes_reduce16(blk);
	}
	return sum;
}

/* Process-wide: prefill tokens use ggml's 16-lane (tinyBLAS) value order (on by default). */
static bool prefill_order_16 = true;

/* Choose the value-sum order of tokens whose sequence has several tokens in one forward call. */
void
lm_op_set_prefill_order(bool llama_prefill)
{
	prefill_order_16 = llama_prefill;
}

/*
 * Lanes of the weighted sum for batch token bi: 64 (ggml's F32 dot, what
 * llama.cpp uses for one-token decoding), or 16 (its tinyBLAS sgemm, what a
 * multi-token llama.cpp batch uses) when lm_op_set_prefill_order is on and
 * the token says it belongs to a prompt of several tokens (LM_PREFILL_YES),
 * or, left to LM_PREFILL_AUTO, when bi's sequence has another token in this
 * forward call.  Other sequences in the batch, the internal steps and the
 * thread count never matter; with explicit flags neither does the way a
 * prompt is cut into forward calls.
 */
int
lm_op_value_lanes(const lm_batch *b, int bi)
{
	int			seq = b->seq_id[bi];

	if (!prefill_order_16)
		return 64;
	if (b->prefill[bi] != LM_PREFILL_AUTO)
		return b->prefill[bi] == LM_PREFILL_YES ? 16 : 64;
	if ((bi > 0 && b->seq_id[bi - 1] == seq) ||
		(bi + 1 < b->n_tokens && b->seq_id[bi + 1] == seq))
		return 16;
	for (int i = 0; i < b->n_tokens; i++)
		if (i != bi && b->seq_id[i] == seq)
			return 16;
	return 64;
}

/* A row job split into tasks of consecutive tokens. */
typedef struct rows_job
{
	lm_op_rows_fn fn;			/* per-range function */
	void	   *arg;			/* its argument */
	int			n;				/* tokens */
} rows_job;

/* Task ith of nth: tokens [n*ith/nth, n*(ith+1)/nth). */
static void
rows_worker(void *arg, int ith, int nth)
{
	rows_job   *j = arg;
	int			t0 = (int) ((int64_t) j->n * ith / nth),
				t1 = (int) ((int64_t) j->n * (ith + 1) / nth);

	if (t0 < t1)
		j->fn(j->arg, t0, t1);
}

/* Run fn over tokens [0, n) on the pool; inline for a single token or thread. */
void
lm_op_for_rows(lm_context *ctx, int n, lm_op_rows_fn fn, void *arg)
{
	rows_job	j = {fn, arg, n};

	if (n <= 1 || ctx->n_tasks <= 1)
	{
		if (n > 0)
			fn(arg, 0, n);
		return;
	}
	lm_ctx_run(ctx, rows_worker, &j);
}

/* Final norm, classifier and soft-cap of the step's output tokens. */
void
lm_op_output(lm_context *ctx, const lm_step *st, float softcap)
{
	const lm_model *m = ctx->model;
	const lm_model_config *c = &m->cfg;
	const lm_batch *b = st->batch;
	int			E = c->n_embd,
				n_sel = 0,
				n_lg = 0,
				first_row = -1,
				first_lrow = -1;
	float	   *hid,
			   *lg_in,
			   *logits;

	/* tokens that want outputs, compacted into xb (their rows are consecutive) */
	for (int t = 0; t < st->n; t++)
		if (b->out[st->i0 + t] != LM_OUT_NONE)
		{
			if (first_row < 0)
				first_row = ctx->out_idx[st->i0 + t];
			memcpy(ctx->xb + (size_t) n_sel * E, ctx->x + (size_t) t * E, sizeof(float) * E);
			n_sel++;
		}
	if (n_sel == 0)
		return;

	/* final RMSNorm, kept as the hidden state */
	hid = ctx->hidden + (size_t) first_row * E;
	for (int t = 0; t < n_sel; t++)
		lm_op_rmsnorm(hid + (size_t) t * E, ctx->xb + (size_t) t * E, m->output_norm, E, c->rms_eps);

	/*
	 * The classifier reads the hidden rows of the tokens that want logits:
	 * all of them in place, or, in a step that mixes kinds, those rows
	 * compacted into xb (every row is computed alone, so same floats).
	 */
	for (int t = 0; t < st->n; t++)
		if (b->out[st->i0 + t] == LM_OUT_LOGITS)
		{
			if (first_lrow < 0)
				first_lrow = ctx->logit_idx[st->i0 + t];
			n_lg++;
		}
	if (n_lg == 0)
		return;
	lg_in = hid;
	if (n_lg < n_sel)
	{
		lg_in = ctx->xb;
		for (int t = 0, k = 0, j = 0; t < st->n; t++)
		{
			int8_t		o = b->out[st->i0 + t];

			if (o == LM_OUT_LOGITS)
				memcpy(ctx->xb + (size_t) j++ * E, hid + (size_t) k * E, sizeof(float) * E);
			if (o != LM_OUT_NONE)
				k++;
		}
	}

	/* classifier, then the optional soft-cap */
	logits = ctx->logits + (size_t) first_lrow * c->n_vocab;
	{
		const lm_weight *w[1] = {&m->output};
		float	   *y[1] = {logits};

		lm_ctx_matmul(ctx, n_lg, lg_in, 1, w, y);
	}
	if (softcap > 0.0f)
		for (size_t i = 0; i < (size_t) n_lg * c->n_vocab; i++)
			logits[i] = tanhf(logits[i] * (1.0f / softcap)) * softcap;
}
