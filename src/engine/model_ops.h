/*
 * model_ops.h — the small non-matmul operations every forward pass shares:
 * RMSNorm, rotary position embedding, causal (optionally sliding-window)
 * grouped-query attention over the per-sequence KV cache, the output tail
 * (final norm, classifier, soft-cap) and per-token row jobs on the pool.
 *
 * Arithmetic follows ggml's CPU code (see model_ops.c's header for the
 * details), so that all architectures stay on the reference's path and
 * improvements to one of these helpers reach every model at once.
 */
#ifndef LM_MODEL_OPS_H
#define LM_MODEL_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context_impl.h"
#include "model.h"

/* out = rmsnorm(x) * w for one row of n floats (out may equal x). */
extern void lm_op_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* lm_op_rmsnorm of rows rows, x_stride / out_stride floats apart (same floats per row; several rows at once run faster). */
extern void lm_op_rmsnorm_rows(float *out, size_t out_stride, const float *x, size_t x_stride,
							   const float *w, int n, int rows, float eps);

/*
 * cos/sin of every rotated pair for the step's tokens: cs[t*n_rot + 2i] = cos,
 * [.. + 2i+1] = sin of theta_i = pos * base^(-2i/n_rot) (repeated float
 * multiplication), divided by freqs[i] when freqs is not NULL, times freq_scale.
 */
extern void lm_op_rope_angles(float *cs, const lm_step *st, int n_rot, float base,
							  float freq_scale, const float *freqs);

/* Rotate the first n_rot dimensions of each of n_heads heads of width hd by the angles cs. */
extern void lm_op_rope_apply(float *vec, int n_heads, int hd, int n_rot, lm_rope_type type,
							 const float *cs);

/*
 * Attention of one layer for every (token, head) of the step (attention.c):
 * reads ctx->q and the cache (keys/values of this step already stored),
 * writes ctx->att.  Scores are dot(q, k) * scale; a token at position p
 * sees positions max(0, p - n_swa + 1) .. p (n_swa = 0: all of 0 .. p).
 * Runs on ctx->pool, blocked by KV head and token tile, split by cost.
 */
extern void lm_op_attention(lm_context *ctx, const lm_step *st, int layer, float scale, int n_swa);

/*
 * ggml's AVX-512 exponential (ggml_v_expf) in portable C, bit for bit: the
 * same fma range reduction, polynomial and scaling; 0 below about -133
 * (|n| > 192 after reduction), +inf above.
 */
extern float lm_op_expf(float x);

/*
 * Softmax denominator of the weights e[0..n) of positions p0 .. p0+n-1:
 * 16-position blocks aligned to position 0 summed in float (tree order of
 * a 16-lane reduction), block sums added in double, as ggml's soft_max does
 * over a KV row whose masked cells are 0.
 */
extern double lm_op_softmax_sum(const float *e, int p0, int n);

/* x[i] = lm_op_expf(x[i] - max) for i < n (vectorised where the CPU allows; same floats). */
extern void lm_op_exp_sub(float *x, float max, int n);

/* x[i] *= a for i < n (vectorised where the CPU allows; same floats). */
extern void lm_op_scale(float *x, float a, int n);

/*
 * SwiGLU of one row as ggml computes it: g[i] = (g[i] / (1 + exp(-g[i]))) * u[i],
 * exp being lm_op_expf for i < n rounded down to 16 (ggml's vector part) and
 * libm's expf for the rest; vectorised where the CPU allows, same floats.
 */
extern void lm_op_swiglu_row(float *g, const float *u, int n);

/*
 * GEGLU of one row as ggml's CPU computes it (GGML_GELU_FP16): g[i] =
 * fp16(gelu_tanh(fp16(g[i]))) * u[i] through a 64K table, 0 for g[i] <= -10,
 * g[i] * u[i] for g[i] >= 10; vectorised where the CPU allows, same floats.
 */
extern void lm_op_geglu_row(float *g, const float *u, int n);

/* fp16(gelu_tanh(x)) for every fp16 bit pattern x, the table lm_op_geglu_row uses (filled on first call). */
extern const uint16_t *lm_op_gelu_table(void);

/*
 * Value lanes of batch token bi: 16 (llama.cpp's batch order) when the
 * prefill order is on and the token is a prompt token (its prefill flag
 * LM_PREFILL_YES, or LM_PREFILL_AUTO and its sequence has another token in
 * the batch), else 64 (see lm_op_set_prefill_order).
 */
extern int	lm_op_value_lanes(const lm_batch *b, int bi);

/* Floats of attention scratch each of a context's tasks needs (ctx->scores holds n_tasks of them). */
extern size_t lm_op_attention_scratch(const lm_model_config *c, int n_ctx);

/*
 * Process-wide choice of the value-sum order for tokens whose sequence has
 * more than one token in a forward call (prompt prefill): true (the
 * default) = llama.cpp's 16-lane batch order, which matches llama.cpp bit
 * for bit on prompts longer than 16 tokens but makes a prompt fed one token
 * per call differ from the same prompt fed whole; false = the 64-lane order
 * of every other token, so outputs never depend on how a sequence's tokens
 * are split into forward calls.  Never depends on other sequences or threads.
 */
extern void lm_op_set_prefill_order(bool llama_prefill);

/* A per-token operation over the step's tokens [t0, t1). */
typedef void (*lm_op_rows_fn) (void *arg, int t0, int t1);

/*
 * Run fn over the step's n tokens split into ranges across ctx->pool (inline
 * for one token or one thread).  fn must touch only its own tokens' rows, so
 * the result does not depend on the split.
 */
extern void lm_op_for_rows(lm_context *ctx, int n, lm_op_rows_fn fn, void *arg);

/*
 * The output tail of a step: the tokens that asked for outputs are compacted,
 * their final RMSNorm (output_norm) goes to ctx->hidden and, for the tokens
 * that asked for logits, the classifier (output) to ctx->logits, each
 * logit then soft-capped as tanh(l / softcap) * softcap when softcap > 0.
 */
extern void lm_op_output(lm_context *ctx, const lm_step *st, float softcap);

#endif							/* LM_MODEL_OPS_H */
