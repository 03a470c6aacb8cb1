/*
 * sqlfuncs_info.c — SQL functions that inspect GGUF model files:
 * lmgen.model_info(path) and lmgen.model_tensors(path).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "lmgen.h"
#include "gguf.h"
#include "model_info.h"

PG_FUNCTION_INFO_V1(lmgen_model_info);
PG_FUNCTION_INFO_V1(lmgen_model_tensors);

/* Open and validate a model file given by a user path; ERROR when invalid. */
static lm_gguf *
OpenModelFile(text *path_text)
{
	char	   *path = text_to_cstring(path_text);
	char	   *resolved = ResolveModelPath(path, false);
	char		err[512];
	lm_gguf    *g = lm_gguf_open(resolved, err, sizeof(err));

	if (g == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model file \"%s\": %s", path, err),
				 errhint("Check that the file is a complete GGUF model (version 2 or 3); download it again if it was cut short.")));
	return g;
}

/* ERROR when the file changed while it was read (what was read may be zeros). */
static void
CheckFileUnchanged(lm_gguf *g, text *path_text)
{
	char		err[256];

	if (!lm_gguf_unchanged(g, err, sizeof(err)))
	{
		lm_gguf_close(g);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file \"%s\" changed on disk while it was read", text_to_cstring(path_text)),
				 errdetail("%s.", err)));
	}
}

/* Append "key": to a JSON object under construction. */
static void
JsonKey(StringInfo buf, const char *key, bool first)
{
	if (!first)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

/* Append a string value, or null when empty. */
static void
JsonStrOrNull(StringInfo buf, const char *s)
{
	if (s[0] == '\0')
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, s);
}

/* Append an integer value, or null when negative (absent). */
static void
JsonIntOrNull(StringInfo buf, int64 v)
{
	if (v < 0)
		appendStringInfoString(buf, "null");
	else
		appendStringInfo(buf, INT64_FORMAT, v);
}

/* lmgen.model_info(path text) RETURNS jsonb */
Datum
lmgen_model_info(PG_FUNCTION_ARGS)
{
	lm_gguf    *g = OpenModelFile(PG_GETARG_TEXT_PP(0));
	lm_model_info info;
	StringInfoData buf;
	bool		first = true;

	lm_model_info_get(g, &info);
	CheckFileUnchanged(g, PG_GETARG_TEXT_PP(0));
	lm_gguf_close(g);

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	JsonKey(&buf, "architecture", true);
	JsonStrOrNull(&buf, info.architecture);
	JsonKey(&buf, "name", false);
	JsonStrOrNull(&buf, info.name);
	JsonKey(&buf, "parameters", false);
	appendStringInfo(&buf, UINT64_FORMAT, info.n_params);
	JsonKey(&buf, "tensor_count", false);
	appendStringInfo(&buf, UINT64_FORMAT, info.n_tensors);
	JsonKey(&buf, "tensor_types", false);
	appendStringInfoChar(&buf, '{');
	for (int t = 0; t < LM_TYPE_COUNT; t++)
	{
		if (info.type_count[t] == 0)
			continue;
		JsonKey(&buf, lm_type_name(t), first);
		appendStringInfo(&buf, UINT64_FORMAT, info.type_count[t]);
		first = false;
	}
	appendStringInfoChar(&buf, '}');
	JsonKey(&buf, "context_length", false);
	JsonIntOrNull(&buf, info.context_length);
	JsonKey(&buf, "vocab_size", false);
	JsonIntOrNull(&buf, info.vocab_size);
	JsonKey(&buf, "file_type", false);
	JsonIntOrNull(&buf, info.file_type);
	JsonKey(&buf, "quantization", false);
	JsonStrOrNull(&buf, info.quantization);
	JsonKey(&buf, "file_size", false);
	appendStringInfo(&buf, UINT64_FORMAT, info.file_size);
	JsonKey(&buf, "gguf_version", false);
	appendStringInfo(&buf, "%u", info.version);
	JsonKey(&buf, "alignment", false);
	appendStringInfo(&buf, "%u", info.alignment);
	JsonKey(&buf, "metadata_count", false);
	appendStringInfo(&buf, UINT64_FORMAT, info.n_kv);
	appendStringInfoChar(&buf, '}');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* Build one model_tensors row. */
static void
PutTensorRow(ReturnSetInfo *rsinfo, const lm_gguf_tensor *t)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	Datum		dims[LM_GGUF_MAX_DIMS];

	values[0] = PointerGetDatum(cstring_to_text_with_len(t->name.ptr, (int) t->name.len));
	values[1] = PointerGetDatum(cstring_to_text(lm_type_name(t->type)));
	for (uint32 d = 0; d < t->n_dims; d++)
		dims[d] = Int64GetDatum(t->ne[d]);
	values[2] = PointerGetDatum(construct_array(dims, (int) t->n_dims, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = Int64GetDatum((int64) t->offset);
	values[4] = Int64GetDatum((int64) t->n_bytes);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* lmgen.model_tensors(path text) RETURNS TABLE(name, type, shape, offset, bytes) */
Datum
lmgen_model_tensors(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	lm_gguf    *g;
	char		err[256];

	InitMaterializedSRF(fcinfo, 0);
	g = OpenModelFile(PG_GETARG_TEXT_PP(0));
	PG_TRY();
	{
		for (uint64 i = 0; i < g->n_tensors; i++)
			PutTensorRow(rsinfo, &g->tensors[i]);
		if (!lm_gguf_unchanged(g, err, sizeof(err)))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model file \"%s\" changed on disk while it was read",
							text_to_cstring(PG_GETARG_TEXT_PP(0))),
					 errdetail("%s.", err)));
	}
	PG_FINALLY();
	{
		lm_gguf_close(g);
	}
	PG_END_TRY();
	return (Datum) 0;
}
