/*
 * cmd_bench.c — "lmgen-cli bench MODEL -t THREADS -p 128 -n 128": prompt
 * processing (one batch of P random tokens) and text generation (N single
 * token steps) speed, like llama-bench: one line per test with the median
 * tokens/s over -r repetitions (after one warm-up run), and the spread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
	const char *model_path = NULL,
			   *device = NULL,
			   *bad;
	int			n_threads = 1,
				n_pp = 128,
				n_tg = 128,
				reps = 5,
				rc = 1;
	cli_engine	e = {0};
	lm_context_params cp = lm_context_default_params();
	const cli_opt opts[] = {
		{.name = "-t", .num = &n_threads, .lo = 1, .hi = 256},
		{.name = "-p", .num = &n_pp, .lo = 0, .hi = 1 << 16},
		{.name = "-n", .num = &n_tg, .lo = 0, .hi = 1 << 16},
		{.name = "-r", .num = &reps, .lo = 1, .hi = 1000},
		{.name = "--device", .str = &device},
	};

	if (cli_parse_args("bench", argc, argv, opts, CLI_LENGTHOF(opts), &model_path, 1, &bad) != CLI_ARGS_OK || !model_path)
	{
		fprintf(stderr, "usage: lmgen-cli bench MODEL.gguf [-t THREADS] [-p PROMPT_TOKENS] [-n GEN_TOKENS] [-r REPS] [--device BACKEND.so]\n");
		return 2;
	}
	if (!cli_engine_open(&e, "bench", model_path))
		return 1;
	cp.n_ctx = n_pp > n_tg ? n_pp : n_tg;
	if (cp.n_ctx < 1)
		cp.n_ctx = 1;
	cp.n_batch = n_pp > 0 ? n_pp : 1;
	cp.n_threads = n_threads;
	if (device && !cli_engine_device(&e, "bench", device, &cp))
		goto done;
	if (!cli_engine_context(&e, "bench", &cp, true))
		goto done;
	if (e.dev)
	{
		lm_device_info info;
		char		err[256];

		if (!e.dev_ops->info(e.dev, &info, err, sizeof(err)))
			snprintf(info.name, sizeof(info.name), "%s", e.dev_ops->name);
		printf("# model %s, %s, device %s (%s), median of %d\n", model_path, e.model->cfg.arch,
			   info.name, device, reps);
	}
	else
		printf("# model %s, %s, %d threads, %s kernels, median of %d\n", model_path, e.model->cfg.arch,
			   lm_context_n_threads(e.ctx), lm_isa_name(lm_kernels_isa()), reps);
	if ((n_pp > 0 && !bench_test(e.ctx, e.batch, n_pp, false, reps)) ||
		(n_tg > 0 && !bench_test(e.ctx, e.batch, n_tg, true, reps)))
		goto done;
	rc = 0;
done:
	cli_engine_close(&e);
	return rc;
}
