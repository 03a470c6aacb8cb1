/*
 * device_check.c — agreement of the CUDA backend with the CPU engine, run
 * on a machine with a GPU (test/gpu/run.sh).  For each model found
 * (SmolLM2 default.gguf and Gemma 3 in the model directory; stories260K
 * and its quantized variants in ../shared/models):
 *
 *   dequant    every weight matrix dequantized on the device (the kernels'
 *              dequant.cuh) against quant.c's lm_dequantize_row, bit for
 *              bit (memcmp of the floats);
 *   greedy     each prompt on the CPU context: the prompt in one batch,
 *              then n_gen greedy steps; the same on the device, one
 *              sequence built from kv_alloc'ed blocks, fed the CPU's tokens
 *              (so every step compares the same inputs): the device's argmax
 *              against the CPU's token and the largest |logit difference|
 *              per step;
 *   batched    every prompt of the model in one device batch (different
 *              lengths, prefill on the GEMM path), then all sequences
 *              decoded together; their greedy tokens against the CPU's;
 *   gemm-only  the single-sequence run again with LMGEN_CUDA_MATVEC_MAX=0
 *              (every product through cuBLAS).
 *
 * Models: the real files when present, else the shaped stand-ins run.sh
 * writes with test/gpu/shaped_model.py (real shapes and types, random
 * weights; no tokenizer, so their prompts are fixed pseudo-random token ids
 * of the real prompts' lengths); `device_check MODEL.gguf...` checks just
 * those files (run.sh's compute-sanitizer pass).  LMGEN_CHECK_STEPS (1..32)
 * shortens the greedy runs; LMGEN_CHECK_PROMPT=N makes a shaped model's
 * prompts N, N - 37, ... tokens long (past gemma3's 512-position window and
 * into split attention).
 *
 * A quantized model's CPU products quantize the activations to 8 bits
 * (as llama.cpp's do) and the device's do not, so their logits differ by
 * about 1% of their scale; a shaped model's random layers amplify that
 * until the check says little.  Shaped models written with --float (every
 * matrix F32: no activation quantization on the CPU) show the device's own
 * error: there the logits agree to float rounding.
 *
 * Prints one line per check and a summary; exits 0 when every check
 * agrees, 1 when one does not, 77 without a GPU.  Where a token differs,
 * the CPU's own top-2 margin at that step is printed beside the device's
 * logit difference: a margin within twice the difference is a near-tie
 * (reported, not a failure), anything else a MISMATCH.
 */
#include <math.h>

#include "gpu_common.h"
#include "model.h"
#include "quant.h"
#include "tokenizer.h"

/* Most greedy steps after each prompt. */
#define N_GEN 32

/* Greedy steps after each prompt in this run (LMGEN_CHECK_STEPS, default N_GEN). */
static int n_gen = N_GEN;

/* Positions a sequence may reach in these checks. */
#define CHECK_CTX 2048

/* Most prompt tokens (LMGEN_CHECK_PROMPT asks for long synthetic prompts). */
#define MAX_PROMPT_TOKENS 1024

/* Most prompts per model. */
#define MAX_PROMPTS 8

/* Largest |a - b| over n floats. */
static double
max_abs_diff(const float *a, const float *b, int n)
{
	double		m = 0.0;

	for (int i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - (double) b[i]);

		if (d > m || isnan(d))
			m = isnan(d) ? INFINITY : d;
	}
	return m;
}

/* Largest |x| over n floats (the scale a logit difference is judged against). */
static double
max_abs(const float *x, int n)
{
	double		m = 0.0;

	for (int i = 0; i < n; i++)
		m = fabs((double) x[i]) > m ? fabs((double) x[i]) : m;
	return m;
}

/* Index of the largest value, lowest on ties; *margin = top-1 minus top-2. */
static int
argmax_margin(const float *x, int n, float *margin)
{
	int			best = 0;
	float		second = -INFINITY;

	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	for (int i = 0; i < n; i++)
		if (i != best && x[i] > second)
			second = x[i];
	*margin = x[best] - second;
	return best;
}

/*
 * A differing token counts as a near-tie, not a defect, when the CPU's own
 * top-2 margin is within twice the largest logit difference of that step:
 * rounding of that size can reorder the two.
 */
static bool
near_tie(float margin, double max_diff)
{
	return (double) margin <= 2.0 * max_diff;
}

/* Dequantize one weight on both sides in slices of rows; 0 when bit-exact. */
static int
check_weight(lm_device *dev, const lmc_debug_ops *dbg, const lm_weight *w, const char *name, size_t *bytes)
{
	int64_t		slice = (int64_t) (64 << 20) / (w->n_cols * 4) + 1;
	float	   *cpu = malloc(sizeof(float) * (size_t) slice * w->n_cols),
			   *gpu = malloc(sizeof(float) * (size_t) slice * w->n_cols);
	char		err[512];
	int			bad = 0;

	for (int64_t r0 = 0; r0 < w->n_rows && !bad; r0 += slice)
	{
		int64_t		nr = w->n_rows - r0 < slice ? w->n_rows - r0 : slice;
		const char *src = (const char *) w->data + (size_t) r0 * w->row_bytes;

		for (int64_t r = 0; r < nr; r++)
			lm_dequantize_row(w->type, src + (size_t) r * w->row_bytes, cpu + (size_t) r * w->n_cols, w->n_cols);
		if (!dbg->dequantize(dev, w->type, src, nr, w->n_cols, w->row_bytes, gpu, err, sizeof(err)))
		{
			printf("  dequant %s: device error: %s\n", name, err);
			bad = 1;
			break;
		}
		for (int64_t i = 0; i < nr * w->n_cols; i++)
			if (memcmp(&cpu[i], &gpu[i], sizeof(float)) != 0)
			{
				printf("  dequant %s (%s): element %lld differs: cpu %.9g device %.9g\n", name,
					   lm_type_name(w->type), (long long) (r0 * w->n_cols + i), cpu[i], gpu[i]);
				bad = 1;
				break;
			}
		*bytes += (size_t) nr * w->row_bytes;
	}
	free(cpu);
	free(gpu);
	return bad;
}

/* Every weight matrix of the model; number of tensors that differ. */
static int
check_dequant(lm_device *dev, const lmc_debug_ops *dbg, const lm_model *m)
{
	int			bad = 0,
				n = 0;
	size_t		bytes = 0;
	char		name[64];
	double		t0 = gpu_now();

	bad += check_weight(dev, dbg, &m->tok_embd, "token_embd", &bytes);
	n++;
	if (m->output.data != m->tok_embd.data)
	{
		bad += check_weight(dev, dbg, &m->output, "output", &bytes);
		n++;
	}
	for (int l = 0; l < m->cfg.n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		const lm_weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
		static const char *nm[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

		for (int j = 0; j < 7; j++)
		{
			snprintf(name, sizeof(name), "blk.%d.%s", l, nm[j]);
			bad += check_weight(dev, dbg, ws[j], name, &bytes);
			n++;
		}
	}
	printf("  dequant: %d tensors, %zu MB: %s (%.1f s)\n", n, bytes >> 20,
		   bad ? "DIFFER" : "bit-exact", gpu_now() - t0);
	return bad;
}

/* One prompt's CPU run: tokens[0..n_gen) and the logits that chose each. */
typedef struct cpu_run
{
	int			n_prompt;
	int32_t		prompt[MAX_PROMPT_TOKENS];
	int32_t		gen[N_GEN];
	float	   *logits;			/* (n_gen, n_vocab): logits that chose gen[s] */
} cpu_run;

/* Greedy generation on the CPU. */
static bool
run_cpu(const lm_model *m, int n_threads, cpu_run *r)
{
	char		err[512];
	lm_context_params p = lm_context_default_params();
	lm_context *ctx;
	lm_batch   *b = lm_batch_create(MAX_PROMPT_TOKENS);
	int			V = m->cfg.n_vocab,
				pos = 0;

	p.n_ctx = CHECK_CTX;
	p.n_threads = n_threads;
	ctx = lm_context_create(m, &p, err, sizeof(err));
	if (!ctx || !b)
	{
		printf("  cpu context: %s\n", err);
		return false;
	}
	r->logits = malloc(sizeof(float) * (size_t) n_gen * V);
	for (int i = 0; i < r->n_prompt; i++)
		lm_batch_add(b, r->prompt[i], pos++, 0, i == r->n_prompt - 1);
	for (int s = 0; s < n_gen; s++)
	{
		const float *lg;
		float		margin;

		if (lm_model_forward(ctx, b, err, sizeof(err)) != 0)
		{
			printf("  cpu forward: %s\n", err);
			return false;
		}
		lg = lm_context_logits(ctx, b->n_tokens - 1);
		memcpy(r->logits + (size_t) s * V, lg, sizeof(float) * V);
		r->gen[s] = argmax_margin(lg, V, &margin);
		lm_batch_clear(b);
		lm_batch_add(b, r->gen[s], pos++, 0, true);
	}
	lm_batch_free(b);
	lm_context_free(ctx);
	return true;
}

/* One prompt on the device, fed the CPU's tokens; number of steps whose argmax differs. */
static int
run_device_single(const lm_device_ops *ops, lm_device_model *dm, const lm_model *m, const cpu_run *r,
				  const char *label, bool verbose)
{
	int			V = m->cfg.n_vocab,
				bad = 0,
				ties = 0,
				pos = 0;
	gpu_seqs	s;
	gpu_batch	g;
	double		worst = 0.0,
				scale = 0.0;

	if (!gpu_seqs_init(&s, ops, dm, 1, CHECK_CTX) || !gpu_batch_init(&g, MAX_PROMPT_TOKENS, m->cfg.n_embd, V) ||
		!gpu_batch_logits(&g, ops, 1, V))
	{
		printf("  %s: cannot set up the device sequence\n", label);
		return n_gen;
	}
	gpu_batch_clear(&g);
	for (int i = 0; i < r->n_prompt; i++)
		gpu_batch_add(&g, r->prompt[i], pos++, 0, i == r->n_prompt - 1 ? LM_OUT_LOGITS : LM_OUT_NONE);
	for (int st = 0; st < n_gen; st++)
	{
		const float *cl = r->logits + (size_t) st * V;
		double		d;
		float		margin;

		if (gpu_batch_run(&g, &s) != 0)
		{
			bad = n_gen;
			break;
		}
		d = max_abs_diff(cl, g.b.logits, V);
		if (d > worst)
			worst = d;
		if (max_abs(cl, V) > scale)
			scale = max_abs(cl, V);
		argmax_margin(cl, V, &margin);
		if (g.b.argmax[0] != r->gen[st])
		{
			bool		tie = near_tie(margin, d);

			bad += !tie;
			ties += tie;
			printf("  %s step %d: device token %d, cpu token %d (cpu top-2 margin %.4g, max |dlogit| %.4g): %s\n",
				   label, st, g.b.argmax[0], r->gen[st], margin, d, tie ? "near-tie" : "MISMATCH");
		}
		else if (verbose)
			printf("  %s step %2d: token %6d  max |dlogit| %.3g  (cpu margin %.3g)\n", label, st, r->gen[st], d,
				   margin);
		gpu_batch_clear(&g);
		gpu_batch_add(&g, r->gen[st], pos++, 0, LM_OUT_LOGITS);
	}
	printf("  %s: %d/%d greedy tokens equal (%d near-ties), max |dlogit| %.4g (cpu |logit| up to %.4g)\n", label,
		   n_gen - bad - ties, n_gen, ties, worst, scale);
	gpu_batch_free(&g);
	gpu_seqs_free(&s);
	return bad;
}

/* All prompts in one device batch, then decoded together (the device's own greedy tokens); mismatches. */
static int
run_device_batched(const lm_device_ops *ops, lm_device_model *dm, const lm_model *m, const cpu_run *r, int n_runs)
{
	int			V = m->cfg.n_vocab,
				bad = 0,
				hard = 0,
				total = 0,
				pos[MAX_PROMPTS];
	int32_t		next[MAX_PROMPTS];
	bool		diverged[MAX_PROMPTS] = {false};
	double		worst = 0.0;
	gpu_seqs	s;
	gpu_batch	g;

	if (!gpu_seqs_init(&s, ops, dm, n_runs, CHECK_CTX) || !gpu_batch_init(&g, MAX_PROMPT_TOKENS * MAX_PROMPTS, m->cfg.n_embd, V) ||
		!gpu_batch_logits(&g, ops, MAX_PROMPTS, V))
	{
		printf("  batched: cannot set up the device sequences\n");
		return 1;
	}
	gpu_batch_clear(&g);
	for (int k = 0; k < n_runs; k++)
	{
		pos[k] = 0;
		for (int i = 0; i < r[k].n_prompt; i++)
			gpu_batch_add(&g, r[k].prompt[i], pos[k]++, k, i == r[k].n_prompt - 1 ? LM_OUT_LOGITS : LM_OUT_NONE);
	}
	for (int st = 0; st < n_gen; st++)
	{
		if (gpu_batch_run(&g, &s) != 0)
		{
			bad = 1;
			break;
		}
		for (int k = 0; k < n_runs; k++)
		{
			next[k] = g.b.argmax[k];
			if (!diverged[k])
			{
				double		d = max_abs_diff(r[k].logits + (size_t) st * V, g.b.logits + (size_t) k * V, V);

				total++;
				worst = d > worst ? d : worst;
				if (next[k] != r[k].gen[st])
				{
					float		margin;

					argmax_margin(r[k].logits + (size_t) st * V, V, &margin);
					diverged[k] = true;
					hard += !near_tie(margin, d);
					printf("  batched: prompt %d first differs at step %d (device %d, cpu %d; cpu margin %.4g, "
						   "max |dlogit| %.4g): %s\n", k, st, next[k], r[k].gen[st], margin, d,
						   near_tie(margin, d) ? "near-tie" : "MISMATCH");
				}
			}
		}
		gpu_batch_clear(&g);
		for (int k = 0; k < n_runs; k++)
			gpu_batch_add(&g, next[k], pos[k]++, k, LM_OUT_LOGITS);
	}
	for (int k = 0; k < n_runs; k++)
		bad += diverged[k];
	printf("  batched: %d prompts in one batch, %d of them equal to the cpu for all %d tokens (%d token checks), "
		   "max |dlogit| %.4g\n", n_runs, n_runs - bad, n_gen, total, worst);
	gpu_batch_free(&g);
	gpu_seqs_free(&s);
	return hard;
}

/*
 * Token ids of prompt k for a model without a tokenizer (a shaped model):
 * about the lengths the real prompts tokenize to, or with
 * LMGEN_CHECK_PROMPT=N (up to MAX_PROMPT_TOKENS) N - 37 k tokens, so that
 * sliding windows and split attention are reached; pseudo-random ids in
 * [1, n_vocab), the same on every run; the count.
 */
static int
synthetic_prompt(int k, int n_vocab, int32_t *out)
{
	static const int lens[MAX_PROMPTS] = {6, 13, 17, 29, 7, 40, 3, 21};
	const char *want = getenv("LMGEN_CHECK_PROMPT");
	int			len = lens[k % MAX_PROMPTS];
	uint32_t	x = 2654435761u * (uint32_t) (k + 1);

	if (want && atoi(want) > 0)
	{
		len = (atoi(want) < MAX_PROMPT_TOKENS ? atoi(want) : MAX_PROMPT_TOKENS) - 37 * k;
		len = len < 1 ? 1 : len;
	}
	for (int i = 0; i < len; i++)
	{
		x = x * 1664525u + 1013904223u;
		out[i] = 1 + (int32_t) ((x >> 8) % (uint32_t) (n_vocab - 1));
	}
	return len;
}

/* Every check on one model file; failures counted. */
static int
check_model(const lm_device_ops *ops, lm_device *dev, const lmc_debug_ops *dbg, const char *path,
			const char *const *prompts, int n_prompts, int n_threads)
{
	char		err[512];
	lm_model   *m = lm_model_open(path, err, sizeof(err));
	lm_tokenizer *tk;
	lm_device_model *dm;
	cpu_run		runs[MAX_PROMPTS];
	int			fails = 0;
	double		t0;

	printf("model %s\n", path);
	if (!m)
	{
		printf("  cannot open: %s\n", err);
		return 1;
	}
	tk = lm_tokenizer_load(m->gguf, err, sizeof(err));
	if (!tk)
		printf("  no tokenizer (%s): prompts are token ids\n", err);
	fails += check_dequant(dev, dbg, m);

	t0 = gpu_now();
	for (int k = 0; k < n_prompts; k++)
	{
		runs[k].n_prompt = tk ? lm_tokenize(tk, prompts[k], strlen(prompts[k]), true, false, runs[k].prompt,
											MAX_PROMPT_TOKENS, err, sizeof(err))
			: synthetic_prompt(k, m->cfg.n_vocab, runs[k].prompt);
		if (runs[k].n_prompt < 1 || runs[k].n_prompt > MAX_PROMPT_TOKENS || !run_cpu(m, n_threads, &runs[k]))
		{
			printf("  cpu run of prompt %d failed\n", k);
			return fails + 1;
		}
	}
	printf("  cpu: %d prompts x %d greedy tokens (%.1f s)\n", n_prompts, n_gen, gpu_now() - t0);

	for (int pass = 0; pass < 2; pass++)
	{
		setenv("LMGEN_CUDA_MATVEC_MAX", pass == 0 ? "8" : "0", 1);
		t0 = gpu_now();
		dm = ops->upload(dev, m, 0.2, (size_t) 2 << 30, 256 * MAX_PROMPTS, MAX_PROMPTS, CHECK_CTX, err, sizeof(err));
		if (!dm)
		{
			printf("  upload failed: %s\n", err);
			return fails + 1;
		}
		printf("  upload (%s): %.2f s, %lld KV blocks\n", dbg->describe(dm), gpu_now() - t0,
			   (long long) ops->kv_blocks(dm));
		for (int k = 0; k < n_prompts; k++)
		{
			char		label[64];

			snprintf(label, sizeof(label), "%s prompt %d (%d tokens)", pass == 0 ? "single" : "gemm-only", k,
					 runs[k].n_prompt);
			fails += run_device_single(ops, dm, m, &runs[k], label, pass == 0 && k == 0) != 0;
		}
		if (pass == 0)
			fails += run_device_batched(ops, dm, m, runs, n_prompts) != 0;
		if (!ops->healthy(dev))
		{
			printf("  the device is no longer healthy\n");
			fails++;
		}
		ops->unload(dm);
	}
	unsetenv("LMGEN_CUDA_MATVEC_MAX");
	for (int k = 0; k < n_prompts; k++)
		free(runs[k].logits);
	lm_tokenizer_free(tk);
	lm_model_free(m);
	return fails;
}

/* Check one model file found by main; counts it in *n_models and returns its failures. */
static int
check_found(const lm_device_ops *ops, lm_device *dev, const lmc_debug_ops *dbg, const char *path,
			const char *const *prompts, int n_threads, int *n_models)
{
	(*n_models)++;
	return check_model(ops, dev, dbg, path, prompts, 5, n_threads);
}

/* Run every check on the models named, or on every model present. */
int
main(int argc, char **argv)
{
	static const char *const chat_prompts[] = {
		"The capital of France is",
		"Once upon a time, in a small village by the sea,",
		"PostgreSQL is a powerful, open source object-relational database system that",
		"Summarize in one sentence: The committee met on Tuesday to review the budget and agreed to postpone the vote until next month.",
		"def fibonacci(n):",
	};
	static const char *const story_prompts[] = {
		"Once upon a time", "Lily wanted to play with her", "The little dog was very",
		"Tom and Sue went to the park. They saw", "One day, a big bear",
	};
	static const char *const shared[] = {
		"stories260K.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf", "stories260K-Q4_K_M.gguf",
		"stories260K-Q6_K.gguf",
	};
	const lm_device_ops *ops;
	const lmc_debug_ops *dbg;
	lm_device  *dev;
	int			fails = 0,
				n_models = 0,
				n_real = 0,
				n_shaped = 0,
				n_stories = 0;
	char		path[1024];
	long		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int			threads = ncpu > 8 ? 8 : ncpu < 1 ? 1 : (int) ncpu;
	const char *steps = getenv("LMGEN_CHECK_STEPS");
	gpu_model_kind kind;

	if (steps && *steps)
		n_gen = atoi(steps) < 1 ? 1 : atoi(steps) > N_GEN ? N_GEN : atoi(steps);
	dev = gpu_open(&ops, &dbg);
	if (argc > 1)
	{
		/* the files named (run.sh's compute-sanitizer pass) */
		for (int i = 1; i < argc; i++)
			fails += check_found(ops, dev, dbg, argv[i], strstr(argv[i], "stories") ? story_prompts : chat_prompts,
								 threads, &n_models);
		ops->close(dev);
		printf("device_check: %d models named, %s\n", n_models, fails ? "FAILURES (see above)" : "all checks agree");
		return fails ? 1 : 0;
	}
	kind = gpu_find_model(path, sizeof(path), "default.gguf", GPU_SHAPED_SMOLLM2);
	if (kind != GPU_MODEL_ABSENT)
	{
		fails += check_found(ops, dev, dbg, path, chat_prompts, threads, &n_models);
		n_real += kind == GPU_MODEL_REAL;
		n_shaped += kind == GPU_MODEL_SHAPED;
	}
	kind = gpu_find_model(path, sizeof(path), "gemma-3-270m-q4_k_m.gguf", GPU_SHAPED_GEMMA3);
	if (kind != GPU_MODEL_ABSENT)
	{
		fails += check_found(ops, dev, dbg, path, chat_prompts, threads, &n_models);
		n_real += kind == GPU_MODEL_REAL;
		n_shaped += kind == GPU_MODEL_SHAPED;
	}
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
	{
		gpu_shared_path(path, sizeof(path), shared[i]);
		if (gpu_exists(path))
		{
			fails += check_found(ops, dev, dbg, path, story_prompts, threads, &n_models);
			n_stories++;
		}
		else
			printf("model source: %s is absent: skipped\n", path);
	}
	ops->close(dev);
	printf("device_check: %d models (%d real, %d shaped, %d stories260K), %s\n", n_models, n_real, n_shaped,
		   n_stories, fails ? "FAILURES (see above)" : "all checks agree");
	return n_models == 0 ? 1 : fails ? 1 : 0;
}
