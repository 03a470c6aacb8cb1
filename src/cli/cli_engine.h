/*
 * cli_engine.h — helpers shared by the lmgen-cli subcommands that run a
 * model (run, bench, perplexity): option parsing from a table, opening the
 * model, tokenizer and context, number parsing and tokenizing to a malloc'd
 * array.
 */
#ifndef LM_CLI_ENGINE_H
#define LM_CLI_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "context.h"
#include "device.h"
#include "model.h"
#include "tokenizer.h"

/* Number of elements of an array. */
#define CLI_LENGTHOF(a) (sizeof(a) / sizeof((a)[0]))

/* One option of a subcommand; exactly one target (flag, str, num, real, list) or help is set. */
typedef struct cli_opt
{
	const char *name;			/* as typed: "-n", "--temp" */
	bool	   *flag;			/* set to true when present (takes no value) */
	const char **str;			/* the value as given */
	int		   *num;			/* the value as an int in [lo, hi] */
	float	   *real;			/* the value as a finite float */
	const char **list;			/* values appended, at most hi of them (more are ignored) */
	int		   *n_list;			/* number of values in list */
	long		lo;				/* num: smallest value */
	long		hi;				/* num: largest value; list: capacity */
	bool		help;			/* asks for the usage: parsing stops there */
} cli_opt;

/* What cli_parse_args found. */
typedef enum cli_args
{
	CLI_ARGS_OK,				/* every argument matched */
	CLI_ARGS_HELP,				/* a help option was given */
	CLI_ARGS_BAD				/* a bad argument: see cli_parse_args */
} cli_args;

/* What a model-running subcommand holds open; cli_engine_close frees it. */
typedef struct cli_engine
{
	lm_model   *model;			/* the opened model, or NULL */
	lm_tokenizer *tok;			/* its tokenizer, or NULL */
	lm_context *ctx;			/* inference context, or NULL */
	lm_batch   *batch;			/* token batch, or NULL */
	const lm_device_ops *dev_ops;	/* --device: the backend, or NULL */
	lm_device  *dev;			/* its device 0, or NULL */
	lm_device_model *dm;		/* the model on it, or NULL */
} cli_engine;

/* Match argv[1..] against opts, filling pos[0..n_pos-1] with the other words in order; on CLI_ARGS_BAD *bad is the unknown or incomplete argument, or NULL when a value was rejected (message on stderr). */
extern cli_args cli_parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts, int n_opts,
							   const char **pos, int n_pos, const char **bad);

/* Open path as a model into e; false with a message on stderr. */
extern bool cli_engine_open(cli_engine *e, const char *cmd, const char *path);

/* Load e's tokenizer; false, with a message on stderr only when required, if it fails. */
extern bool cli_engine_tokenizer(cli_engine *e, const char *cmd, bool required);

/*
 * Put e's model on device 0 of the backend at so_path (--device) for
 * contexts of p's sizes (n_ctx 0: the model's), and make p a device
 * context's parameters; false with a message on stderr.
 */
extern bool cli_engine_device(cli_engine *e, const char *cmd, const char *so_path, lm_context_params *p);

/* Create e's context with p, and a batch of p->n_batch tokens with want_batch; false with a message on stderr. */
extern bool cli_engine_context(cli_engine *e, const char *cmd, const lm_context_params *p, bool want_batch);

/* Free everything e holds. */
extern void cli_engine_close(cli_engine *e);

/* Parse a whole string as an int in [lo, hi]; false with a message on stderr. */
extern bool cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);

/* Parse a whole string as a finite float; false with a message on stderr. */
extern bool cli_parse_float(const char *cmd, const char *opt, const char *s, float *out);

/* Tokenize text (BOS as the model adds it); returns a malloc'd array and its length in *n, NULL on error (message on stderr). */
extern int32_t *cli_tokenize(const char *cmd, const lm_tokenizer *t, const char *text, size_t len,
							 bool parse_special, int *n);

/* Parse "1,403,407" into a malloc'd array; NULL on error (message on stderr). */
extern int32_t *cli_parse_ids(const char *cmd, const char *s, int *n);

#endif							/* LM_CLI_ENGINE_H */
