/*
 * device_bench.c — throughput of the CUDA backend (a benchmark: it prints
 * numbers and judges nothing).  For SmolLM2 (default.gguf) and Gemma 3:
 *
 *   prefill  256 sequences of PROMPT (128) tokens, 2048 tokens per forward
 *            call (16 prompts), the last token of each asking for logits:
 *            tokens/s;
 *   decode   at batch 1, 8, 64 and 256: STEPS steps of one token per
 *            sequence, each sequence holding its 128-token prompt, every
 *            token asking for logits (copied to the host, as the worker
 *            needs them) and again asking only for the hidden state (no
 *            vocabulary projection, no logits copy): tokens/s and ms per
 *            step, beside the memory-bandwidth bound of a step: (weights
 *            read + KV read) / 4.8 TB/s (the H200's HBM3e).  Weights read
 *            are the raw quantized bytes on the matrix-vector path (batch
 *            <= 8) and the dense copies on the GEMM path; the KV read is
 *            every visible position of every layer of every sequence.
 *
 * Models: the real files when present, else the shaped stand-ins run.sh
 * writes (test/gpu/shaped_model.py: the same tensors, shapes and types, so
 * the same bytes read and the same kernels; random weights).
 *
 * Usage: device_bench [steps]; LMGEN_CUDA_GEMM picks the GEMM arithmetic;
 * with LMGEN_CUDA_PROFILE=1 each figure is followed by the backend's device
 * time per op class (events around every op: the figures are then a little
 * slower).
 */
#include "gpu_common.h"
#include "model.h"
#include "tokenizer.h"

/* Prompt tokens per sequence. */
#define PROMPT 128

/* Sequences prefilled (the largest decode batch). */
#define N_SEQ 256

/* Tokens per prefill forward call. */
#define PREFILL_BATCH 2048

/* HBM bandwidth used for the bound (bytes/s). */
#define HBM_BPS 4.8e12

/* Bytes of the weights one step reads: raw (quantized) or dense (GEMM copies of elem bytes per value). */
static double
weight_bytes(const lm_model *m, bool dense, int elem)
{
	double		b = 0.0;

	for (int l = 0; l < m->cfg.n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		const lm_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};

		for (int j = 0; j < 7; j++)
			b += dense ? (double) ws[j]->n_rows * ws[j]->n_cols * elem : (double) ws[j]->n_rows * ws[j]->row_bytes;
	}
	b += dense ? (double) m->output.n_rows * m->output.n_cols * elem : (double) m->output.n_rows * m->output.row_bytes;
	return b;
}

/* Bytes of KV one step of B sequences at ctx visible positions reads. */
static double
kv_bytes(const lm_model *m, int B, int ctx)
{
	const lm_model_config *c = &m->cfg;
	double		per_pos = (double) c->n_head_kv * (c->head_dim_k + c->head_dim_v) * 4.0,
				b = 0.0;

	for (int l = 0; l < c->n_layer; l++)
	{
		bool		local = c->swa_pattern > 0 && l % c->swa_pattern < c->swa_pattern - 1;
		int			vis = local && c->n_swa > 0 && c->n_swa < ctx ? c->n_swa : ctx;

		b += per_pos * vis;
	}
	return b * B;
}

/* Print (and reset) the backend's profile of dm, when it keeps one (LMGEN_CUDA_PROFILE). */
static void
print_profile(const lmc_debug_ops *dbg, lm_device_model *dm)
{
	char		buf[4096];

	if (!dbg || !dbg->profile)
		return;
	dbg->profile(dm, buf, sizeof(buf));
	fputs(buf, stdout);
}

/* Benchmark one model. */
static void
bench_model(const lm_device_ops *ops, const lmc_debug_ops *dbg, lm_device *dev, const char *path, int steps)
{
	static const int batches[] = {1, 8, 64, 256};
	char		err[512];
	lm_model   *m = lm_model_open(path, err, sizeof(err));
	lm_device_model *dm;
	gpu_seqs	s;
	gpu_batch	g;
	int			V,
				E,
				gemm_elem = 4;
	double		t0,
				t;
	const char *mode = getenv("LMGEN_CUDA_GEMM");

	if (mode && (strcmp(mode, "bf16") == 0 || strcmp(mode, "f16") == 0))
		gemm_elem = 2;
	printf("model %s\n", path);
	if (!m)
	{
		printf("  cannot open: %s\n", err);
		return;
	}
	V = m->cfg.n_vocab;
	E = m->cfg.n_embd;
	t0 = gpu_now();
	dm = ops->upload(dev, m, 0.5, (size_t) 8 << 30, PREFILL_BATCH, N_SEQ, PROMPT + steps + 16, err, sizeof(err));
	if (!dm)
	{
		printf("  upload failed: %s\n", err);
		lm_model_free(m);
		return;
	}
	printf("  upload %.2f s, %lld KV blocks; weights %.1f MB raw, %.1f MB dense\n", gpu_now() - t0,
		   (long long) ops->kv_blocks(dm), weight_bytes(m, false, 0) / 1e6, weight_bytes(m, true, gemm_elem) / 1e6);
	if (!gpu_seqs_init(&s, ops, dm, N_SEQ, PROMPT + steps + 16) || !gpu_batch_init(&g, PREFILL_BATCH, E, V) ||
		!gpu_batch_logits(&g, ops, N_SEQ, V))
	{
		printf("  not enough device or host memory for %d sequences\n", N_SEQ);
		ops->unload(dm);
		lm_model_free(m);
		return;
	}

	/* warm-up: one short prompt (first launches, cuBLAS heuristics) */
	gpu_batch_clear(&g);
	for (int i = 0; i < 16; i++)
		gpu_batch_add(&g, (i * 7919 + 13) % V, i, 0, i == 15 ? LM_OUT_LOGITS : LM_OUT_NONE);
	if (gpu_batch_run(&g, &s) != 0)
		goto done;
	print_profile(dbg, dm);		/* drop the warm-up's */
	if (dbg && dbg->profile && getenv("LMGEN_CUDA_PROFILE"))
		printf("  (profiled: device time per op class after each figure; the events cost some time)\n");

	/* prefill: N_SEQ prompts of PROMPT pseudo-random tokens */
	t0 = gpu_now();
	for (int q0 = 0; q0 < N_SEQ; q0 += PREFILL_BATCH / PROMPT)
	{
		gpu_batch_clear(&g);
		for (int q = q0; q < q0 + PREFILL_BATCH / PROMPT && q < N_SEQ; q++)
			for (int i = 0; i < PROMPT; i++)
				gpu_batch_add(&g, (int32_t) (((int64_t) q * 1000003 + i * 7919 + 13) % V), i, q,
							  i == PROMPT - 1 ? LM_OUT_LOGITS : LM_OUT_NONE);
		if (gpu_batch_run(&g, &s) != 0)
			goto done;
	}
	t = gpu_now() - t0;
	printf("  prefill: %d tokens in %.3f s = %.0f tokens/s\n", N_SEQ * PROMPT, t, N_SEQ * PROMPT / t);
	print_profile(dbg, dm);

	printf("  %-6s %-8s %12s %12s %12s %14s %10s\n", "batch", "outputs", "tokens/s", "ms/step", "bound ms", "weights+KV MB", "x bound");
	for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++)
	{
		int			B = batches[bi];

		for (int kind = 0; kind < 2; kind++)
		{
			lm_out		out = kind == 0 ? LM_OUT_LOGITS : LM_OUT_HIDDEN;
			double		bytes,
						bound;

			t0 = gpu_now();
			for (int st = 0; st < steps; st++)
			{
				gpu_batch_clear(&g);
				for (int q = 0; q < B; q++)
					gpu_batch_add(&g, st == 0 || kind == 1 ? (q * 31 + st) % V : g.b.argmax[q], PROMPT + st, q, out);
				if (gpu_batch_run(&g, &s) != 0)
					goto done;
			}
			t = gpu_now() - t0;
			bytes = weight_bytes(m, B > LMC_MATVEC_MAX_TOKENS, gemm_elem) + kv_bytes(m, B, PROMPT + steps / 2);
			bound = bytes / HBM_BPS * 1e3;
			printf("  %-6d %-8s %12.0f %12.3f %12.4f %14.1f %10.1f\n", B, kind == 0 ? "logits" : "hidden",
				   (double) B * steps / t, t / steps * 1e3, bound, bytes / 1e6, t / steps * 1e3 / bound);
			print_profile(dbg, dm);
		}
	}
done:
	gpu_batch_free(&g);
	gpu_seqs_free(&s);
	ops->unload(dm);
	lm_model_free(m);
}

/* Benchmark the models present. */
int
main(int argc, char **argv)
{
	const lm_device_ops *ops;
	const lmc_debug_ops *dbg = NULL;
	lm_device  *dev = gpu_open(&ops, &dbg);
	int			steps = argc > 1 ? atoi(argv[1]) : 16;
	char		path[1024];

	if (steps < 1 || steps > 1000)
		steps = 16;
	printf("gemm mode: %s (LMGEN_CUDA_GEMM), %d decode steps per figure\n",
		   getenv("LMGEN_CUDA_GEMM") ? getenv("LMGEN_CUDA_GEMM") : "f32", steps);
	if (gpu_find_model(path, sizeof(path), "default.gguf", GPU_SHAPED_SMOLLM2) != GPU_MODEL_ABSENT)
		bench_model(ops, dbg, dev, path, steps);
	if (gpu_find_model(path, sizeof(path), "gemma-3-270m-q4_k_m.gguf", GPU_SHAPED_GEMMA3) != GPU_MODEL_ABSENT)
		bench_model(ops, dbg, dev, path, steps);
	ops->close(dev);
	return 0;
}
