/*
 * bench_prefix.c — what shared prompt prefixes save the batching scheduler,
 * in the engine alone (no server).
 *
 * N summarize-like chat prompts run as one batch: the model's chat template
 * around the instruction summarize() gives a sentence summary (src/summary.c,
 * 20 words) and a different body each, the first N descriptions of a CSV
 * (../shared/data/summaries_public.csv: package,section,synopsis,description)
 * of at least `chars` characters, cut at the last space before that (about
 * 100 tokens at 400).
 * Each batch runs with lm_sched_params.share_prefixes off and on (a new
 * scheduler each time, all N submitted at once, greedy, max_tokens each),
 * and the program prints wall and CPU seconds, the prompt tokens evaluated
 * and reused, and whether the generated tokens are identical both ways.
 * Each line shows the least wall and the least CPU seconds of R repetitions,
 * off and on alternating (the machine may be shared).
 * Not built by make.  Build and run from the repository root, after make:
 *
 *   gcc -std=gnu11 -O2 -Isrc/engine -Itest/bench -o /tmp/bench_prefix test/bench/bench_prefix.c \
 *       src/engine/?*.o -lpthread -lm
 *   /tmp/bench_prefix MODEL.gguf CSV [threads] [n] [max_tokens] [reps] [chars]
 *
 * threads defaults to 2, n to 32, max_tokens to 32, reps to 3, chars to 400.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "bench_sched_run.h"
#include "chat_tokenize.h"
#include "context.h"
#include "generate.h"
#include "model.h"
#include "scheduler.h"
#include "tokenizer.h"

#define MAX_N 64

/* The instruction of summarize()'s sentence style at its default of 20 words. */
static const char instruction[] =
	"Summarize the following text in one sentence of at most 20 words. Reply with the summary only.\n\n";

/* One prompt and what it generated in each mode. */
typedef struct bench_prompt
{
	int32_t    *ids;			/* token ids of the chat prompt */
	int			n;				/* count */
	int32_t    *out[2];			/* generated ids with sharing off [0] and on [1] */
	int			n_out[2];		/* counts */
} bench_prompt;

/* The 4th field of the next CSV record from *p (quotes and "" escapes), malloc'd; NULL at the end. */
static char *
csv_description(const char **p)
{
	const char *s = *p;
	char	   *field = NULL;
	int			col = 0;

	if (!*s)
		return NULL;
	while (*s)
	{
		size_t		cap = strlen(s) + 1,
					len = 0;
		char	   *f = malloc(cap);

		if (*s == '"')
		{
			for (s++; *s && !(*s == '"' && s[1] != '"'); s++)
			{
				f[len++] = *s;
				if (*s == '"')
					s++;
			}
			if (*s == '"')
				s++;
		}
		else
			while (*s && *s != ',' && *s != '\n')
				f[len++] = *s++;
		f[len] = 0;
		if (col == 3)
			field = f;
		else
			free(f);
		col++;
		if (*s == ',')
			s++;
		else
		{
			if (*s == '\n')
				s++;
			break;
		}
	}
	*p = s;
	return field ? field : strdup("");
}

/* The file's contents, NUL-terminated; NULL on failure. */
static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	long		n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(buf = malloc(n + 1)) && fread(buf, 1, n, f) == (size_t) n)
		buf[n] = 0;
	else
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Build n prompts from the CSV's descriptions; false with a message. */
static bool
make_prompts(const lm_model *m, const lm_tokenizer *tok, const char *csv, int n, int chars, bench_prompt *bp)
{
	char		err[256];
	char	   *data = read_file(csv);
	const char *p = data;
	lm_chat_family f = lm_chat_family_of(m->gguf, NULL);
	char	   *head;

	if (!data)
	{
		fprintf(stderr, "cannot read %s\n", csv);
		return false;
	}
	head = csv_description(&p);	/* the header */
	free(head);
	for (int i = 0; i < n; i++)
	{
		char	   *body = csv_description(&p);
		char	   *user;
		size_t		len;
		lm_chat_msg msg;

		if (!body)
		{
			fprintf(stderr, "%s has fewer than %d rows\n", csv, n);
			free(data);
			return false;
		}
		len = strlen(body);
		if (len < (size_t) chars)
		{
			free(body);			/* too short: the next row */
			i--;
			continue;
		}
		len = chars;
		while (len > 0 && body[len] != ' ')
			len--;
		user = malloc(sizeof(instruction) + len);
		memcpy(user, instruction, sizeof(instruction) - 1);
		memcpy(user + sizeof(instruction) - 1, body, len);
		user[sizeof(instruction) - 1 + len] = 0;
		msg = (lm_chat_msg) {"user", user};
		bp[i].ids = lm_chat_tokenize(tok, f, &msg, 1, true, &bp[i].n, err, sizeof(err));
		free(user);
		free(body);
		if (!bp[i].ids)
		{
			fprintf(stderr, "chat prompt %d: %s\n", i, err);
			free(data);
			return false;
		}
	}
	free(data);
	return true;
}

/* Where keep_output puts the generated ids: the prompts and which run (sharing off or on). */
typedef struct kept_output
{
	const int64_t *ids;			/* request id of each prompt */
	bench_prompt *bp;
	int			n;
	int			share;
} kept_output;

/* Keep a finished request's generated ids with its prompt (bench_sched_drain's callback). */
static void
keep_output(const lm_sched_result *res, void *arg)
{
	kept_output *ko = arg;

	for (int i = 0; i < ko->n; i++)
		if (ko->ids[i] == res->id)
		{
			bench_prompt *p = &ko->bp[i];

			free(p->out[ko->share]);
			p->out[ko->share] = malloc(sizeof(int32_t) * (res->n_tokens + 1));
			memcpy(p->out[ko->share], res->tokens, sizeof(int32_t) * res->n_tokens);
			p->n_out[ko->share] = res->n_tokens;
		}
}

/* Run the n prompts as one batch with sharing off or on; seconds and counters; false with a message. */
static bool
run_batch(lm_context *ctx, const lm_tokenizer *tok, bench_prompt *bp, int n, int max_tokens, bool share,
		  double *wall, double *cpu, lm_sched_stats *st)
{
	char		err[256];
	lm_sched_params sp = lm_sched_default_params();
	lm_gen_params gp = lm_gen_default_params();
	lm_sched   *s;
	int64_t		ids[MAX_N];
	kept_output ko = {ids, bp, n, share};
	double		w0,
				c0;

	sp.max_seqs = n;
	sp.share_prefixes = share;
	s = lm_sched_create(ctx, tok, &sp, err, sizeof(err));
	if (!s)
	{
		fprintf(stderr, "lm_sched_create: %s\n", err);
		return false;
	}
	gp.max_tokens = max_tokens;
	w0 = bench_wall_s();
	c0 = bench_cpu_s();
	for (int i = 0; i < n; i++)
		if ((ids[i] = lm_sched_submit_generate(s, bp[i].ids, bp[i].n, &gp, err, sizeof(err))) < 0)
		{
			fprintf(stderr, "submit: %s\n", err);
			lm_sched_free(s);
			return false;
		}
	if (!bench_sched_drain(s, n, keep_output, &ko))
	{
		lm_sched_free(s);
		return false;
	}
	*wall = bench_wall_s() - w0;
	*cpu = bench_cpu_s() - c0;
	lm_sched_get_stats(s, st);
	lm_sched_free(s);
	return true;
}

int
main(int argc, char **argv)
{
	char		err[256];
	int			threads = argc > 3 ? atoi(argv[3]) : 2,
				n = argc > 4 ? atoi(argv[4]) : 32,
				max_tokens = argc > 5 ? atoi(argv[5]) : 32,
				reps = argc > 6 ? atoi(argv[6]) : 3,
				chars = argc > 7 ? atoi(argv[7]) : 400,
				total = 0,
				common = -1,
				same = 0;
	lm_model   *m;
	lm_tokenizer *tok;
	lm_context *ctx;
	lm_context_params cp = lm_context_default_params();
	bench_prompt bp[MAX_N] = {0};

	if (argc < 3 || n < 1 || n > MAX_N)
	{
		fprintf(stderr, "usage: %s MODEL.gguf CSV [threads] [n <= %d] [max_tokens] [reps] [chars]\n", argv[0],
				MAX_N);
		return 2;
	}
	m = lm_model_open(argv[1], err, sizeof(err));
	tok = m ? lm_tokenizer_load(m->gguf, err, sizeof(err)) : NULL;
	if (!tok || !make_prompts(m, tok, argv[2], n, chars, bp))
	{
		fprintf(stderr, "%s\n", tok ? "" : err);
		return 1;
	}
	for (int i = 0; i < n; i++)
	{
		int			c = 0;

		total += bp[i].n;
		while (i > 0 && c < bp[i].n && c < bp[0].n && bp[i].ids[c] == bp[0].ids[c])
			c++;
		if (i > 0 && (common < 0 || c < common))
			common = c;
	}
	cp.n_ctx = 1024;
	cp.n_seq_max = n;
	cp.n_batch = 256;
	cp.n_threads = threads;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	if (!ctx)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("# %s, %d threads, %d prompts of %.1f tokens on average (%d in all, common prefix %d), "
		   "max_tokens %d, best of %d\n", argv[1], threads, n, (double) total / n, total, common, max_tokens,
		   reps);
	printf("%-8s %8s %8s %10s %10s %10s %12s\n", "sharing", "wall_s", "cpu_s", "prompt_ev", "reused",
		   "generated", "prompt_tok/s");
	{
		double		bw[2] = {1e30, 1e30},
					bc[2] = {1e30, 1e30};
		lm_sched_stats best[2] = {{0}};

		/* off and on alternate, so a change of load on a shared machine hits both */
		for (int r = 0; r < reps; r++)
			for (int share = 0; share < 2; share++)
			{
				double		w,
							c;
				lm_sched_stats st;

				if (!run_batch(ctx, tok, bp, n, max_tokens, share, &w, &c, &st))
					return 1;
				if (w < bw[share])
					bw[share] = w, best[share] = st;
				if (c < bc[share])
					bc[share] = c;
			}
		for (int share = 0; share < 2; share++)
			printf("%-8s %8.3f %8.3f %10lld %10lld %10lld %12.1f\n", share ? "on" : "off", bw[share], bc[share],
				   (long long) best[share].prompt_tokens, (long long) best[share].prompt_tokens_reused,
				   (long long) best[share].generated_tokens, total / bw[share]);
	}
	for (int i = 0; i < n; i++)
		same += bp[i].n_out[0] == bp[i].n_out[1] &&
			memcmp(bp[i].out[0], bp[i].out[1], sizeof(int32_t) * bp[i].n_out[0]) == 0;
	printf("# generated tokens identical with sharing off and on: %d of %d\n", same, n);
	for (int i = 0; i < n; i++)
	{
		free(bp[i].ids);
		free(bp[i].out[0]);
		free(bp[i].out[1]);
	}
	lm_context_free(ctx);
	lm_tokenizer_free(tok);
	lm_model_free(m);
	return same == n ? 0 : 1;
}
