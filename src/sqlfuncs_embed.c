/*
 * sqlfuncs_embed.c — embed(): a sentence embedding from the model's final
 * hidden states (after the output norm), mean-pooled over the tokens of the
 * text (BOS included when the model adds it) and L2-normalised.
 *
 * The text is fed in chunks of EMBED_CHUNK tokens, each asking for every
 * token's hidden state only (no logits), and the hidden states are summed as
 * they come (in double, in token order, so the result does not depend on the
 * chunking).  The context goes back to computing logits afterwards, also
 * when an ERROR unwinds.  Memory: the text's KV cache (checked against
 * lmgen.max_kv_memory) and the hidden states of one chunk; both are given
 * back when the call ends.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "lmgen.h"
#include "call.h"
#include "runtime.h"
#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_embed);

#define EMBED_CHUNK 32			/* tokens per forward pass */

/* lm_batch_free with the signature TrackEngineResource wants. */
static void
FreeBatch(void *p)
{
	lm_batch_free(p);
}

/* Reset callback: the reused context computes logits again. */
static void
RestoreLogits(void *arg)
{
	lm_context_set_hidden_only((lm_context *) arg, false);
}

/* Build the embedding input: the text's tokens with BOS as the model wants. */
static LmgenPrompt
EmbedInput(LmgenModel *m, void *arg, const char *text, size_t len)
{
	LmgenPrompt p;

	p.ids = TokenizeText(m, text, len, true, false, &p.n);
	return p;
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
	lm_context *ctx;
	lm_batch   *b;
	EngineResource *res;
	EngineResource *mode;
	int			E = m->model->cfg.n_embd;
	double	   *sum;
	double		norm = 0.0;

	in = FitPrompt(m, EmbedInput, NULL, s, len, 0, NULL, NULL, 4);
	if (in.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot embed an empty text with model \"%s\"", m->name),
				 errdetail("The text has no tokens and the model adds no BOS token.")));

	call = RuntimeBegin(m, 1, lm_kv_bytes(m->model, in.n, 1), "this embedding");
	ctx = call.ctx;
	/* hidden states only: no classifier, no vocabulary-sized logits */
	lm_context_set_hidden_only(ctx, true);
	mode = TrackEngineResource(ctx, RestoreLogits);
	b = lm_batch_create(EMBED_CHUNK);
	if (b == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	res = TrackEngineResource(b, FreeBatch);
	sum = palloc0(sizeof(double) * E);
	for (int i0 = 0; i0 < in.n; i0 += EMBED_CHUNK)
	{
		int			n = Min(EMBED_CHUNK, in.n - i0);

		CHECK_FOR_INTERRUPTS();
		lm_batch_clear(b);
		for (int i = 0; i < n; i++)
			lm_batch_add(b, in.ids[i0 + i], i0 + i, 0, true);
		RunForward(m, ctx, b);
		for (int i = 0; i < n; i++)
		{
			const float *h = lm_context_hidden(ctx, i);

			for (int e = 0; e < E; e++)
				sum[e] += h[e];
		}
	}
	ReleaseEngineResource(res);
	ReleaseEngineResource(mode);
	RuntimeEnd(&call);

	for (int e = 0; e < E; e++)
	{
		sum[e] /= in.n;
		norm += sum[e] * sum[e];
	}
	norm = sqrt(norm);
	for (int e = 0; e < E; e++)
		out[e] = (float) (norm > 0 ? sum[e] / norm : 0.0);
	pfree(sum);
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
	LmgenCall	c;
	StringInfoData res;
	int			E;
	float	   *v;
	Datum	   *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	c = CallInit(LMGEN_CALL_EMBED, ModelNameArg(fcinfo, 1));
	c.body = TextToUtf8(PG_GETARG_TEXT_PP(0), &c.body_len);
	initStringInfo(&res);
	CallRun(&c, &res);
	E = res.len / sizeof(float);
	v = palloc(sizeof(float) * Max(E, 1));
	memcpy(v, res.data, sizeof(float) * E);
	out = palloc(sizeof(Datum) * Max(E, 1));
	for (int e = 0; e < E; e++)
		out[e] = Float4GetDatum(v[e]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, E, FLOAT4OID, 4, true, TYPALIGN_INT));
}
