/*
 * cmd_embed.c — "lmgen-cli embed MODEL FILE [-t T] [-b N] [--print]":
 * sentence embeddings of every line of FILE with an encoder model (bert:
 * all-MiniLM-L6-v2), N lines per lm_bert_embed call (packed whole into
 * forward passes), timed: prints lines, tokens, seconds, rows/s and
 * tokens/s, and the CPU seconds of all threads (rows per CPU second is the
 * figure that a busy machine distorts least); --print also prints each vector (one line of floats per text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_engine.h"
#include "model_bert.h"

#define EMBED_MAX_LINES 1000000

/* Seconds of a clock (CLOCK_MONOTONIC: wall; CLOCK_PROCESS_CPUTIME_ID: CPU of all threads). */
static double
embed_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Embed the lines of a file. */
int
cmd_embed(int argc, char **argv)
{
	cli_engine	e = {0};
	lm_context_params p = lm_context_default_params();
	bool		print = false;
	int			per_call = 64;
	const char *pos[2] = {NULL, NULL},
			   *bad = NULL;
	cli_opt		opts[] = {
		{"-t", .num = &p.n_threads, .lo = 1, .hi = 256},
		{"-b", .num = &per_call, .lo = 1, .hi = 100000},
		{"--print", .flag = &print},
		{"-h", .help = true}, {"--help", .help = true},
	};
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	int32_t   **ids = NULL;
	int		   *n_ids = NULL;
	int			n = 0,
				rc = 1;
	long		tokens = 0;
	float	   *out = NULL;
	double		t0,
				c0,
				s,
				cpu;
	char		err[512];

	if (cli_parse_args("embed", argc, argv, opts, CLI_LENGTHOF(opts), pos, 2, &bad) != CLI_ARGS_OK ||
		pos[1] == NULL)
	{
		fprintf(stderr, "usage: lmgen-cli embed MODEL.gguf FILE [-t THREADS] [-b LINES_PER_CALL] [--print]\n");
		return 2;
	}
	if (!cli_engine_open(&e, "embed", pos[0]) || !cli_engine_tokenizer(&e, "embed", true))
		goto done;
	if (!e.model->cfg.encoder)
	{
		fprintf(stderr, "lmgen-cli embed: %s is not an encoder model (architecture %s)\n", pos[0], e.model->cfg.arch);
		goto done;
	}
	if (!cli_engine_context(&e, "embed", &p, false))
		goto done;
	if ((f = fopen(pos[1], "r")) == NULL)
	{
		fprintf(stderr, "lmgen-cli embed: cannot open %s\n", pos[1]);
		goto done;
	}
	while ((len = getline(&line, &cap, f)) > 0 && n < EMBED_MAX_LINES)
	{
		if (line[len - 1] == '\n')
			len--;
		ids = realloc(ids, sizeof(*ids) * (n + 1));
		n_ids = realloc(n_ids, sizeof(*n_ids) * (n + 1));
		if (!ids || !n_ids || !(ids[n] = cli_tokenize("embed", e.tok, line, (size_t) len, false, &n_ids[n])))
		{
			fclose(f);
			goto done;
		}
		tokens += n_ids[n] < e.model->cfg.max_seq_len ? n_ids[n] : e.model->cfg.max_seq_len;
		n++;
	}
	fclose(f);
	out = malloc(sizeof(float) * e.model->cfg.n_embd * (size_t) (n > 0 ? n : 1));
	if (!out)
		goto done;
	t0 = embed_clock(CLOCK_MONOTONIC);
	c0 = embed_clock(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < n; i += per_call)
		if (lm_bert_embed(e.ctx, (const int32_t *const *) ids + i, n_ids + i, n - i < per_call ? n - i : per_call,
						  out + (size_t) i * e.model->cfg.n_embd, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "lmgen-cli embed: %s\n", err);
			goto done;
		}
	s = embed_clock(CLOCK_MONOTONIC) - t0;
	cpu = embed_clock(CLOCK_PROCESS_CPUTIME_ID) - c0;
	if (print)
		for (int i = 0; i < n; i++)
			for (int d = 0; d < e.model->cfg.n_embd; d++)
				printf("%.7g%c", out[(size_t) i * e.model->cfg.n_embd + d], d + 1 < e.model->cfg.n_embd ? ' ' : '\n');
	fprintf(stderr, "%d lines, %ld tokens, %d threads, %d lines per call: %.2f s, %.1f rows/s, %.0f tokens/s "
			"(%.2f CPU s: %.1f rows per CPU second)\n",
			n, tokens, lm_context_n_threads(e.ctx), per_call, s, n / s, tokens / s, cpu, n / cpu);
	rc = 0;
done:
	for (int i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(n_ids);
	free(out);
	free(line);
	cli_engine_close(&e);
	return rc;
}
