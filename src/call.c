/*
 * call.c — a model call as data: built by the SQL functions, run here or in
 * the background worker by the same execution code, and carried to the
 * worker as bytes (see call.h).
 *
 * The serialized form is only ever read by the same lmgen.so in another
 * process of the same server, so fixed-size fields travel as raw bytes;
 * strings go as a length and their bytes, so a call of any size fits.  The
 * reader still checks every length against the buffer: a malformed request
 * is an ERROR in the worker, never a read out of bounds.
 */
#include "postgres.h"

#include "lmgen.h"
#include "call.h"
#include "shmem.h"

#define CALL_MAGIC 0x6c6d6331	/* "lmc1" */

/* A call of kind with the caller's settings and no arguments yet. */
LmgenCall
CallInit(LmgenCallKind kind, const char *model_name)
{
	LmgenCall	c;

	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.model_name = model_name ? pstrdup(model_name) : NULL;
	c.context_overflow = lmgen_context_overflow;
	c.max_kv_memory = lmgen_max_kv_memory;
	c.gen = lm_gen_default_params();
	return c;
}

/* True when calls go to the background worker (preloaded, lmgen.execution = 'worker'). */
bool
CallsUseWorker(void)
{
	return lmgen_shared != NULL && lmgen_execution == LMGEN_EXECUTION_WORKER;
}

/* Run the call here or in the worker; result bytes in out. */
void
CallRun(LmgenCall *c, StringInfo out)
{
	LmgenModel *m;

	if (CallsUseWorker())
	{
		m = ModelLookup(c->model_name);
		c->model_name = m->name;
		c->model_path = m->path;
		RequestRun(c, out);
		return;
	}
	m = ModelAcquire(c->model_name);
	CallExecute(m, c, out);
}

/* A model function's body: its arguments into a call, run it, its SQL result. */
Datum
CallFunction(FunctionCallInfo fcinfo, CallArgsFn args, CallResultFn result)
{
	LmgenCall	c;
	StringInfoData out;

	if (!args(fcinfo, &c))
	{
		fcinfo->isnull = true;
		return (Datum) 0;
	}
	initStringInfo(&out);
	CallRun(&c, &out);
	return result(&c, &out);
}

/* The prompt of a generate or summarize call. */
LmgenPrompt
CallPrompt(LmgenModel *m, const LmgenCall *c)
{
	if (c->kind == LMGEN_CALL_SUMMARIZE)
		return SummarizePromptOf(m, c);
	return GeneratePromptOf(m, c);
}

/* Generations a generate or summarize call runs: a headline's candidates, else one. */
int
CallGenerations(LmgenModel *m, const LmgenCall *c)
{
	return c->kind == LMGEN_CALL_SUMMARIZE ? SummarizeGenerationsOf(m, c) : 1;
}

/* The decoding settings of each generation of a generate or summarize call. */
void
CallDecodings(LmgenModel *m, const LmgenCall *c, int n, lm_gen_params *p)
{
	for (int k = 0; k < n; k++)
		p[k] = c->gen;
	if (c->kind == LMGEN_CALL_SUMMARIZE)
		SummarizeDecodingOf(m, c, n, p);
}

/* Append a generate/summarize result given its generations' texts. */
void
CallFinishText(LmgenModel *m, const LmgenCall *c, const char *const *texts, const size_t *lens, int n,
			   StringInfo out)
{
	if (c->kind == LMGEN_CALL_SUMMARIZE)
		SummarizeFinish(m, c, texts, lens, n, out);
	else
		appendBinaryStringInfo(out, texts[0], lens[0]);
}

/* Execute the call with an open model (both modes). */
void
CallExecute(LmgenModel *m, const LmgenCall *c, StringInfo out)
{
	switch (c->kind)
	{
		case LMGEN_CALL_GENERATE:
		case LMGEN_CALL_SUMMARIZE:
			{
				LmgenPrompt prompt = CallPrompt(m, c);
				int			n = CallGenerations(m, c);
				lm_gen_params p[LMGEN_MAX_GENERATIONS];
				char	   *texts[LMGEN_MAX_GENERATIONS];
				size_t		lens[LMGEN_MAX_GENERATIONS];

				CallDecodings(m, c, n, p);
				RunGenerations(m, &prompt, p, n, texts, lens);
				CallFinishText(m, c, (const char *const *) texts, lens, n, out);
				break;
			}
		case LMGEN_CALL_CLASSIFY:
			ClassifyExecute(m, c, out);
			break;
		case LMGEN_CALL_EMBED:
			EmbedExecute(m, c, out);
			break;
	}
}

/* Append a length-prefixed string (NULL as length -1). */
static void
PutString(StringInfo buf, const char *s, int64 len)
{
	if (s == NULL)
		len = -1;
	appendBinaryStringInfo(buf, (const char *) &len, sizeof(len));
	if (len > 0)
		appendBinaryStringInfo(buf, s, len);
}

/* Serialize a call into buf. */
void
CallSerialize(const LmgenCall *c, StringInfo buf)
{
	int32		magic = CALL_MAGIC;
	int32		n = c->n_strings;

	appendBinaryStringInfo(buf, (const char *) &magic, sizeof(magic));
	appendBinaryStringInfo(buf, (const char *) &c->kind, sizeof(c->kind));
	appendBinaryStringInfo(buf, (const char *) &c->context_overflow, sizeof(c->context_overflow));
	appendBinaryStringInfo(buf, (const char *) &c->max_kv_memory, sizeof(c->max_kv_memory));
	appendBinaryStringInfo(buf, (const char *) &c->gen.max_tokens, sizeof(c->gen.max_tokens));
	appendBinaryStringInfo(buf, (const char *) &c->gen.sampling, sizeof(c->gen.sampling));
	appendBinaryStringInfo(buf, (const char *) &c->gen.ignore_eog, sizeof(c->gen.ignore_eog));
	PutString(buf, c->model_name, c->model_name ? strlen(c->model_name) : 0);
	PutString(buf, c->model_path, c->model_path ? strlen(c->model_path) : 0);
	PutString(buf, c->body, c->body_len);
	appendBinaryStringInfo(buf, (const char *) &n, sizeof(n));
	for (int i = 0; i < n; i++)
		PutString(buf, c->strings[i], c->string_lens[i]);
	n = c->n_extra;
	appendBinaryStringInfo(buf, (const char *) &n, sizeof(n));
	for (int i = 0; i < n; i++)
		PutString(buf, c->extra[i], c->extra_lens[i]);
	appendBinaryStringInfo(buf, (const char *) c->opt, sizeof(c->opt));
}

/* A reader over serialized bytes. */
typedef struct CallReader
{
	const char *p;				/* next byte */
	const char *end;			/* end of the buffer */
} CallReader;

/* Copy size bytes out of the reader; ERROR when the buffer is short. */
static void
Take(CallReader *r, void *dst, size_t size)
{
	if ((size_t) (r->end - r->p) < size)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("malformed lmgen request")));
	memcpy(dst, r->p, size);
	r->p += size;
}

/* A length-prefixed string as a palloc'd NUL-terminated copy (NULL for -1); sets *len. */
static char *
TakeString(CallReader *r, size_t *len)
{
	int64		n;
	char	   *s;

	Take(r, &n, sizeof(n));
	if (n < 0)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	s = palloc_extended(n + 1, MCXT_ALLOC_HUGE);
	Take(r, s, n);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

/* Read a call made by CallSerialize; ERROR when malformed. */
LmgenCall
CallDeserialize(const char *data, size_t len)
{
	CallReader	r = {data, data + len};
	LmgenCall	c;
	int32		magic;
	int32		n;

	memset(&c, 0, sizeof(c));
	c.gen = lm_gen_default_params();
	Take(&r, &magic, sizeof(magic));
	if (magic != CALL_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("malformed lmgen request")));
	Take(&r, &c.kind, sizeof(c.kind));
	Take(&r, &c.context_overflow, sizeof(c.context_overflow));
	Take(&r, &c.max_kv_memory, sizeof(c.max_kv_memory));
	Take(&r, &c.gen.max_tokens, sizeof(c.gen.max_tokens));
	Take(&r, &c.gen.sampling, sizeof(c.gen.sampling));
	Take(&r, &c.gen.ignore_eog, sizeof(c.gen.ignore_eog));
	c.model_name = TakeString(&r, NULL);
	c.model_path = TakeString(&r, NULL);
	c.body = TakeString(&r, &c.body_len);
	Take(&r, &n, sizeof(n));
	if (n < 0 || (size_t) n > len / sizeof(int64) || c.model_name == NULL || c.model_path == NULL ||
		(int) c.kind < LMGEN_CALL_GENERATE || c.kind > LMGEN_CALL_EMBED)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("malformed lmgen request")));
	c.n_strings = n;
	c.strings = palloc(sizeof(char *) * (n + 1));
	c.string_lens = palloc(sizeof(size_t) * (n + 1));
	for (int i = 0; i < n; i++)
		c.strings[i] = TakeString(&r, &c.string_lens[i]);
	Take(&r, &n, sizeof(n));
	if (n < 0 || (size_t) n > len / sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("malformed lmgen request")));
	c.n_extra = n;
	c.extra = palloc(sizeof(char *) * (n + 1));
	c.extra_lens = palloc(sizeof(size_t) * (n + 1));
	for (int i = 0; i < n; i++)
		c.extra[i] = TakeString(&r, &c.extra_lens[i]);
	Take(&r, c.opt, sizeof(c.opt));
	/* the source tokens of a copy bias are the executor's to set (CallDecodings) */
	c.gen.sampling.copy_bias = 0.0f;
	c.gen.sampling.copy_ids = NULL;
	c.gen.sampling.n_copy_ids = 0;
	if (c.kind == LMGEN_CALL_GENERATE || c.kind == LMGEN_CALL_SUMMARIZE)
	{
		c.gen.stop = (const char *const *) c.strings;
		c.gen.n_stop = c.n_strings;
	}
	return c;
}
