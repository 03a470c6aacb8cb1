/*
 * sqlfuncs_common.c — helpers shared by the SQL-callable functions: text
 * encoding at the boundary (models speak UTF-8), model arguments, and
 * tokenization into palloc'd memory.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "sqlfuncs_common.h"

/* Longest text tokenized in one call (bytes); tokenizing runs ~6 MB/s. */
#define MAX_TOKENIZE_BYTES (64 * 1024 * 1024)

/* Text argument as UTF-8 bytes (converted from the server encoding). */
char *
TextToUtf8(text *t, size_t *len)
{
	char	   *s = VARDATA_ANY(t);
	int			n = VARSIZE_ANY_EXHDR(t);
	char	   *u = pg_server_to_any(s, n, PG_UTF8);

	*len = (u == s) ? (size_t) n : strlen(u);
	return u;
}

/* UTF-8 bytes as a text datum in the server encoding. */
text *
Utf8ToText(const char *s, size_t len)
{
	char	   *conv = pg_any_to_server(s, (int) len, PG_UTF8);

	return cstring_to_text_with_len(conv, conv == s ? (int) len : (int) strlen(conv));
}

/* The model named by optional text argument argno (NULL = default model). */
LmgenModel *
ModelFromArg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name = NULL;

	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	return ModelAcquire(name);
}

/* Tokenize UTF-8 text with the model's tokenizer; palloc'd ids, count in *n. */
int32 *
TokenizeText(LmgenModel *m, const char *s, size_t len, bool add_special, bool parse_special, int *n)
{
	char		err[256];
	int			cap;
	int			need;
	int32	   *ids;

	if (len > MAX_TOKENIZE_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("text of %zu bytes is too long to tokenize", len),
				 errdetail("The limit is %d bytes.", MAX_TOKENIZE_BYTES)));
	cap = (int) (len / 2) + 16;
	ids = palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
	need = lm_tokenize(m->tok, s, len, add_special, parse_special, ids, cap, err, sizeof(err));
	if (need > cap)
	{
		cap = need;
		ids = repalloc_huge(ids, sizeof(int32) * cap);
		need = lm_tokenize(m->tok, s, len, add_special, parse_special, ids, cap, err, sizeof(err));
	}
	ModelCheckUnchanged(m);		/* the vocabulary is read from the mapped file */
	if (need < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not tokenize text with model \"%s\": %s", m->name, err)));
	*n = need;
	return ids;
}
