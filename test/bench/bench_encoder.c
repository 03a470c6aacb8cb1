/*
 * bench_encoder.c — sentence-embedding throughput of the engine's bert
 * encoder (lm_bert_embed), without a server.
 *
 *   bench_encoder MODEL.gguf CSV [rows] [threads] [batches] [reps] [products]
 *
 * Reads the `description` column of CSV (the first `rows`, default 1000;
 * ../shared/data/debian_packages_test.csv is the usual file), tokenizes
 * every text once (timed apart: the SQL path tokenizes in the backend
 * before the engine runs), then for each thread count (comma list, default
 * 1,2) and each batch size (comma list, default 1,8,32) embeds all rows in
 * calls of `batch` texts, as src/embed_encoder.c hands them to the engine,
 * and prints rows/s (the best of `reps` passes, default 3), the CPU seconds
 * per wall second, rows per CPU second (steadier on a busy machine), the tokens per row (after the cut to max_seq_len) and
 * the GFLOP/s of the weight products and attention.  The load average is
 * printed before and after: the machine is shared.  products (comma list,
 * default int16,f32) runs each row with the layer products in 13-bit
 * integers (the default, gemm_i16.h) and in F32 (lm_bert_set_f32).
 *
 * Built by `make bench-encoder`, which also runs it on the installed
 * all-MiniLM-L6-v2 file (BENCH_ENCODER_ARGS passes rows, threads, batches,
 * reps).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "context.h"
#include "model.h"
#include "model_bert.h"
#include "tokenizer.h"

#define MAX_TOKENS 8192

/* A growing byte buffer. */
typedef struct buf
{
	char	   *p;				/* bytes */
	size_t		n;				/* used */
	size_t		cap;			/* allocated */
} buf;

/* Append byte c to b. */
static void
buf_put(buf *b, char c)
{
	if (b->n + 1 >= b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 256;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
		{
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
	}
	b->p[b->n++] = c;
}

/*
 * Read one CSV field (RFC 4180: quotes, doubled quotes, newlines inside
 * quotes) from f into b; returns the character that ended it (',', '\n'
 * or EOF).
 */
static int
csv_field(FILE *f, buf *b)
{
	int			c = fgetc(f);

	b->n = 0;
	if (c == '"')
	{
		for (;;)
		{
			c = fgetc(f);
			if (c == EOF)
				break;
			if (c == '"')
			{
				c = fgetc(f);
				if (c != '"')
					break;
			}
			buf_put(b, (char) c);
		}
		while (c != EOF && c != ',' && c != '\n')
			c = fgetc(f);
	}
	else
		while (c != EOF && c != ',' && c != '\n')
		{
			if (c != '\r')
				buf_put(b, (char) c);
			c = fgetc(f);
		}
	buf_put(b, '\0');
	b->n--;
	return c;
}

/* The first max values of column `name` of CSV file path; the count, -1 on error. */
static int
read_column(const char *path, const char *name, int max, char ***out)
{
	FILE	   *f = fopen(path, "rb");
	buf			b = {0};
	int			col = -1,
				i = 0,
				n = 0,
				c;

	if (!f)
		return -1;
	/* header */
	do
	{
		c = csv_field(f, &b);
		if (strcmp(b.p, name) == 0)
			col = i;
		i++;
	} while (c == ',');
	*out = calloc(max, sizeof(char *));
	while (col >= 0 && n < max && c != EOF)
	{
		i = 0;
		do
		{
			c = csv_field(f, &b);
			if (i++ == col)
				(*out)[n] = strdup(b.p);
		} while (c == ',');
		if (i > col)
			n++;
	}
	free(b.p);
	fclose(f);
	return col < 0 ? -1 : n;
}

/* Parse a comma list of positive integers into v (at most max); the count. */
static int
int_list(const char *s, int *v, int max)
{
	int			n = 0;

	while (*s && n < max)
	{
		char	   *end;
		long		x = strtol(s, &end, 10);

		if (end == s || x < 1)
			break;
		v[n++] = (int) x;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

/* Print the 1-minute load average. */
static void
print_load(const char *when)
{
	FILE	   *f = fopen("/proc/loadavg", "r");
	char		line[128] = "?";

	if (f)
	{
		if (!fgets(line, sizeof(line), f))
			strcpy(line, "?\n");
		fclose(f);
	}
	printf("# load average %s: %s", when, line);
}

/* Run the benchmark. */
int
main(int argc, char **argv)
{
	char		err[512];
	int			rows = argc > 3 ? atoi(argv[3]) : 1000,
				reps = argc > 6 ? atoi(argv[6]) : 3,
				threads[8],
				batches[8],
				n_threads = int_list(argc > 4 ? argv[4] : "1,2", threads, 8),
				n_batches = int_list(argc > 5 ? argv[5] : "1,8,32", batches, 8);
	const char *products = argc > 7 ? argv[7] : "int16,f32";
	bool		run_f32[2];
	int			n_products = 0;
	char	  **texts;
	lm_model   *m;
	lm_tokenizer *tok;
	int32_t   **ids;
	int		   *n_ids;
	float	   *out;
	long		tokens = 0;
	double		t0,
				tok_s,
				flop = 0.0;

	for (const char *p = products; *p && n_products < 2;)
	{
		size_t		len = strcspn(p, ",");

		if (len == 5 && strncmp(p, "int16", 5) == 0)
			run_f32[n_products++] = false;
		else if (len == 3 && strncmp(p, "f32", 3) == 0)
			run_f32[n_products++] = true;
		else
			n_products = -100;
		p += len + (p[len] == ',');
	}
	if (argc < 3 || rows < 1 || n_products < 1 || reps < 1 || n_threads < 1 || n_batches < 1)
	{
		fprintf(stderr, "usage: %s MODEL.gguf CSV [rows] [threads,...] [batch,...] [reps] [int16,f32]\n", argv[0]);
		return 2;
	}
	rows = read_column(argv[2], "description", rows, &texts);
	if (rows < 1)
	{
		fprintf(stderr, "%s: no \"description\" column or no rows\n", argv[2]);
		return 1;
	}
	m = lm_model_open(argv[1], err, sizeof(err));
	if (!m || !m->cfg.encoder)
	{
		fprintf(stderr, "%s: %s\n", argv[1], m ? "not an encoder model" : err);
		return 1;
	}
	tok = lm_tokenizer_load(m->gguf, err, sizeof(err));
	if (!tok)
	{
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 1;
	}

	/* tokenize once, timed apart */
	ids = calloc(rows, sizeof(int32_t *));
	n_ids = calloc(rows, sizeof(int));
	t0 = bench_wall_s();
	for (int i = 0; i < rows; i++)
	{
		ids[i] = malloc(sizeof(int32_t) * MAX_TOKENS);
		n_ids[i] = lm_tokenize(tok, texts[i], strlen(texts[i]), true, false, ids[i], MAX_TOKENS, err, sizeof(err));
		if (n_ids[i] < 1)
		{
			fprintf(stderr, "row %d: %s\n", i, n_ids[i] < 0 ? err : "no tokens");
			return 1;
		}
	}
	tok_s = bench_wall_s() - t0;

	/* work per pass: weight products 2 x params per token, attention 4 x len^2 x n_embd per layer */
	{
		const lm_model_config *c = &m->cfg;
		double		per_tok = 2.0 * c->n_layer * (4.0 * c->n_embd * c->n_embd + 2.0 * c->n_embd * c->n_ff);

		for (int i = 0; i < rows; i++)
		{
			double		len = n_ids[i] < c->max_seq_len ? n_ids[i] : c->max_seq_len;

			tokens += (long) len;
			flop += per_tok * len + 4.0 * c->n_layer * len * len * c->n_embd;
		}
	}
	out = malloc(sizeof(float) * (size_t) rows * m->cfg.n_embd);
	printf("# model %s, %d rows of %s\n", argv[1], rows, argv[2]);
	printf("# tokenize: %.3f s (%.0f rows/s); %.1f tokens/row after the cut to %d; %.2f GFLOP/row\n",
		   tok_s, rows / tok_s, (double) tokens / rows, m->cfg.max_seq_len, flop / rows * 1e-9);
	print_load("before");
	printf("%7s %8s %5s %10s %8s %12s %10s %9s\n", "threads", "products", "batch", "rows/s", "cpu/wall", "rows/cpu-s", "tokens/s", "GFLOP/s");
	for (int ti = 0; ti < n_threads; ti++)
	{
		lm_context_params p = lm_context_default_params();
		lm_context *ctx;

		p.n_ctx = m->cfg.n_ctx_train;
		p.n_threads = threads[ti];
		ctx = lm_context_create(m, &p, err, sizeof(err));
		if (!ctx)
		{
			fprintf(stderr, "context: %s\n", err);
			return 1;
		}
		for (int pi = 0; pi < n_products; pi++)
		for (int bi = 0; bi < n_batches; bi++)
		{
			double		best = 1e30,
						cpu_best = 0.0;

			lm_bert_set_f32(ctx, run_f32[pi]);
			for (int r = 0; r < reps; r++)
			{
				double		w0 = bench_wall_s(),
							c0 = bench_cpu_s(),
							w;

				for (int i = 0; i < rows; i += batches[bi])
				{
					int			n = rows - i < batches[bi] ? rows - i : batches[bi];

					if (lm_bert_embed(ctx, (const int32_t *const *) ids + i, n_ids + i, n,
									  out + (size_t) i * m->cfg.n_embd, err, sizeof(err)) != 0)
					{
						fprintf(stderr, "embed: %s\n", err);
						return 1;
					}
				}
				w = bench_wall_s() - w0;
				if (w < best)
				{
					best = w;
					cpu_best = (bench_cpu_s() - c0) / w;
				}
			}
			printf("%7d %8s %5d %10.1f %8.2f %12.1f %10.0f %9.1f\n", threads[ti], run_f32[pi] ? "f32" : "int16",
				   batches[bi], rows / best, cpu_best,
				   rows / (best * cpu_best), tokens / best, flop / best * 1e-9);
			fflush(stdout);
		}
		lm_context_free(ctx);
	}
	print_load("after");
	for (int i = 0; i < rows; i++)
	{
		free(ids[i]);
		free(texts[i]);
	}
	free(ids);
	free(n_ids);
	free(texts);
	free(out);
	lm_tokenizer_free(tok);
	lm_model_free(m);
	return 0;
}
