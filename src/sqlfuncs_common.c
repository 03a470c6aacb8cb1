/*
 * sqlfuncs_common.c — helpers shared by the SQL-callable functions: text
 * encoding at the boundary (models speak UTF-8), model arguments, and
 * tokenization into palloc'd memory.
 *
 * Text going in is converted from the database encoding to UTF-8 (a
 * database's text is always valid in its encoding, so this cannot fail).
 * Text coming out of a model is whatever bytes its tokens stand for, and the
 * model has already run when we see them, so the way back never fails:
 * NUL bytes are dropped, bytes that form no UTF-8 character become U+FFFD,
 * and characters the database encoding cannot hold become '?'.
 */
#include "postgres.h"

#include "catalog/pg_type.h"

#include "catalog/namespace.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "call.h"
#include "runtime.h"
#include "sqlfuncs_common.h"

/* Longest text tokenized in one call (bytes); tokenizing runs ~6 MB/s. */
#define MAX_TOKENIZE_BYTES (64 * 1024 * 1024)

/* Source bytes converted per call of the conversion function. */
#define CONVERT_CHUNK 8192

/* UTF-8 encoding of U+FFFD, the replacement character. */
#define REPLACEMENT_UTF8 "\xef\xbf\xbd"

/*
 * Text argument as UTF-8 bytes (converted from the server encoding); sets
 * *len.  The result may point into t: it is not NUL-terminated.
 */
char *
TextToUtf8(text *t, size_t *len)
{
	char	   *s = VARDATA_ANY(t);
	int			n = VARSIZE_ANY_EXHDR(t);
	char	   *u = pg_server_to_any(s, n, PG_UTF8);

	*len = (u == s) ? (size_t) n : strlen(u);
	return u;
}

/* Append s[0..len) to buf as valid UTF-8 without NUL bytes. */
static void
AppendCleanUtf8(StringInfo buf, const unsigned char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		size_t		run = i;
		int			l;

		/* a run of ASCII other than NUL goes in as it is */
		while (run < len && s[run] != 0 && s[run] < 0x80)
			run++;
		if (run > i)
			appendBinaryStringInfo(buf, (const char *) s + i, (int) (run - i));
		i = run;
		if (i >= len)
			break;
		if (s[i] == 0)
		{
			i++;				/* NUL: dropped */
			continue;
		}
		l = pg_utf_mblen(s + i);
		if (l > 1 && (size_t) l <= len - i && pg_utf8_islegal(s + i, l))
		{
			appendBinaryStringInfo(buf, (const char *) s + i, l);
			i += l;
		}
		else
		{
			appendBinaryStringInfo(buf, REPLACEMENT_UTF8, 3);
			i++;				/* a byte that starts no character */
		}
	}
}

/*
 * Append valid UTF-8 s[0..len) to buf in encoding enc, each character enc
 * cannot hold as '?'.  proc converts UTF-8 to enc (InvalidOid: none, so
 * only ASCII goes through).
 */
static void
AppendConverted(StringInfo buf, Oid proc, int enc, const unsigned char *s, int len)
{
	unsigned char *out = palloc(CONVERT_CHUNK * MAX_CONVERSION_GROWTH + 1);

	while (len > 0)
	{
		int			n = Min(len, CONVERT_CHUNK);
		int			done = 0;

		/* end the chunk on a character boundary */
		while (n < len && n > 0 && (s[n] & 0xC0) == 0x80)
			n--;
		if (OidIsValid(proc))
		{
			done = pg_do_encoding_conversion_buf(proc, PG_UTF8, enc, (unsigned char *) s, n,
												 out, CONVERT_CHUNK * MAX_CONVERSION_GROWTH + 1, true);
			appendStringInfoString(buf, (const char *) out);
		}
		else
		{
			while (done < n && s[done] < 0x80)
				done++;
			appendBinaryStringInfo(buf, (const char *) s, done);
		}
		s += done;
		len -= done;
		if (done < n)
		{
			/* the character here has no form in enc */
			int			l = Min(pg_utf_mblen(s), len);

			appendStringInfoChar(buf, '?');
			s += l;
			len -= l;
		}
	}
	pfree(out);
}

/*
 * Model output (bytes meant as UTF-8) as a text datum in the database
 * encoding; never an ERROR: NUL bytes are dropped, bytes that form no UTF-8
 * character become U+FFFD, characters the database encoding cannot hold
 * become '?'.
 */
text *
Utf8ToText(const char *s, size_t len)
{
	StringInfoData clean;
	StringInfoData conv;
	int			enc = GetDatabaseEncoding();

	initStringInfo(&clean);
	AppendCleanUtf8(&clean, (const unsigned char *) s, len);
	if (enc == PG_UTF8 || enc == PG_SQL_ASCII)
		return cstring_to_text_with_len(clean.data, clean.len);
	initStringInfo(&conv);
	AppendConverted(&conv, FindDefaultConversionProc(PG_UTF8, enc), enc,
					(const unsigned char *) clean.data, clean.len);
	pfree(clean.data);
	return cstring_to_text_with_len(conv.data, conv.len);
}

/* Name of the model given by optional text argument argno (palloc'd), NULL for the default model. */
char *
ModelNameArg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		return text_to_cstring(PG_GETARG_TEXT_PP(argno));
	return NULL;
}

/* The elements of a text[] argument as UTF-8 C strings. */
char	  **
TextArrayToUtf8(ArrayType *arr, const char *what, bool allow_empty, int *n, size_t **lens)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count;
	char	  **out;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%ss must be a one-dimensional array", what)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	out = palloc(sizeof(char *) * (count + 1));
	if (lens)
		*lens = palloc(sizeof(size_t) * (count + 1));
	for (int i = 0; i < count; i++)
	{
		size_t		len;
		const char *s;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s %d is NULL", what, i + 1)));
		s = TextToUtf8(DatumGetTextPP(elems[i]), &len);
		if (len == 0 && !allow_empty)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s %d is empty", what, i + 1)));
		/* a copy: s may point into the array, with no NUL after it */
		out[i] = pnstrdup(s, len);
		if (lens)
			(*lens)[i] = len;
	}
	out[count] = NULL;
	*n = count;
	return out;
}

/* The model named by optional text argument argno (NULL = default model). */
LmgenModel *
ModelFromArg(FunctionCallInfo fcinfo, int argno)
{
	return ModelAcquire(ModelNameArg(fcinfo, argno));
}

/*
 * Abort check handed to the engine (forward passes, before each pool job;
 * tokenizing, between pieces; training, between mini-batches), run on the
 * calling thread only: stop for a cancel, a timeout or termination, the
 * interrupts that end the query; the caller then raises it.  Others
 * (catch-up, barrier, ...) wait for the next CHECK_FOR_INTERRUPTS().
 */
bool
QueryAbortPending(void *arg)
{
	/* in the background worker: also when the call's backend stopped waiting */
	return QueryCancelPending || ProcDiePending || (lmgen_call_cancel != NULL && *lmgen_call_cancel);
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
	need = lm_tokenize_abortable(m->tok, s, len, add_special, parse_special, ids, cap,
								 QueryAbortPending, NULL, err, sizeof(err));
	if (need > cap)
	{
		cap = need;
		ids = repalloc_huge(ids, sizeof(int32) * cap);
		need = lm_tokenize_abortable(m->tok, s, len, add_special, parse_special, ids, cap,
									 QueryAbortPending, NULL, err, sizeof(err));
	}
	ModelCheckUnchanged(m);		/* the vocabulary is read from the mapped file */
	if (need < 0)
		EngineError(psprintf("could not tokenize text with model \"%s\"", m->name), err);
	*n = need;
	return ids;
}
