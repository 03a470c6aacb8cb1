/*
 * sqlfuncs_common.h — helpers shared by the SQL-callable functions.
 */
#ifndef LMGEN_SQLFUNCS_COMMON_H
#define LMGEN_SQLFUNCS_COMMON_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"

#include "model_cache.h"

/* Text argument as UTF-8 bytes (converted from the server encoding, not NUL-terminated); sets *len. */
extern char *TextToUtf8(text *t, size_t *len);

/*
 * Model output as a text datum in the server encoding, never an ERROR: NUL
 * bytes dropped, invalid UTF-8 as U+FFFD, characters the encoding lacks as '?'.
 */
extern text *Utf8ToText(const char *s, size_t len);

/* Name of the model given by optional text argument argno (palloc'd), NULL for the default model. */
extern char *ModelNameArg(FunctionCallInfo fcinfo, int argno);

/*
 * The elements of a one-dimensional text[] argument as UTF-8 C strings
 * (palloc'd copies, NUL-terminated; their byte lengths in *lens when lens
 * is not NULL); sets *n.  ERROR naming the element as `what` %d when one is
 * NULL, or (when !allow_empty) empty, and for a multi-dimensional array.
 */
extern char **TextArrayToUtf8(ArrayType *arr, const char *what, bool allow_empty, int *n, size_t **lens);

/* The model named by optional text argument argno (NULL = default model). */
extern LmgenModel *ModelFromArg(FunctionCallInfo fcinfo, int argno);

/* Abort check for the engine: true while a cancel, timeout or termination is pending. */
extern bool QueryAbortPending(void *arg);

/* Tokenize UTF-8 text with the model's tokenizer; palloc'd ids, count in *n. */
extern int32 *TokenizeText(LmgenModel *m, const char *s, size_t len, bool add_special,
						   bool parse_special, int *n);

/* embed() of UTF-8 text into out (the model's n_embd floats) (sqlfuncs_embed.c). */
extern void EmbedUtf8(LmgenModel *m, const char *s, size_t len, float *out);

#endif							/* LMGEN_SQLFUNCS_COMMON_H */
