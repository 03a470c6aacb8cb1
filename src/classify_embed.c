/*
 * classify_embed.c — classify()'s examples retrieved by embedding (see
 * classify_prompt.h).
 *
 * Which method.  lmgen.classify_retrieval = 'auto' (the default) retrieves
 * by embedding when lmgen.default_embedding_model names a registered model
 * (minilm, once `make model` installed it), else by word overlap;
 * 'embedding' insists on the model, 'overlap' never uses it.
 *
 * Where the work runs.  The examples are chosen in the calling backend,
 * which sends the chosen texts in the classify call (worker mode as local).
 * With an encoder (minilm) the backend embeds the texts itself, in batches
 * of EMBED_CHUNK texts packed into shared forward passes
 * (EncoderEmbedTexts), in both modes, as lmgen.train_classifier's
 * embedding features do: embedding the examples is a bulk job of the
 * statement, which through the worker would be one request (a DSM segment
 * and a slot) per text and would hold the worker's scheduler for minutes
 * for one session.  (Measured on 2 cores at load 10-12, neither way is
 * faster there: the 7,355 Debian training texts took 8 min 44 s here, 2
 * min 5 s of CPU; through the worker 6,153 texts took 6 min 11 s.)
 * A decoder model used as the embedding model goes through embed calls
 * (CallRunBatch: this backend or the worker, as lmgen.execution says).
 * The encoder is batch-invariant and kernels agree across processes, so
 * an embedding is the same bits computed alone, in a batch, here or in
 * the worker, and so is the choice.
 *
 * Cost and caching.  The examples query is read once per statement (and
 * per query text and labels; ExamplesCache in sqlfuncs_classify.c), and
 * its texts are embedded then: the Debian training file, 7,355 texts, is
 * a minute or two of encoder time on two cores.  To spare that on every
 * statement, the backend keeps the embeddings of the last pool it
 * embedded (EmbeddingMemo), keyed by the embedding model's file (path,
 * device, inode, size, mtime), lmgen.context_overflow and
 * lmgen.embedding_precision, and entry by entry by the example's whole
 * text.  An embedding is a function of these and the text alone, so
 * reusing one for the same text is
 * exact whatever the query, its snapshot or the rows' order: a changed row
 * is a new text and is embedded, a replaced model file a new key.  Only
 * the last pool is kept (memory: its texts and n x 384 floats), replaced
 * whole once the new pool is embedded, so an ERROR midway leaves the old
 * one intact.  Each row's own text is embedded per call.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "call.h"
#include "call_batch.h"
#include "classify_prompt.h"
#include "embed_encoder.h"
#include "hash.h"
#include "lmgen.h"
#include "model_cache.h"

/* Texts per encoder batch or CallRunBatch (bounds the memory in flight; a cancel is seen between them). */
#define EMBED_CHUNK 256

/* The last pool's embeddings in this backend. */
typedef struct EmbeddingMemo
{
	MemoryContext cxt;			/* holds everything below (child of TopMemoryContext) */
	char	   *key;			/* model file identity and lmgen.context_overflow */
	int			n;				/* texts */
	int			dim;			/* embedding width */
	char	  **text;			/* whole texts */
	size_t	   *len;			/* their byte lengths */
	uint64	   *hash;			/* lm_hash of each text */
	float	   *emb;			/* n x dim */
} EmbeddingMemo;

static EmbeddingMemo *memo = NULL;	/* NULL until a pool is embedded */

/* The embedding model for retrieval, or NULL for word overlap. */
const char *
ClassifyRetrievalModel(void)
{
	const char *model;

	if (lmgen_classify_retrieval == LMGEN_RETRIEVAL_OVERLAP)
		return NULL;
	model = EmbeddingModelNameFor(NULL);
	if (model == NULL && lmgen_classify_retrieval == LMGEN_RETRIEVAL_EMBEDDING)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lmgen.classify_retrieval is \"embedding\" but no embedding model is registered"),
				 errdetail("lmgen.default_embedding_model is \"%s\".",
						   lmgen_default_embedding_model ? lmgen_default_embedding_model : ""),
				 errhint("Install one with \"make model\" (minilm), set lmgen.default_embedding_model to a registered model, or set lmgen.classify_retrieval to 'overlap'.")));
	return model;
}

/* The memo key of an embedding model: its file's identity and the settings an embedding depends on. */
static char *
MemoKey(const char *model)
{
	LmgenModel *m = ModelLookup(model);

	return psprintf("%s|%llu|%llu|%lld|%lld.%ld|%d|%d", m->path, (unsigned long long) m->dev,
					(unsigned long long) m->ino, (long long) m->size, (long long) m->mtime.tv_sec,
					(long) m->mtime.tv_nsec, lmgen_context_overflow, lmgen_embedding_precision);
}

/*
 * Embeddings of n texts with model, n x *dim floats (palloc'd); *dim is
 * the model's width, which the first result gives when *dim <= 0.
 */
static float *
EmbedTexts(const char *model, char *const *texts, const size_t *lens, int n, int *dim)
{
	LmgenModel *m = ModelAcquire(model);
	LmgenCall  *calls;
	StringInfo *res;
	float	   *out = NULL;

	if (m->model->cfg.encoder)
	{
		int			E = m->model->cfg.n_embd;

		if (*dim > 0 && *dim != E)
			elog(ERROR, "embedding model \"%s\" is %d wide, expected %d", model, E, *dim);
		*dim = E;
		out = palloc_extended(sizeof(float) * (size_t) Max(n, 1) * E, MCXT_ALLOC_HUGE);
		for (int at = 0; at < n; at += EMBED_CHUNK)
		{
			CHECK_FOR_INTERRUPTS();
			EncoderEmbedTexts(m, (const char *const *) texts + at, lens + at, Min(EMBED_CHUNK, n - at),
							  out + (size_t) at * E);
		}
		return out;
	}
	calls = palloc(sizeof(LmgenCall) * EMBED_CHUNK);
	res = palloc(sizeof(StringInfo) * EMBED_CHUNK);
	for (int at = 0; at < n; at += EMBED_CHUNK)
	{
		int			g = Min(EMBED_CHUNK, n - at);

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < g; i++)
		{
			calls[i] = CallInit(LMGEN_CALL_EMBED, model);
			calls[i].body = texts[at + i];
			calls[i].body_len = lens[at + i];
			res[i] = makeStringInfo();
		}
		CallRunBatch(calls, g, res);
		for (int i = 0; i < g; i++)
		{
			if (*dim <= 0)
				*dim = res[i]->len / (int) sizeof(float);
			if (*dim <= 0 || res[i]->len != (int) sizeof(float) * *dim)
				elog(ERROR, "embedding model \"%s\" returned %d bytes for a text, expected %d",
					 model, res[i]->len, (int) sizeof(float) * *dim);
			if (out == NULL)
				out = palloc_extended(sizeof(float) * (size_t) n * *dim, MCXT_ALLOC_HUGE);
			memcpy(out + (size_t) (at + i) * *dim, res[i]->data, res[i]->len);
			pfree(res[i]->data);
			pfree(res[i]);
		}
	}
	pfree(calls);
	pfree(res);
	return out;
}

/* Index of text (hash h) in the memo through its open-addressing table (size mask + 1), or -1. */
static int
MemoFind(const int *table, int mask, const char *s, size_t len, uint64 h)
{
	for (int slot = (int) (h & mask);; slot = (slot + 1) & mask)
	{
		int			j = table[slot];

		if (j < 0)
			return -1;
		if (memo->hash[j] == h && memo->len[j] == len && memcmp(memo->text[j], s, len) == 0)
			return j;
	}
}

/* Embed the pool's texts, reusing the memo's embeddings of the same texts, and make the pool the memo. */
void
ClassifyEmbedExamples(ClassifyExamples *ex, const char *model)
{
	char	   *key = MemoKey(model);
	bool		reuse = memo != NULL && strcmp(memo->key, key) == 0;
	MemoryContext cxt,
				old;
	EmbeddingMemo *next;
	int		   *table = NULL,
				mask = 0,
			   *from,
				n_miss = 0,
				dim = reuse ? memo->dim : 0;
	char	  **miss_text;
	size_t	   *miss_len;
	float	   *miss_emb;

	if (ex->n > CLASSIFY_MAX_EMBEDDED_EXAMPLES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the examples query returned %d usable rows; retrieval by embedding takes at most %d",
						ex->n, CLASSIFY_MAX_EMBEDDED_EXAMPLES),
				 errhint("Return fewer rows, or set lmgen.classify_retrieval to 'overlap'.")));

	/* the new memo is built apart and replaces the old one only when complete */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "lmgen classify example embeddings",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	next = palloc0(sizeof(EmbeddingMemo));
	next->cxt = cxt;
	next->key = pstrdup(key);
	next->n = ex->n;
	next->text = palloc(sizeof(char *) * Max(ex->n, 1));
	next->len = palloc(sizeof(size_t) * Max(ex->n, 1));
	next->hash = palloc(sizeof(uint64) * Max(ex->n, 1));
	MemoryContextSwitchTo(old);

	if (reuse)
	{
		for (mask = 1; mask < 2 * memo->n; mask <<= 1)
			;
		table = palloc(sizeof(int) * mask);
		memset(table, -1, sizeof(int) * mask);
		mask--;
		for (int j = 0; j < memo->n; j++)
		{
			int			slot = (int) (memo->hash[j] & mask);

			while (table[slot] >= 0)
				slot = (slot + 1) & mask;
			table[slot] = j;
		}
	}
	from = palloc(sizeof(int) * Max(ex->n, 1));
	miss_text = palloc(sizeof(char *) * Max(ex->n, 1));
	miss_len = palloc(sizeof(size_t) * Max(ex->n, 1));
	for (int i = 0; i < ex->n; i++)
	{
		uint64		h = lm_hash(LM_HASH_INIT, ex->source[i], ex->source_len[i]);

		next->hash[i] = h;
		next->len[i] = ex->source_len[i];
		next->text[i] = MemoryContextAlloc(cxt, ex->source_len[i] + 1);
		memcpy(next->text[i], ex->source[i], ex->source_len[i] + 1);
		from[i] = reuse ? MemoFind(table, mask, ex->source[i], ex->source_len[i], h) : -1;
		if (from[i] < 0)
		{
			miss_text[n_miss] = ex->source[i];
			miss_len[n_miss++] = ex->source_len[i];
		}
	}
	miss_emb = n_miss > 0 ? EmbedTexts(model, miss_text, miss_len, n_miss, &dim) : NULL;

	/* the pool's embeddings, in query order: reused or new */
	ex->emb = palloc_extended(sizeof(float) * (size_t) Max(ex->n, 1) * Max(dim, 1), MCXT_ALLOC_HUGE);
	n_miss = 0;
	for (int i = 0; i < ex->n; i++)
		memcpy(ex->emb + (size_t) i * dim,
			   from[i] >= 0 ? memo->emb + (size_t) from[i] * dim : miss_emb + (size_t) (n_miss++) * dim,
			   sizeof(float) * dim);
	ex->dim = dim;
	ex->model = pstrdup(model);
	next->dim = dim;
	next->emb = MemoryContextAllocExtended(cxt, sizeof(float) * (size_t) Max(ex->n, 1) * Max(dim, 1),
										   MCXT_ALLOC_HUGE);
	memcpy(next->emb, ex->emb, sizeof(float) * (size_t) ex->n * dim);

	/* complete: the new memo replaces the old one */
	MemoryContextSetParent(cxt, TopMemoryContext);
	if (memo)
		MemoryContextDelete(memo->cxt);
	memo = next;
	if (table)
		pfree(table);
	pfree(from);
	pfree(miss_text);
	pfree(miss_len);
	if (miss_emb)
		pfree(miss_emb);
	pfree(key);
}

/* The embedding of a text with model. */
float *
ClassifyEmbedText(const char *model, const char *text, size_t len, int dim)
{
	char	   *t = (char *) text;
	int			got = dim;

	return EmbedTexts(model, &t, &len, 1, &got);
}
