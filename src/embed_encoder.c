/*
 * embed_encoder.c — sentence embeddings with an encoder model from a
 * backend: tokenize, run lm_bert_embed in the model's reusable context
 * with the layer products lmgen.embedding_precision names, raise the
 * engine's error or a pending cancel.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "embed_encoder.h"
#include "lmgen.h"
#include "model_bert.h"
#include "runtime.h"
#include "sqlfuncs_common.h"

/* Embeddings of n texts with an encoder model. */
void
EncoderEmbedTexts(LmgenModel *m, const char *const *texts, const size_t *lens, int n, float *out)
{
	const int32 **ids = palloc(sizeof(int32 *) * Max(n, 1));
	int		   *n_ids = palloc(sizeof(int) * Max(n, 1));
	RuntimeCall call;
	char		err[512];

	Assert(m->model->cfg.encoder);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		ids[i] = TokenizeText(m, texts[i], lens[i], true, false, &n_ids[i]);
	}
	/* no KV cache: an encoder keeps nothing between forward passes */
	call = RuntimeBegin(m, 1, 0, "this embedding");
	lm_bert_set_f32(call.ctx, lmgen_embedding_precision == LMGEN_EMBEDDING_F32);
	if (lm_bert_embed(call.ctx, (const int32_t *const *) ids, n_ids, n, out, err, sizeof(err)) != 0)
		EngineError(psprintf("could not run model \"%s\"", m->name), err);
	RuntimeEnd(&call);
	for (int i = 0; i < n; i++)
		pfree((void *) ids[i]);
	pfree(ids);
	pfree(n_ids);
}
