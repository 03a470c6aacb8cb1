/*
 * cli_engine.c — number parsing and tokenizing for the model-running
 * subcommands of lmgen-cli.
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
