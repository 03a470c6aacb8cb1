/*
 * cli_engine.c — option parsing, model/context opening, number parsing and
 * tokenizing for the model-running subcommands of lmgen-cli.
 */
#include "cli_engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse an int option. */
bool
cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = s ? strtol(s, &end, 10) : 0;
	if (!s || errno || end == s || *end || v < lo || v > hi)
	{
		fprintf(stderr, "lmgen-cli %s: %s needs an integer in [%ld, %ld], got \"%s\"\n",
				cmd, opt, lo, hi, s ? s : "");
		return false;
	}
	*out = (int) v;
	return true;
}

/* Parse a float option. */
bool
cli_parse_float(const char *cmd, const char *opt, const char *s, float *out)
{
	char	   *end;
	double		v;

	errno = 0;
	v = s ? strtod(s, &end) : 0;
	if (!s || errno || end == s || *end || !isfinite(v))
	{
		fprintf(stderr, "lmgen-cli %s: %s needs a number, got \"%s\"\n", cmd, opt, s ? s : "");
		return false;
	}
	*out = (float) v;
	return true;
}

/* Tokenize text into a malloc'd array. */
int32_t *
cli_tokenize(const char *cmd, const lm_tokenizer *t, const char *text, size_t len,
			 bool parse_special, int *n)
{
	char		err[256];
	int			need = lm_tokenize(t, text, len, true, parse_special, NULL, 0, err, sizeof(err));
	int32_t    *ids;

	if (need < 0)
	{
		fprintf(stderr, "lmgen-cli %s: %s\n", cmd, err);
		return NULL;
	}
	ids = malloc(sizeof(int32_t) * (need > 0 ? need : 1));
	if (!ids || (need > 0 && lm_tokenize(t, text, len, true, parse_special, ids, need, err, sizeof(err)) != need))
	{
		fprintf(stderr, "lmgen-cli %s: %s\n", cmd, ids ? err : "out of memory");
		free(ids);
		return NULL;
	}
	*n = need;
	return ids;
}

/* Parse a comma-separated id list. */
int32_t *
cli_parse_ids(const char *cmd, const char *s, int *n)
{
	int			cap = 1;
	int32_t    *ids;
	const char *p = s;

	for (const char *q = s; *q; q++)
		cap += *q == ',';
	ids = malloc(sizeof(int32_t) * cap);
	if (!ids)
		return NULL;
	*n = 0;
	while (*p)
	{
		char	   *end;
		long		v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ','))
		{
			fprintf(stderr, "lmgen-cli %s: bad token id list \"%s\"\n", cmd, s);
			free(ids);
			return NULL;
		}
		ids[(*n)++] = (int32_t) v;
		p = *end ? end + 1 : end;
	}
	if (*n == 0)
	{
		fprintf(stderr, "lmgen-cli %s: empty token id list\n", cmd);
		free(ids);
		return NULL;
	}
	return ids;
}

/* Give one option its value (v, NULL when the option takes none); false if rejected. */
static bool
cli_set_opt(const char *cmd, const cli_opt *o, const char *v)
{
	if (o->flag)
		*o->flag = true;
	else if (o->str)
		*o->str = v;
	else if (o->num)
		return cli_parse_int(cmd, o->name, v, o->lo, o->hi, o->num);
	else if (o->real)
		return cli_parse_float(cmd, o->name, v, o->real);
	else if (o->list && *o->n_list < o->hi)
		o->list[(*o->n_list)++] = v;
	return true;
}

/* Parse a subcommand's arguments. */
cli_args
cli_parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts, int n_opts,
			   const char **pos, int n_pos, const char **bad)
{
	int			n_seen = 0;

	*bad = NULL;
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const cli_opt *o = NULL;

		for (int k = 0; k < n_opts && !o; k++)
			if (strcmp(a, opts[k].name) == 0)
				o = &opts[k];
		if (o && o->help)
			return CLI_ARGS_HELP;
		if (o && (o->flag || i + 1 < argc))
		{
			const char *v = o->flag ? NULL : argv[++i];

			if (!cli_set_opt(cmd, o, v))
				return CLI_ARGS_BAD;
		}
		else if (!o && a[0] != '-' && n_seen < n_pos)
			pos[n_seen++] = a;
		else
		{
			*bad = a;
			return CLI_ARGS_BAD;
		}
	}
	return CLI_ARGS_OK;
}

/* Open the model. */
bool
cli_engine_open(cli_engine *e, const char *cmd, const char *path)
{
	char		err[512];

	e->model = lm_model_open(path, err, sizeof(err));
	if (!e->model)
	{
		fprintf(stderr, "lmgen-cli %s: %s\n", cmd, err);
		return false;
	}
	return true;
}

/* Load the tokenizer. */
bool
cli_engine_tokenizer(cli_engine *e, const char *cmd, bool required)
{
	char		err[512];

	e->tok = lm_tokenizer_load(e->model->gguf, err, sizeof(err));
	if (!e->tok && required)
		fprintf(stderr, "lmgen-cli %s: %s\n", cmd, err);
	return e->tok != NULL;
}

/* Create the context and batch. */
bool
cli_engine_context(cli_engine *e, const char *cmd, const lm_context_params *p, bool want_batch)
{
	char		err[512];

	e->ctx = lm_context_create(e->model, p, err, sizeof(err));
	if (!e->ctx)
	{
		fprintf(stderr, "lmgen-cli %s: %s\n", cmd, err);
		return false;
	}
	if (want_batch && !(e->batch = lm_batch_create(p->n_batch)))
	{
		fprintf(stderr, "lmgen-cli %s: out of memory\n", cmd);
		return false;
	}
	return true;
}

/* Load the device backend, open device 0 and upload the model for p's sizes. */
bool
cli_engine_device(cli_engine *e, const char *cmd, const char *so_path, lm_context_params *p)
{
	char		err[512] = "";
	int			n_ctx = p->n_ctx > 0 ? p->n_ctx : e->model->cfg.n_ctx_train,
				n;

	e->dev_ops = lm_device_load(so_path, err, sizeof(err));
	if (!e->dev_ops)
		goto fail;
	n = e->dev_ops->count(err, sizeof(err));
	if (n <= 0)
	{
		if (n == 0)
			snprintf(err, sizeof(err), "no device found by \"%s\"", so_path);
		goto fail;
	}
	e->dev = e->dev_ops->open(0, err, sizeof(err));
	if (!e->dev)
		goto fail;
	e->dm = e->dev_ops->upload(e->dev, e->model, 0.9, 0, p->n_batch > 0 ? p->n_batch : 512,
							   p->n_seq_max > 0 ? p->n_seq_max : 1, n_ctx, err, sizeof(err));
	if (!e->dm)
		goto fail;
	p->device = e->dev_ops;
	p->device_model = e->dm;
	return true;

fail:
	fprintf(stderr, "lmgen-cli %s: --device: %s\n", cmd, err);
	return false;
}

/* Free the engine objects (the context before the device model, the device last). */
void
cli_engine_close(cli_engine *e)
{
	lm_batch_free(e->batch);
	lm_context_free(e->ctx);
	if (e->dm)
		e->dev_ops->unload(e->dm);
	if (e->dev)
		e->dev_ops->close(e->dev);
	lm_tokenizer_free(e->tok);
	lm_model_free(e->model);
	memset(e, 0, sizeof(*e));
}
