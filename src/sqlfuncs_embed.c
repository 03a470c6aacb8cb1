/*
 * sqlfuncs_embed.c — embed(): a sentence embedding from the model's final
 * hidden states (after the output norm), mean-pooled over the tokens of the
 * text (BOS included when the model adds it) and L2-normalised.
 *
 * The engine's lm_embed() (embed.h) computes it, the same pooling the
 * batching scheduler uses.  Memory: the text's KV cache (checked against
 * lmgen.max_kv_memory) and the hidden states of one chunk; both are given
 * back when the call ends.
 */
#include "postgres.h"


#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "embed.h"
#include "embed_encoder.h"
#include "lmgen.h"
#include "call.h"
#include "call_batch.h"
#include "runtime.h"
#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_embed);
PG_FUNCTION_INFO_V1(lmgen_embed_array);

/* Build the embedding input: the text's tokens with BOS as the model wants. */
static LmgenPrompt
EmbedInput(LmgenModel *m, void *arg, const char *text, size_t len)
{
	LmgenPrompt p;

	p.ids = TokenizeText(m, text, len, true, false, &p.n);
	return p;
}

/* The tokens embed() pools for UTF-8 text s: fitted to the context; ERROR when there are none. */
LmgenPrompt
EmbedPromptOf(LmgenModel *m, const char *s, size_t len)
{
	LmgenPrompt in = FitPrompt(m, EmbedInput, NULL, s, len, 0, NULL, NULL, 4);

	if (in.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot embed an empty text with model \"%s\"", m->name),
				 errdetail("The text has no tokens and the model adds no BOS token.")));
	return in;
}

/*
 * The embedding of UTF-8 text s (len bytes) into out (n_embd floats): mean
 * of the final hidden states, L2-normalised.  Also used by the trained
 * classifiers' embedding features (train_sql.c).
 */
void
EmbedUtf8(LmgenModel *m, const char *s, size_t len, float *out)
{
	LmgenPrompt in;
	RuntimeCall call;
	char		err[512];

	/* encoder models (bert: the default embedding model) have their own path */
	if (m->model->cfg.encoder)
	{
		EncoderEmbedTexts(m, &s, &len, 1, out);
		return;
	}
	in = EmbedPromptOf(m, s, len);

	call = RuntimeBegin(m, 1, lm_kv_bytes(m->model, in.n, 1), "this embedding");
	/* the engine checks for interrupts through the context's abort callback */
	if (lm_embed(call.ctx, 0, in.ids, in.n, out, err, sizeof(err)) != 0)
		EngineError(psprintf("could not run model \"%s\"", m->name), err);
	RuntimeEnd(&call);
}

/* Execute an embed() call: the n_embd floats of the embedding. */
void
EmbedExecute(LmgenModel *m, const LmgenCall *c, StringInfo out)
{
	int			E = m->model->cfg.n_embd;
	float	   *v = palloc(sizeof(float) * E);

	EmbedUtf8(m, c->body, c->body_len, v);
	appendBinaryStringInfo(out, (const char *) v, sizeof(float) * E);
	pfree(v);
}

/* embed(body text, model text) RETURNS real[] */
Datum
lmgen_embed(PG_FUNCTION_ARGS)
{
	return CallFunction(fcinfo, EmbedCallOf, EmbedResult);
}

/* An embed() call from its arguments; false for a NULL body (NULL result). */
bool
EmbedCallOf(FunctionCallInfo fcinfo, LmgenCall *c)
{
	if (PG_ARGISNULL(0))
		return false;
	*c = CallInit(LMGEN_CALL_EMBED, EmbeddingModelNameFor(ModelNameArg(fcinfo, 1)));
	c->body = TextToUtf8(PG_GETARG_TEXT_PP(0), &c->body_len);
	return true;
}

/* The result of embed(): its floats as a real[]. */
Datum
EmbedResult(const LmgenCall *c, StringInfo res)
{
	int			E = res->len / sizeof(float);
	Datum	   *out = palloc(sizeof(Datum) * Max(E, 1));

	for (int e = 0; e < E; e++)
	{
		float		v;

		memcpy(&v, res->data + sizeof(float) * e, sizeof(float));
		out[e] = Float4GetDatum(v);
	}
	return PointerGetDatum(construct_array(out, E, FLOAT4OID, 4, true, TYPALIGN_INT));
}

/*
 * embed(bodies text[], model text) RETURNS real[]: the embeddings of the
 * texts, computed together, as a two-dimensional array with one row per
 * text in input order.  A NULL text gives a row of NULLs; an array with no
 * text that is not NULL gives NULL (the width is the model's).
 */
Datum
lmgen_embed_array(PG_FUNCTION_ARGS)
{
	LmgenCall  *calls;
	StringInfo *out;
	bool	   *isnull;
	Datum	   *values;
	bool	   *nulls;
	int			n,
				E = -1,
				dims[2],
				lbs[2] = {1, 1};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	n = CallArrayRun(fcinfo, EmbedCallOf, &calls, &out, &isnull);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(FLOAT4OID));
	for (int i = 0; i < n; i++)
		if (!isnull[i])
		{
			if (E >= 0 && out[i]->len != (int) (sizeof(float) * E))
				elog(ERROR, "embeddings of %d and %d floats in one batch", E, out[i]->len / (int) sizeof(float));
			E = out[i]->len / sizeof(float);
		}
	if (E < 0)
		PG_RETURN_NULL();
	values = palloc_extended(sizeof(Datum) * n * Max(E, 1), MCXT_ALLOC_HUGE);
	nulls = palloc_extended(sizeof(bool) * n * Max(E, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < n; i++)
		for (int e = 0; e < E; e++)
		{
			float		v = 0.0f;

			if (!isnull[i])
				memcpy(&v, out[i]->data + sizeof(float) * e, sizeof(float));
			values[(size_t) i * E + e] = Float4GetDatum(v);
			nulls[(size_t) i * E + e] = isnull[i];
		}
	dims[0] = n;
	dims[1] = E;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(values, nulls, 2, dims, lbs, FLOAT4OID, 4, true, TYPALIGN_INT));
}
