/*
 * sqlfuncs_tokenize.c — tokenizer access from SQL: lmgen.tokenize,
 * lmgen.detokenize, lmgen.count_tokens.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_tokenize);
PG_FUNCTION_INFO_V1(lmgen_detokenize);
PG_FUNCTION_INFO_V1(lmgen_count_tokens);

/* lmgen.tokenize(body text, model text) RETURNS integer[]: ids, BOS included when the model adds it. */
Datum
lmgen_tokenize(PG_FUNCTION_ARGS)
{
	LmgenModel *m;
	size_t		len;
	char	   *s;
	int			n;
	int32	   *ids;
	Datum	   *elems;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	m = ModelFromArg(fcinfo, 1);
	s = TextToUtf8(PG_GETARG_TEXT_PP(0), &len);
	ids = TokenizeText(m, s, len, true, false, &n);
	elems = palloc_extended(sizeof(Datum) * (n > 0 ? n : 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT4OID, 4, true, TYPALIGN_INT));
}

/* lmgen.count_tokens(body text, model text) RETURNS integer */
Datum
lmgen_count_tokens(PG_FUNCTION_ARGS)
{
	LmgenModel *m;
	size_t		len;
	char	   *s;
	int			n;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	m = ModelFromArg(fcinfo, 1);
	s = TextToUtf8(PG_GETARG_TEXT_PP(0), &len);
	pfree(TokenizeText(m, s, len, true, false, &n));
	PG_RETURN_INT32(n);
}

/*
 * lmgen.detokenize(ids integer[], model text) RETURNS text
 * Control tokens (BOS, EOS, ...) are not printed, and the space the
 * tokenizer put in front of the text is removed: detokenize(tokenize(x)) = x.
 */
Datum
lmgen_detokenize(PG_FUNCTION_ARGS)
{
	LmgenModel *m;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int32		n_vocab;
	StringInfoData buf;
	lm_detok	d;
	char		piece[512];
	int			got;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	m = ModelFromArg(fcinfo, 1);
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("token ids must be a one-dimensional array")));
	deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	n_vocab = lm_tokenizer_n_vocab(m->tok);
	initStringInfo(&buf);
	lm_detok_init(&d, m->tok);
	for (int i = 0; i < n; i++)
	{
		int32		id = DatumGetInt32(elems[i]);

		if (i % 65536 == 65535)
			CHECK_FOR_INTERRUPTS();
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("token id at position %d is NULL", i + 1)));
		if (id < 0 || id >= n_vocab)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("token id %d at position %d is out of range for model \"%s\"", id, i + 1, m->name),
					 errdetail("Token ids of this model run from 0 to %d.", n_vocab - 1)));
		/* control tokens print nothing; skipping them lets the space prefix go */
		if (lm_tokenizer_is_control(m->tok, id))
			continue;
		got = lm_detok_push(&d, id, piece, sizeof(piece));
		if (got < 0)
			elog(ERROR, "token %d has a piece longer than %zu bytes", id, sizeof(piece));
		appendBinaryStringInfo(&buf, piece, got);
	}
	got = lm_detok_finish(&d, piece, sizeof(piece));
	if (got > 0)
		appendBinaryStringInfo(&buf, piece, got);
	PG_RETURN_TEXT_P(Utf8ToText(buf.data, buf.len));
}
