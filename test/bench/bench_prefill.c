/*
 * bench_prefill.c — long-prompt prefill speed and abort-poll spacing.
 *
 * For each prompt length L it evaluates L random tokens of one sequence in
 * one lm_model_forward call, split by the context into internal steps of
 * STEP tokens (32 = what the extension's runtime.c uses), and prints the
 * prompt tokens/s and the longest interval between two calls of the abort
 * check (plus the time from the start to the first call, and from the last
 * call to the end): a cancel lands within about that interval.  cpu_s is
 * the process's CPU time, steadier than wall time on a shared machine.
 * Not built by make.  Build and run from the repository root, after make:
 *
 *   gcc -std=gnu11 -O2 -Isrc/engine -o /tmp/bench_prefill test/bench/bench_prefill.c \
 *       src/engine/?*.o -lpthread -lm
 *   /tmp/bench_prefill MODEL.gguf [threads] [step] [lengths]
 *
 * threads defaults to 1 (lmgen.threads' default), step to 32, lengths to
 * 512,2048,8192 (comma list).  One run per length, no warm-up beyond a
 * 16-token call: long prompts take long enough that noise is small.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "context.h"
#include "model.h"

/* Times of the abort checks of one forward call. */
typedef struct poll_log
{
	double		last;			/* time of the previous check (or of the start) */
	double		max_gap;		/* longest interval seen */
	long		calls;			/* checks made */
} poll_log;

/* Abort check that never aborts and records when it ran. */
static bool
record_poll(void *arg)
{
	poll_log   *p = arg;
	double		t = bench_wall_s();

	if (t - p->last > p->max_gap)
		p->max_gap = t - p->last;
	p->last = t;
	p->calls++;
	return false;
}

/* Run the benchmark. */
int
main(int argc, char **argv)
{
	char		err[512];
	const char *lens = argc > 4 ? argv[4] : "512,2048,8192";
	int			threads = argc > 2 ? atoi(argv[2]) : 1,
				step = argc > 3 ? atoi(argv[3]) : 32,
				max_len = 0;
	lm_model   *m;
	lm_context *ctx;
	lm_context_params cp = lm_context_default_params();
	lm_batch   *b;
	unsigned	rng = 1234;
	int			lengths[32],
				n_len = 0;

	if (argc < 2)
	{
		fprintf(stderr, "usage: bench_prefill MODEL.gguf [threads] [step] [lengths]\n");
		return 2;
	}
	for (const char *s = lens; *s && n_len < 32;)
	{
		lengths[n_len] = atoi(s);
		if (lengths[n_len] > max_len)
			max_len = lengths[n_len];
		n_len++;
		s = strchr(s, ',');
		if (!s)
			break;
		s++;
	}
	m = lm_model_open(argv[1], err, sizeof(err));
	if (!m)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	cp.n_ctx = max_len;
	cp.n_batch = step;
	cp.n_threads = threads;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	b = lm_batch_create(max_len);
	if (!ctx || !b)
	{
		fprintf(stderr, "context: %s\n", err);
		return 1;
	}
	printf("# %s, %d threads, steps of %d tokens\n", argv[1], threads, step);
	printf("%8s %10s %10s %10s %12s %8s\n", "tokens", "seconds", "tok/s", "cpu_s", "max_gap_ms", "polls");
	for (int li = -1; li < n_len; li++)
	{
		int			n = li < 0 ? 16 : lengths[li];
		poll_log	pl = {0};
		double		t0,
					c0;

		lm_batch_clear(b);
		for (int i = 0; i < n; i++)
			lm_batch_add(b, (int32_t) (rand_r(&rng) % m->cfg.n_vocab), i, 0, i == n - 1);
		lm_context_set_abort(ctx, record_poll, &pl);
		c0 = bench_cpu_s();
		t0 = bench_wall_s();
		pl.last = t0;
		if (lm_model_forward(ctx, b, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "forward: %s\n", err);
			return 1;
		}
		record_poll(&pl);
		pl.calls--;				/* the end is not a check */
		if (li >= 0)
			printf("%8d %10.2f %10.1f %10.2f %12.1f %8ld\n", n, pl.last - t0, n / (pl.last - t0),
				   bench_cpu_s() - c0, pl.max_gap * 1e3, pl.calls);
		fflush(stdout);
	}
	lm_batch_free(b);
	lm_context_free(ctx);
	lm_model_free(m);
	return 0;
}
