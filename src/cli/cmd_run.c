/*
 * cmd_run.c — "lmgen-cli run MODEL -p PROMPT -n N ...": generate text from a
 * prompt and stream it to stdout (or the token ids with --ids); timing goes
 * to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_engine.h"
#include "context.h"
#include "generate.h"
#include "model.h"
#include "tokenizer.h"
#include "chat_tokenize.h"

#define RUN_MAX_STOP 16

/* Print usage. */
static void
run_usage(void)
{
	fprintf(stderr,
			"usage: lmgen-cli run MODEL.gguf (-p PROMPT | --prompt-ids 1,2,3) [-n N] [-t THREADS] [-c CTX]\n"
			"           [--temp T] [--top-k K] [--top-p P] [--min-p M] [--seed S]\n"
			"           [--repeat-penalty R] [--repeat-last-n N] [--freq-penalty F] [--presence-penalty P]\n"
			"           [--stop STR]... [--max-words N] [--copy-bias B --copy-source TEXT]\n"
			"           [--ignore-eos] [--special] [--chat] [--ids] [-q] [--device BACKEND.so]\n");
}

/* Print each token's text (or id) as it comes. */
typedef struct run_out
{
	bool		ids;			/* print ids instead of text */
	int			n;				/* tokens printed */
} run_out;

/* Per-token callback: stream to stdout. */
static bool
run_token(void *arg, int32_t token, const char *text, size_t len)
{
	run_out    *o = arg;

	if (o->ids)
		printf(o->n ? " %d" : "%d", token);
	else
		fwrite(text, 1, len, stdout);
	o->n++;
	fflush(stdout);
	return true;
}

/* Run the subcommand. */
int
cmd_run(int argc, char **argv)
{
	const char *model_path = NULL,
			   *prompt = NULL,
			   *prompt_ids = NULL,
			   *copy_source = NULL,
			   *device = NULL,
			   *stops[RUN_MAX_STOP],
			   *bad;
	int			n_stop = 0,
				n_threads = 1,
				n_ctx = 0,
				n_prompt = 0,
				rc = 1,
				seed = 0;
	bool		quiet = false,
				special = false,
				chat = false,
				need_tok;
	char		err[512];
	lm_gen_params gp = lm_gen_default_params();
	run_out		out = {false, 0};
	cli_engine	e = {0};
	lm_gen	   *g = NULL;
	int32_t    *ids = NULL,
			   *copy_ids = NULL;
	lm_context_params cp = lm_context_default_params();
	const cli_opt opts[] = {
		{.name = "--ids", .flag = &out.ids},
		{.name = "--ignore-eos", .flag = &gp.ignore_eog},
		{.name = "--special", .flag = &special},
		{.name = "--chat", .flag = &chat},
		{.name = "-q", .flag = &quiet},
		{.name = "-h", .help = true},
		{.name = "--help", .help = true},
		{.name = "-p", .str = &prompt},
		{.name = "--prompt-ids", .str = &prompt_ids},
		{.name = "-n", .num = &gp.max_tokens, .lo = 1, .hi = 1 << 20},
		{.name = "-t", .num = &n_threads, .lo = 1, .hi = 256},
		{.name = "-c", .num = &n_ctx, .lo = 1, .hi = 1 << 20},
		{.name = "--temp", .real = &gp.sampling.temperature},
		{.name = "--top-k", .num = &gp.sampling.top_k, .lo = 0, .hi = 1 << 30},
		{.name = "--top-p", .real = &gp.sampling.top_p},
		{.name = "--min-p", .real = &gp.sampling.min_p},
		{.name = "--seed", .num = &seed, .lo = 0, .hi = 2147483647},
		{.name = "--repeat-penalty", .real = &gp.sampling.repeat_penalty},
		{.name = "--repeat-last-n", .num = &gp.sampling.penalty_last_n, .lo = 0, .hi = 1 << 20},
		{.name = "--freq-penalty", .real = &gp.sampling.freq_penalty},
		{.name = "--presence-penalty", .real = &gp.sampling.presence_penalty},
		{.name = "--stop", .list = stops, .n_list = &n_stop, .hi = RUN_MAX_STOP},
		{.name = "--max-words", .num = &gp.max_words, .lo = 0, .hi = 1 << 20},
		{.name = "--copy-bias", .real = &gp.sampling.copy_bias},
		{.name = "--copy-source", .str = &copy_source},
		{.name = "--device", .str = &device},
	};

	switch (cli_parse_args("run", argc, argv, opts, CLI_LENGTHOF(opts), &model_path, 1, &bad))
	{
		case CLI_ARGS_OK:
			break;
		case CLI_ARGS_HELP:
			run_usage();
			return 0;
		case CLI_ARGS_BAD:
			if (bad)
				fprintf(stderr, "lmgen-cli run: unknown or incomplete option \"%s\"\n", bad);
			run_usage();
			return 2;
	}
	if (!model_path || (!prompt && !prompt_ids))
	{
		run_usage();
		return 2;
	}
	gp.sampling.seed = (uint64_t) seed;
	if ((gp.sampling.freq_penalty != 0 || gp.sampling.presence_penalty != 0 ||
		 gp.sampling.repeat_penalty != 1.0f) && gp.sampling.penalty_last_n == 0)
		gp.sampling.penalty_last_n = 64;
	gp.stop = stops;
	gp.n_stop = n_stop;

	/* the tokenizer may be missing only when ids go in and come out */
	need_tok = !(prompt_ids && out.ids);
	if (!cli_engine_open(&e, "run", model_path) || (!cli_engine_tokenizer(&e, "run", need_tok) && need_tok))
		goto done;
	if (chat && prompt && !prompt_ids)
	{
		/* the prompt as a user turn in the model's chat format */
		lm_chat_family f = lm_chat_family_of(e.model->gguf, NULL);
		lm_chat_msg msg = {"user", prompt};

		if (f == LM_CHAT_UNKNOWN)
			fprintf(stderr, "lmgen-cli run: warning: the model has no chat template lmgen knows; "
					"running the prompt as plain text\n");
		else
		{
			ids = lm_chat_tokenize(e.tok, f, &msg, 1, true, &n_prompt, err, sizeof(err));
			if (!ids)
			{
				fprintf(stderr, "lmgen-cli run: %s\n", err);
				goto done;
			}
		}
	}
	if (!ids)
		ids = prompt_ids ? cli_parse_ids("run", prompt_ids, &n_prompt)
			: cli_tokenize("run", e.tok, prompt, strlen(prompt), special, &n_prompt);
	if (!ids)
		goto done;
	if (copy_source)
	{
		/* the tokens the copy bias favours: the source text's */
		copy_ids = cli_tokenize("run", e.tok, copy_source, strlen(copy_source), false, &gp.sampling.n_copy_ids);
		if (!copy_ids)
			goto done;
		gp.sampling.copy_ids = copy_ids;
	}
	cp.n_ctx = n_ctx;
	cp.n_threads = n_threads;
	cp.n_seq_max = 1;
	if (device && !cli_engine_device(&e, "run", device, &cp))
		goto done;
	if (!cli_engine_context(&e, "run", &cp, false))
		goto done;
	g = lm_generate(e.ctx, e.tok, 0, ids, n_prompt, &gp, run_token, &out, err, sizeof(err));
	if (!g)
	{
		fprintf(stderr, "lmgen-cli run: %s\n", err);
		goto done;
	}
	printf("\n");
	fflush(stdout);
	if (!quiet)
	{
		double		tp,
					tg;
		int			n_gen;

		lm_gen_tokens(g, &n_gen);
		lm_gen_timing(g, &tp, &tg);
		fprintf(stderr, "lmgen-cli run: prompt %d tokens in %.1f ms (%.1f tokens/s); generated %d tokens in %.1f ms (%.1f tokens/s); stop: %s\n",
				n_prompt, tp * 1e3, tp > 0 ? n_prompt / tp : 0.0,
				n_gen, tg * 1e3, tg > 0 && n_gen > 1 ? (n_gen - 1) / tg : 0.0,
				lm_gen_stop_name(lm_gen_stop_reason(g)));
	}
	rc = 0;
done:
	lm_gen_free(g);
	free(ids);
	free(copy_ids);
	cli_engine_close(&e);
	return rc;
}
