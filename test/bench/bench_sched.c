/*
 * bench_sched.c — decode speed of the batching scheduler against the
 * one-sequence loop, in the engine alone (no server).
 *
 * For the model given it runs: lm_generate() of one request (the loop the
 * CLI and local SQL calls use), the same request alone through
 * lm_sched_step(), then N requests at once through the scheduler for N = 1,
 * 2, 4, 8, 16 (distinct prompts, greedy, a fixed number of tokens each), and
 * prints wall and CPU seconds and the aggregate generated tokens/s, then the
 * same for the pure decode steps alone (steps that evaluated no prompt
 * token): decode tokens/s, and CPU milliseconds per generated token, the
 * figure least disturbed by other work on a shared machine.  Each line is
 * the best of R repetitions (by wall time).  Not built by make.  Build and
 * run from the repository root, after make:
 *
 *   gcc -std=gnu11 -O2 -Isrc/engine -Itest/bench -o /tmp/bench_sched test/bench/bench_sched.c \
 *       src/engine/?*.o -lpthread -lm
 *   /tmp/bench_sched MODEL.gguf [threads] [tokens] [reps] [N,N,...]
 *
 * threads defaults to 1, tokens (generated per request) to 64, reps to 3,
 * the request counts to 1,2,4,8,16 (at most 16); a list without 1 also
 * skips the lm_generate line (handy under perf).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "bench_sched_run.h"
#include "context.h"
#include "generate.h"
#include "model.h"
#include "scheduler.h"
#include "tokenizer.h"

#define PROMPT_LEN 32

/* A distinct deterministic prompt for request i. */
static void
make_prompt(int32_t *p, int i, int n_vocab, int32_t bos)
{
	p[0] = bos;
	for (int k = 1; k < PROMPT_LEN; k++)
		p[k] = 3 + (k * 131 + i * 977) % (n_vocab - 3);
}

/* Seconds (wall, cpu) of one lm_generate of `tokens` tokens. */
static bool
time_generate(lm_context *ctx, const lm_tokenizer *tok, int tokens, double *wall, double *cpu)
{
	char		err[256];
	int32_t		p[PROMPT_LEN];
	lm_gen_params gp = lm_gen_default_params();
	lm_gen	   *g;
	double		w0 = bench_wall_s(),
				c0 = bench_cpu_s();

	gp.max_tokens = tokens;
	gp.ignore_eog = true;
	make_prompt(p, 0, lm_context_model(ctx)->cfg.n_vocab, lm_tokenizer_bos(tok));
	g = lm_generate(ctx, tok, 0, p, PROMPT_LEN, &gp, NULL, NULL, err, sizeof(err));
	*wall = bench_wall_s() - w0;
	*cpu = bench_cpu_s() - c0;
	if (!g)
		fprintf(stderr, "lm_generate: %s\n", err);
	lm_gen_free(g);
	return g != NULL;
}

/* Seconds (wall, cpu) of n requests of `tokens` tokens through the scheduler. */
static bool
time_sched(lm_context *ctx, const lm_tokenizer *tok, int n, int tokens, double *wall, double *cpu,
		   double *mean_batch, bench_decode_time *dt)
{
	char		err[256];
	lm_sched_params sp = lm_sched_default_params();
	lm_sched   *s;
	lm_gen_params gp = lm_gen_default_params();
	lm_sched_stats st;
	double		w0,
				c0;

	sp.max_seqs = n;
	s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
	if (!s)
	{
		fprintf(stderr, "lm_sched_create: %s\n", err);
		return false;
	}
	gp.max_tokens = tokens;
	gp.ignore_eog = true;
	w0 = bench_wall_s();
	c0 = bench_cpu_s();
	for (int i = 0; i < n; i++)
	{
		int32_t		p[PROMPT_LEN];

		make_prompt(p, i, lm_context_model(ctx)->cfg.n_vocab, lm_tokenizer_bos(tok));
		if (lm_sched_submit_generate(s, p, PROMPT_LEN, &gp, err, sizeof(err)) < 0)
		{
			fprintf(stderr, "submit: %s\n", err);
			lm_sched_free(s);
			return false;
		}
	}
	*dt = (bench_decode_time) {0};
	if (!bench_sched_drain_timed(s, n, NULL, NULL, dt))
	{
		lm_sched_free(s);
		return false;
	}
	*wall = bench_wall_s() - w0;
	*cpu = bench_cpu_s() - c0;
	lm_sched_get_stats(s, &st);
	*mean_batch = st.steps ? (double) st.seqs_sum / st.steps : 0;
	lm_sched_free(s);
	return true;
}

int
main(int argc, char **argv)
{
	char		err[256];
	int			threads = argc > 2 ? atoi(argv[2]) : 1,
				tokens = argc > 3 ? atoi(argv[3]) : 64,
				reps = argc > 4 ? atoi(argv[4]) : 3;
	lm_model   *m;
	lm_tokenizer *tok;
	lm_context *ctx;
	lm_context_params cp = lm_context_default_params();
	int			ns[16],
				n_ns = 0;
	bool		with_one = false;

	if (argc < 2)
	{
		fprintf(stderr, "usage: %s MODEL.gguf [threads] [tokens] [reps] [N,N,...]\n", argv[0]);
		return 2;
	}
	for (const char *p = argc > 5 ? argv[5] : "1,2,4,8,16"; *p && n_ns < 16; p += strspn(p, ","))
	{
		char	   *end;
		long		v = strtol(p, &end, 10);

		if (end == p || v < 1 || v > 16)
		{
			fprintf(stderr, "request counts: a comma-separated list of 1 to 16\n");
			return 2;
		}
		ns[n_ns++] = (int) v;
		with_one |= v == 1;
		p = end;
	}
	m = lm_model_open(argv[1], err, sizeof(err));
	tok = m ? lm_tokenizer_load(m->gguf, err, sizeof(err)) : NULL;
	cp.n_ctx = PROMPT_LEN + tokens + 1;
	cp.n_seq_max = 16;
	cp.n_batch = 32;
	cp.n_threads = threads;
	ctx = tok ? lm_context_create(m, &cp, err, sizeof(err)) : NULL;
	if (!ctx)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("# %s, %d threads, prompt %d, %d tokens per request, best of %d\n", argv[1], threads, PROMPT_LEN,
		   tokens, reps);
	printf("%-22s %8s %8s %10s %10s %12s %12s\n", "run", "wall_s", "cpu_s", "gen_tok/s", "mean_batch",
		   "dec_tok/s", "dec_cpu_ms/t");
	if (with_one)
	{
		double		bw = 1e30,
					bc = 1e30;

		for (int r = 0; r < reps; r++)
		{
			double		w,
						c;

			if (!time_generate(ctx, tok, tokens, &w, &c))
				return 1;
			if (w < bw)
				bw = w, bc = c;
		}
		printf("%-22s %8.3f %8.3f %10.1f %10s\n", "lm_generate x1", bw, bc, tokens / bw, "-");
	}
	for (int k = 0; k < n_ns; k++)
	{
		double		bw = 1e30,
					bc = 1e30,
					mb = 0;
		bench_decode_time bd = {0};
		char		name[32];

		for (int r = 0; r < reps; r++)
		{
			double		w,
						c,
						b;
			bench_decode_time d;

			if (!time_sched(ctx, tok, ns[k], tokens, &w, &c, &b, &d))
				return 1;
			if (w < bw)
				bw = w, bc = c, mb = b, bd = d;
		}
		snprintf(name, sizeof(name), "scheduler x%d", ns[k]);
		printf("%-22s %8.3f %8.3f %10.1f %10.2f %12.1f %12.3f\n", name, bw, bc, ns[k] * tokens / bw, mb,
			   bd.wall_s > 0 ? bd.tokens / bd.wall_s : 0, bd.tokens ? 1e3 * bd.cpu_s / bd.tokens : 0);
	}
	lm_context_free(ctx);
	lm_tokenizer_free(tok);
	lm_model_free(m);
	return 0;
}
