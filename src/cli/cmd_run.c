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
			"           [--stop STR]... [--ignore-eos] [--special] [--chat] [--ids] [-q]\n");
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
			   *stops[RUN_MAX_STOP];
	int			n_stop = 0,
				n_threads = 1,
				n_ctx = 0,
				n_prompt = 0,
				rc = 1,
				seed = 0;
	bool		quiet = false,
				special = false,
				chat = false;
	char		err[512];
	lm_gen_params gp = lm_gen_default_params();
	run_out		out = {false, 0};
	lm_model   *m = NULL;
	lm_tokenizer *tok = NULL;
	lm_context *ctx = NULL;
	lm_gen	   *g = NULL;
	int32_t    *ids = NULL;
	lm_context_params cp = lm_context_default_params();

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i],
				   *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool		ok = true;

#define OPT(s) (strcmp(a, (s)) == 0 && (v != NULL || (ok = false)) && ++i)
		if (strcmp(a, "--ids") == 0)
			out.ids = true;
		else if (strcmp(a, "--ignore-eos") == 0)
			gp.ignore_eog = true;
		else if (strcmp(a, "--special") == 0)
			special = true;
		else if (strcmp(a, "--chat") == 0)
			chat = true;
		else if (strcmp(a, "-q") == 0)
			quiet = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			run_usage();
			return 0;
		}
		else if (OPT("-p"))
			prompt = v;
		else if (OPT("--prompt-ids"))
			prompt_ids = v;
		else if (OPT("-n"))
			ok = cli_parse_int("run", "-n", v, 1, 1 << 20, &gp.max_tokens);
		else if (OPT("-t"))
			ok = cli_parse_int("run", "-t", v, 1, 256, &n_threads);
		else if (OPT("-c"))
			ok = cli_parse_int("run", "-c", v, 1, 1 << 20, &n_ctx);
		else if (OPT("--temp"))
			ok = cli_parse_float("run", a, v, &gp.sampling.temperature);
		else if (OPT("--top-k"))
			ok = cli_parse_int("run", a, v, 0, 1 << 30, &gp.sampling.top_k);
		else if (OPT("--top-p"))
			ok = cli_parse_float("run", a, v, &gp.sampling.top_p);
		else if (OPT("--min-p"))
			ok = cli_parse_float("run", a, v, &gp.sampling.min_p);
		else if (OPT("--seed"))
			ok = cli_parse_int("run", a, v, 0, 2147483647, &seed);
		else if (OPT("--repeat-penalty"))
			ok = cli_parse_float("run", a, v, &gp.sampling.repeat_penalty);
		else if (OPT("--repeat-last-n"))
			ok = cli_parse_int("run", a, v, 0, 1 << 20, &gp.sampling.penalty_last_n);
		else if (OPT("--freq-penalty"))
			ok = cli_parse_float("run", a, v, &gp.sampling.freq_penalty);
		else if (OPT("--presence-penalty"))
			ok = cli_parse_float("run", a, v, &gp.sampling.presence_penalty);
		else if (OPT("--stop"))
		{
			if (n_stop < RUN_MAX_STOP)
				stops[n_stop++] = v;
		}
		else if (a[0] != '-' && model_path == NULL)
			model_path = a;
		else
		{
			fprintf(stderr, "lmgen-cli run: unknown or incomplete option \"%s\"\n", a);
			ok = false;
		}
#undef OPT
		if (!ok)
		{
			run_usage();
			return 2;
		}
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

	m = lm_model_open(model_path, err, sizeof(err));
	if (!m)
	{
		fprintf(stderr, "lmgen-cli run: %s\n", err);
		return 1;
	}
	tok = lm_tokenizer_load(m->gguf, err, sizeof(err));
	if (!tok && !(prompt_ids && out.ids))
	{
		fprintf(stderr, "lmgen-cli run: %s\n", err);
		goto done;
	}
	if (chat && prompt && !prompt_ids)
	{
		/* the prompt as a user turn in the model's chat format */
		lm_chat_family f = lm_chat_family_of(m->gguf, NULL);
		lm_chat_msg msg = {"user", prompt};

		if (f == LM_CHAT_UNKNOWN)
			fprintf(stderr, "lmgen-cli run: warning: the model has no chat template lmgen knows; "
					"running the prompt as plain text\n");
		else
		{
			ids = lm_chat_tokenize(tok, f, &msg, 1, true, &n_prompt, err, sizeof(err));
			if (!ids)
			{
				fprintf(stderr, "lmgen-cli run: %s\n", err);
				goto done;
			}
		}
	}
	if (!ids)
		ids = prompt_ids ? cli_parse_ids("run", prompt_ids, &n_prompt)
			: cli_tokenize("run", tok, prompt, strlen(prompt), special, &n_prompt);
	if (!ids)
		goto done;
	cp.n_ctx = n_ctx;
	cp.n_threads = n_threads;
	cp.n_seq_max = 1;
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	if (!ctx)
	{
		fprintf(stderr, "lmgen-cli run: %s\n", err);
		goto done;
	}
	g = lm_generate(ctx, tok, 0, ids, n_prompt, &gp, run_token, &out, err, sizeof(err));
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
	lm_context_free(ctx);
	free(ids);
	lm_tokenizer_free(tok);
	lm_model_free(m);
	return rc;
}
