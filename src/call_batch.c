/*
 * call_batch.c — model calls of many rows at once (see call_batch.h): the
 * table of batchable functions and the batch runner.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "call_batch.h"

extern Datum lmgen_generate(PG_FUNCTION_ARGS);
extern Datum lmgen_summarize(PG_FUNCTION_ARGS);
extern Datum lmgen_classify(PG_FUNCTION_ARGS);
extern Datum lmgen_embed(PG_FUNCTION_ARGS);

static const LmgenBatchable batchable[] = {
	{"generate", lmgen_generate, GenerateCallOf, TextResult},
	{"summarize", lmgen_summarize, SummarizeCallOf, TextResult},
	{"classify", lmgen_classify, ClassifyCallOf, ClassifyResult},
	{"embed", lmgen_embed, EmbedCallOf, EmbedResult},
};

/* The batchable model function whose C entry point is fn, or NULL. */
const LmgenBatchable *
BatchableFunction(PGFunction fn)
{
	for (int i = 0; i < lengthof(batchable); i++)
		if (batchable[i].fn == fn)
			return &batchable[i];
	return NULL;
}

/* Run n calls together; call i's result bytes in out[i]. */
void
CallRunBatch(LmgenCall *calls, int n, StringInfo *out)
{
	/* one by one for now: the same results, without the shared forward passes */
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		CallRun(&calls[i], out[i]);
	}
}
