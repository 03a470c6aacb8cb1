/*
 * cli_engine.h — helpers shared by the lmgen-cli subcommands that run a
 * model (run, bench, perplexity): number parsing and tokenizing to a
 * malloc'd array.
 */
#ifndef LM_CLI_ENGINE_H
#define LM_CLI_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "tokenizer.h"

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
