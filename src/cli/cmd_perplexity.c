/*
 * cmd_perplexity.c — "lmgen-cli perplexity MODEL FILE [-c CTX]": perplexity
 * of a text file, computed like llama.cpp's perplexity tool: the tokenized
 * text is cut into chunks of CTX tokens, each chunk starts with BOS and is
 * evaluated in one batch, and the second half of each chunk is scored (so
 * every scored token sees at least CTX/2 tokens of context).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "cli_engine.h"
#include "context.h"
#include "model.h"
#include "tokenizer.h"

/* Read a whole file; NULL on failure. */
static char *
ppl_read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	long		n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(buf = malloc(n + 1)) != NULL)
	{
		if (fread(buf, 1, n, f) != (size_t) n)
		{
			free(buf);
			buf = NULL;
		}
		else
		{
			buf[n] = 0;
			*len = n;
		}
	}
	fclose(f);
	return buf;
}

/* -log softmax(logits)[target], in double. */
static double
nll(const float *logits, int n, int target)
{
	double		max = logits[0],
				sum = 0;

	for (int i = 1; i < n; i++)
		if (logits[i] > max)
			max = logits[i];
	for (int i = 0; i < n; i++)
		sum += exp((double) logits[i] - max);
	return log(sum) - ((double) logits[target] - max);
}

/* Run the subcommand. */
int
cmd_perplexity(int argc, char **argv)
{
	const char *paths[2] = {NULL, NULL},	/* model, text */
			   *bad;
	int			n_ctx = 0,
				n_threads = 1,
				n_tok = 0,
				rc = 1,
				n_chunks;
	char		err[512],
			   *text = NULL;
	size_t		text_len = 0;
	cli_engine	e = {0};
	int32_t    *ids = NULL;
	lm_context_params cp = lm_context_default_params();
	double		total = 0;
	long		scored = 0;
	const cli_opt opts[] = {
		{.name = "-c", .num = &n_ctx, .lo = 2, .hi = 1 << 20},
		{.name = "-t", .num = &n_threads, .lo = 1, .hi = 256},
	};

	if (cli_parse_args("perplexity", argc, argv, opts, CLI_LENGTHOF(opts), paths, 2, &bad) != CLI_ARGS_OK || !paths[1])
	{
		fprintf(stderr, "usage: lmgen-cli perplexity MODEL.gguf FILE [-c CTX] [-t THREADS]\n");
		return 2;
	}
	text = ppl_read_file(paths[1], &text_len);
	if (!text)
	{
		fprintf(stderr, "lmgen-cli perplexity: cannot read \"%s\"\n", paths[1]);
		return 1;
	}
	if (!cli_engine_open(&e, "perplexity", paths[0]) || !cli_engine_tokenizer(&e, "perplexity", true))
		goto done;
	ids = cli_tokenize("perplexity", e.tok, text, text_len, false, &n_tok);
	if (!ids)
		goto done;
	if (n_ctx == 0)
		n_ctx = e.model->cfg.n_ctx_train;
	n_chunks = n_tok / n_ctx;
	if (n_chunks < 1)
	{
		fprintf(stderr, "lmgen-cli perplexity: the text has %d tokens, fewer than one chunk of %d\n", n_tok, n_ctx);
		goto done;
	}
	cp.n_ctx = n_ctx;
	cp.n_batch = n_ctx;
	cp.n_threads = n_threads;
	if (!cli_engine_context(&e, "perplexity", &cp, true))
		goto done;
	printf("# %d tokens, %d chunks of %d\n", n_tok, n_chunks, n_ctx);
	for (int c = 0; c < n_chunks; c++)
	{
		const int32_t *chunk = ids + (size_t) c * n_ctx;
		int			first = n_ctx / 2;

		lm_kv_clear(lm_context_kv(e.ctx));
		lm_batch_clear(e.batch);
		for (int i = 0; i < n_ctx; i++)
		{
			int32_t		t = i == 0 && lm_tokenizer_bos(e.tok) >= 0 ? lm_tokenizer_bos(e.tok) : chunk[i];

			lm_batch_add(e.batch, t, i, 0, i >= first && i < n_ctx - 1);
		}
		if (lm_model_forward(e.ctx, e.batch, err, sizeof(err)) != 0)
		{
			fprintf(stderr, "lmgen-cli perplexity: %s\n", err);
			goto done;
		}
		for (int i = first; i < n_ctx - 1; i++)
		{
			total += nll(lm_context_logits(e.ctx, i), e.model->cfg.n_vocab, chunk[i + 1]);
			scored++;
		}
		printf("[%d]%.4f%s", c + 1, exp(total / scored), c + 1 < n_chunks ? "," : "\n");
		fflush(stdout);
	}
	printf("PPL = %.4f (%ld tokens scored)\n", exp(total / scored), scored);
	rc = 0;
done:
	free(ids);
	free(text);
	cli_engine_close(&e);
	return rc;
}
