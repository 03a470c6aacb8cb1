/*
 * cmd_bench.c — "lmgen-cli bench MODEL -t THREADS -p 128 -n 128": prompt
 * processing (one batch of P random tokens) and text generation (N single
 * token steps) speed, like llama-bench: one line per test with the median
 * tokens/s over -r repetitions (after one warm-up run), and the spread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_engine.h"
#include "context.h"
#include "kernels.h"
#include "model.h"

/* Monotonic seconds. */
static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Compare doubles for qsort. */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* One timed run: a prompt of n tokens in one batch (gen = false) or n one-token steps. */
static bool
bench_once(lm_context *ctx, lm_batch *b, int n, bool gen, unsigned *rng, double *secs)
{
	char		err[256];
	int			n_vocab = lm_context_model(ctx)->cfg.n_vocab;
	double		t0;

	lm_kv_clear(lm_context_kv(ctx));
	t0 = bench_now();
	if (!gen)
	{
		lm_batch_clear(b);
		for (int i = 0; i < n; i++)
			lm_batch_add(b, (int32_t) (rand_r(rng) % n_vocab), i, 0, i == n - 1);
		if (lm_model_forward(ctx, b, err, sizeof(err)) != 0)
			goto fail;
	}
	else
		for (int i = 0; i < n; i++)
		{
			lm_batch_clear(b);
			lm_batch_add(b, (int32_t) (rand_r(rng) % n_vocab), i, 0, true);
			if (lm_model_forward(ctx, b, err, sizeof(err)) != 0)
				goto fail;
		}
	*secs = bench_now() - t0;
	return true;
fail:
	fprintf(stderr, "lmgen-cli bench: %s\n", err);
	return false;
}

/* Run one test reps times and print its line. */
static bool
bench_test(lm_context *ctx, lm_batch *b, int n, bool gen, int reps)
{
	double	   *tps = malloc(sizeof(double) * reps),
				secs,
				mean = 0,
				var = 0;
	unsigned	rng = 1234;

	if (!tps || !bench_once(ctx, b, n, gen, &rng, &secs))	/* warm-up */
	{
		free(tps);
		return false;
	}
	for (int r = 0; r < reps; r++)
	{
		if (!bench_once(ctx, b, n, gen, &rng, &secs))
		{
			free(tps);
			return false;
		}
		tps[r] = n / secs;
		mean += tps[r] / reps;
	}
	for (int r = 0; r < reps; r++)
		var += (tps[r] - mean) * (tps[r] - mean) / (reps > 1 ? reps - 1 : 1);
	qsort(tps, reps, sizeof(double), cmp_double);
	printf("%s%-5d %10.2f  +- %.2f\n", gen ? "tg" : "pp", n,
		   reps % 2 ? tps[reps / 2] : (tps[reps / 2 - 1] + tps[reps / 2]) / 2, sqrt(var));
	fflush(stdout);
	free(tps);
	return true;
}

/* Run the subcommand. */
int
cmd_bench(int argc, char **argv)
{
	const char *model_path = NULL;
	int			n_threads = 1,
				n_pp = 128,
				n_tg = 128,
				reps = 5,
				rc = 1;
	char		err[512];
	lm_model   *m = NULL;
	lm_context *ctx = NULL;
	lm_batch   *b = NULL;
	lm_context_params cp = lm_context_default_params();

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i],
				   *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool		ok = true;

		if (strcmp(a, "-t") == 0 && v && ++i)
			ok = cli_parse_int("bench", a, v, 1, 256, &n_threads);
		else if (strcmp(a, "-p") == 0 && v && ++i)
			ok = cli_parse_int("bench", a, v, 0, 1 << 16, &n_pp);
		else if (strcmp(a, "-n") == 0 && v && ++i)
			ok = cli_parse_int("bench", a, v, 0, 1 << 16, &n_tg);
		else if (strcmp(a, "-r") == 0 && v && ++i)
			ok = cli_parse_int("bench", a, v, 1, 1000, &reps);
		else if (a[0] != '-' && !model_path)
			model_path = a;
		else
			ok = false;
		if (!ok)
		{
			fprintf(stderr, "usage: lmgen-cli bench MODEL.gguf [-t THREADS] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-r REPS]\n");
			return 2;
		}
	}
	if (!model_path)
	{
		fprintf(stderr, "usage: lmgen-cli bench MODEL.gguf [-t THREADS] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-r REPS]\n");
		return 2;
	}
	m = lm_model_open(model_path, err, sizeof(err));
	if (!m)
	{
		fprintf(stderr, "lmgen-cli bench: %s\n", err);
		return 1;
	}
	cp.n_ctx = n_pp > n_tg ? n_pp : n_tg;
	if (cp.n_ctx < 1)
		cp.n_ctx = 1;
	cp.n_batch = n_pp > 0 ? n_pp : 1;
	cp.n_threads = n_threads;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	b = lm_batch_create(cp.n_batch);
	if (!ctx || !b)
	{
		fprintf(stderr, "lmgen-cli bench: %s\n", ctx ? "out of memory" : err);
		goto done;
	}
	printf("# model %s, %s, %d threads, %s kernels, median of %d\n", model_path, m->cfg.arch,
		   lm_context_n_threads(ctx), lm_isa_name(lm_kernels_isa()), reps);
	if ((n_pp > 0 && !bench_test(ctx, b, n_pp, false, reps)) ||
		(n_tg > 0 && !bench_test(ctx, b, n_tg, true, reps)))
		goto done;
	rc = 0;
done:
	lm_batch_free(b);
	lm_context_free(ctx);
	lm_model_free(m);
	return rc;
}
