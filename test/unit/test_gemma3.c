/*
 * test_gemma3.c — the gemma3 architecture: configuration read from the Gemma 3
 * 270M file, extra weights bound, sliding-window attention, and a forward pass
 * that answers like the pretrained model (greedy), identically in a batch, one
 * token at a time and on two threads.
 *
 * Needs the Gemma 3 270M Q4_K_M file: $LMGEN_GEMMA3, or the copy installed
 * in LMGEN_MODEL_DIR (the Makefile's model directory); skipped when absent.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context_impl.h"
#include "model_ops.h"
#include "tokenizer.h"
#include "sampler.h"
#include "unit.h"

#ifdef LMGEN_MODEL_DIR
#define GEMMA3_DEFAULT_PATH LMGEN_MODEL_DIR "/gemma-3-270m-q4_k_m.gguf"
#else
#define GEMMA3_DEFAULT_PATH "/usr/share/postgresql/15/lmgen/models/gemma-3-270m-q4_k_m.gguf"
#endif

/* Logits of every token of ids (one batch, or one token per call), into out (n * n_vocab). */
static int
run_logits(lm_context *ctx, const int32_t *ids, int n, bool one_by_one, int seq, float *out)
{
	char		err[256];
	int			V = lm_context_model(ctx)->cfg.n_vocab;
	lm_batch   *b = lm_batch_create(n);
	int			rc = 0;

	lm_kv_seq_clear(lm_context_kv(ctx), seq);
	if (!one_by_one)
	{
		for (int i = 0; i < n; i++)
			lm_batch_add(b, ids[i], i, seq, true);
		rc = lm_model_forward(ctx, b, err, sizeof(err));
		for (int i = 0; rc == 0 && i < n; i++)
			memcpy(out + (size_t) i * V, lm_context_logits(ctx, i), sizeof(float) * V);
	}
	else
		for (int i = 0; rc == 0 && i < n; i++)
		{
			lm_batch_clear(b);
			lm_batch_add(b, ids[i], i, seq, true);
			rc = lm_model_forward(ctx, b, err, sizeof(err));
			if (rc == 0)
				memcpy(out + (size_t) i * V, lm_context_logits(ctx, 0), sizeof(float) * V);
		}
	lm_batch_free(b);
	return rc;
}

/* Sliding-window attention: keys all equal, so the output is the mean of the visible values. */
static void
test_window(lm_context *ctx)
{
	const lm_model_config *c = &lm_context_model(ctx)->cfg;
	lm_kv	   *kv = lm_context_kv(ctx);
	lm_batch   *b = lm_batch_create(1);
	lm_step		st = {b, 0, 1};
	int			hdv = c->head_dim_v;
	bool		ok_win = true,
				ok_all = true;
	lm_kv_span	span = {0, 0, 10};
	char		err[256] = "";

	/* blocks for positions 0..9 of sequence 0, written directly below */
	CHECK(lm_kv_reserve(kv, &span, 1, err, sizeof(err)), "cache blocks for 10 positions are reserved (%s)", err);
	for (int p = 0; p < 10; p++)
	{
		memset(lm_kv_k(kv, 0, 0, p), 0, sizeof(float) * kv->k_dim);
		for (int d = 0; d < kv->v_dim; d++)
			lm_kv_v(kv, 0, 0, p)[d] = (float) p;
	}
	memset(ctx->q, 0, sizeof(float) * c->n_head * c->head_dim_k);
	lm_batch_add(b, 0, 9, 0, false);

	lm_op_attention(ctx, &st, 0, 1.0f, 4);
	for (int i = 0; i < c->n_head * hdv; i++)
		ok_win &= fabsf(ctx->att[i] - 7.5f) < 1e-5f;
	CHECK(ok_win, "a window of 4 at position 9 averages the values of positions 6..9 (7.5)");

	lm_op_attention(ctx, &st, 0, 1.0f, 0);
	for (int i = 0; i < c->n_head * hdv; i++)
		ok_all &= fabsf(ctx->att[i] - 4.5f) < 1e-5f;
	CHECK(ok_all, "without a window position 9 averages positions 0..9 (4.5)");
	lm_batch_free(b);
	lm_kv_seq_clear(kv, 0);
}

/*
 * Logits that match llama.cpp bit for bit (libllama, CPU, KV cache F32, flash
 * attention off, one token per llama_decode, printed with %.9g): after BOS
 * alone, and after BOS + "The" (the second position exercises RoPE and a
 * two-entry softmax).  Longer prompts differ by small amounts in attention.
 */
static void
test_reference(lm_context *ctx, const lm_tokenizer *tk)
{
	int32_t		ids[4];
	float	   *out;
	int			V = lm_context_model(ctx)->cfg.n_vocab,
				n;
	char		err[256];

	out = malloc(sizeof(float) * V * 2);
	n = lm_tokenize(tk, "The", 3, true, false, ids, 4, err, sizeof(err));
	if (!out || n != 2 || run_logits(ctx, ids, 2, true, 0, out) != 0)
	{
		CHECK(false, "reference prompt \"The\" runs (2 tokens, got %d)", n);
		free(out);
		return;
	}
	CHECK(ids[1] == 818, "\"The\" is token 818 after BOS");
	CHECK(lm_argmax(out, V) == 184 && out[184] == 14.5021906f && out[198] == 14.2491913f &&
		  out[0] == -11.7650375f && out[262143] == -11.77987f,
		  "logits after BOS equal llama.cpp's exactly (top 184 = 14.5021906)");
	CHECK(lm_argmax(out + V, V) == 236743 && out[V + 236743] == 20.2687645f &&
		  out[V + 1171] == 18.6619987f && out[V + 0] == -14.5341902f,
		  "logits after BOS \"The\" equal llama.cpp's exactly (top 236743 = 20.2687645)");
	free(out);
}

int
main(void)
{
	const char *path = getenv("LMGEN_GEMMA3");
	char		err[512];
	lm_model   *m;
	lm_tokenizer *tk;
	lm_context *ctx1,
			   *ctx2;
	lm_context_params p = lm_context_default_params();
	const char *prompt = "The capital of France is Paris, and the capital of Germany is";
	int32_t		ids[64];
	int			n,
				V;
	float	   *a,
			   *b,
			   *c2;
	bool		norms = true;
	char		piece[64];
	int			pl;

	if (path == NULL || *path == '\0')
		path = GEMMA3_DEFAULT_PATH;
	if (access(path, R_OK) != 0)
		SKIP_ALL("Gemma 3 270M model file not found (set LMGEN_GEMMA3)");

	m = lm_model_open(path, err, sizeof(err));
	CHECK(m != NULL, "the Gemma 3 270M file loads as a model (%s)", m ? "ok" : err);
	if (!m)
		return unit_done();

	/* configuration */
	CHECK(strcmp(m->cfg.arch, "gemma3") == 0, "architecture is gemma3");
	CHECK(m->cfg.n_embd == 640 && m->cfg.n_layer == 18 && m->cfg.n_ff == 2048,
		  "width 640, 18 layers, FFN 2048");
	CHECK(m->cfg.n_head == 4 && m->cfg.n_head_kv == 1 && m->cfg.head_dim_k == 256 &&
		  m->cfg.head_dim_v == 256 && m->cfg.n_rot == 256,
		  "4 query heads share 1 key/value head of width 256 (key_length, not n_embd/n_head)");
	CHECK(m->cfg.rope_type == LM_ROPE_NEOX, "gemma3 RoPE pairs halves (NEOX)");
	CHECK(m->cfg.rope_freq_base == 1e6f && m->cfg.rope_freq_base_swa == 1e4f,
		  "global layers use RoPE base 1e6, local layers 1e4");
	CHECK(m->cfg.n_swa == 512 && m->cfg.swa_pattern == 6,
		  "sliding window 512 on 5 of every 6 layers");
	CHECK(m->cfg.tied_output && m->output.data == m->tok_embd.data, "logits use the tied embedding");
	CHECK(m->cfg.final_logit_softcap == 0.0f, "no final logit soft-capping");
	for (int l = 0; l < m->cfg.n_layer; l++)
		norms &= m->layers[l].attn_q_norm && m->layers[l].attn_k_norm &&
			m->layers[l].attn_post_norm && m->layers[l].ffn_post_norm;
	CHECK(norms, "every layer has its Q/K norms and post-attention/post-FFN norms bound");

	tk = lm_tokenizer_load(m->gguf, err, sizeof(err));
	CHECK(tk != NULL, "the Gemma tokenizer loads (%s)", tk ? "ok" : err);
	if (!tk)
		return unit_done();
	n = lm_tokenize(tk, prompt, strlen(prompt), true, false, ids, 64, err, sizeof(err));
	CHECK(n > 1 && n <= 64 && ids[0] == 2, "the prompt tokenizes with BOS 2 first (%d tokens)", n);
	if (n <= 1 || n > 64)
		return unit_done();

	p.n_ctx = 256;
	p.n_seq_max = 2;
	p.n_threads = 1;
	ctx1 = lm_context_create(m, &p, err, sizeof(err));
	p.n_threads = 2;
	ctx2 = lm_context_create(m, &p, err, sizeof(err));
	CHECK(ctx1 && ctx2, "contexts are created (%s)", ctx1 && ctx2 ? "ok" : err);
	if (!ctx1 || !ctx2)
		return unit_done();

	test_window(ctx1);
	test_reference(ctx1, tk);

	V = m->cfg.n_vocab;
	a = malloc(sizeof(float) * V * n);
	b = malloc(sizeof(float) * V * n);
	c2 = malloc(sizeof(float) * V * n);
	CHECK(a && b && c2, "buffers for %d x %d logits", n, V);
	if (!a || !b || !c2)
		return unit_done();
	CHECK(run_logits(ctx1, ids, n, false, 0, a) == 0, "the prompt runs as one batch");
	pl = lm_token_to_piece(tk, lm_argmax(a + (size_t) (n - 1) * V, V), false, piece, sizeof(piece) - 1);
	piece[pl > 0 && pl < (int) sizeof(piece) ? pl : 0] = '\0';
	CHECK(strcmp(piece, " Berlin") == 0, "greedy continuation of \"...capital of Germany is\" is \" Berlin\" (got \"%s\")", piece);
	CHECK(run_logits(ctx1, ids, n, true, 1, b) == 0 && memcmp(a, b, sizeof(float) * V * n) == 0,
		  "logits are bit-identical in one batch and one token at a time");
	CHECK(run_logits(ctx2, ids, n, false, 0, c2) == 0 && memcmp(a, c2, sizeof(float) * V * n) == 0,
		  "logits are bit-identical on one thread and on two");

	free(a);
	free(b);
	free(c2);
	lm_context_free(ctx1);
	lm_context_free(ctx2);
	lm_tokenizer_free(tk);
	lm_model_free(m);
	return unit_done();
}
