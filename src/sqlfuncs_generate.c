/*
 * sqlfuncs_generate.c — generate() and summarize().
 *
 * generate() continues a prompt: through the model's chat template when the
 * model file has one (an instruction model answers the prompt), as plain
 * text otherwise.  summarize() asks for a short factual summary through the
 * chat format (the template's, or the one the architecture implies) and
 * decodes greedily so the same row always gets the same summary; its
 * prompts, decoding settings and answer shaping are in summary.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "lmgen.h"
#include "runtime.h"
#include "summary.h"
#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_generate);
PG_FUNCTION_INFO_V1(lmgen_summarize);

/* Build a generate() prompt: arg points at a bool "use the chat template". */
static LmgenPrompt
GeneratePrompt(LmgenModel *m, void *arg, const char *text, size_t len)
{
	return BuildInstructionPrompt(m, NULL, text, len, *(bool *) arg);
}

/* Real argument in [lo, hi] or ERROR naming it. */
static float
RealArg(FunctionCallInfo fcinfo, int argno, const char *name, float dflt, float lo, float hi)
{
	float		v;

	if (PG_ARGISNULL(argno))
		return dflt;
	v = PG_GETARG_FLOAT4(argno);
	if (!(v >= lo && v <= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %g and %g, not %g", name, lo, hi, v)));
	return v;
}

/* Stop strings from a text[] argument as UTF-8 C strings; sets *n. */
static const char **
StopStrings(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count;
	const char **out;
	int			k = 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	out = palloc(sizeof(char *) * (count + 1));
	for (int i = 0; i < count; i++)
	{
		size_t		len;
		const char *s;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("stop string %d is NULL", i + 1)));
		s = TextToUtf8(DatumGetTextPP(elems[i]), &len);
		/* a copy: s may point into the array, with no NUL after it */
		out[k] = pnstrdup(s, len);
		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stop string %d is empty", i + 1)));
		k++;
	}
	*n = k;
	return out;
}

/*
 * generate(prompt text, max_tokens int, temperature real, top_p real,
 *          top_k int, seed bigint, stop text[], model text) RETURNS text
 */
Datum
lmgen_generate(PG_FUNCTION_ARGS)
{
	LmgenModel *m;
	lm_gen_params p = lm_gen_default_params();
	LmgenPrompt prompt;
	size_t		len;
	char	   *body;
	bool		use_chat;
	char	   *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	p.max_tokens = PG_ARGISNULL(1) ? 128 : PG_GETARG_INT32(1);
	CheckMaxTokens(p.max_tokens);
	p.sampling.temperature = RealArg(fcinfo, 2, "temperature", 0.0f, 0.0f, 100.0f);
	p.sampling.top_p = RealArg(fcinfo, 3, "top_p", 1.0f, 0.0f, 1.0f);
	if (!PG_ARGISNULL(4))
	{
		p.sampling.top_k = PG_GETARG_INT32(4);
		if (p.sampling.top_k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("top_k must be 0 (off) or positive, not %d", p.sampling.top_k)));
	}
	if (p.sampling.top_p == 0.0f)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_p must be greater than 0"),
				 errhint("Use temperature => 0 for greedy decoding.")));
	p.sampling.seed = PG_ARGISNULL(5) ? pg_prng_uint64(&pg_global_prng_state) : (uint64) PG_GETARG_INT64(5);
	if (!PG_ARGISNULL(6))
		p.stop = StopStrings(PG_GETARG_ARRAYTYPE_P(6), &p.n_stop);

	m = ModelFromArg(fcinfo, 7);
	body = TextToUtf8(PG_GETARG_TEXT_PP(0), &len);
	use_chat = m->chat != LM_CHAT_UNKNOWN;
	prompt = FitPrompt(m, GeneratePrompt, &use_chat, body, len, p.max_tokens, "the answer", "ask for fewer tokens", 1);
	out = RunGeneration(m, &prompt, &p, &len);
	PG_RETURN_TEXT_P(Utf8ToText(out, len));
}

/*
 * summarize(body text, max_tokens int, model text, max_words int, style text)
 * RETURNS text (the new arguments come last, so calls naming the model by
 * position keep working)
 */
Datum
lmgen_summarize(PG_FUNCTION_ARGS)
{
	LmgenModel *m;
	lm_gen_params p = lm_gen_default_params();
	SummaryRequest r;
	LmgenPrompt prompt;
	size_t		len;
	char	   *body;
	char	   *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	p.max_tokens = PG_ARGISNULL(1) ? 128 : PG_GETARG_INT32(1);
	CheckMaxTokens(p.max_tokens);
	r.max_words = PG_ARGISNULL(3) ? SUMMARY_DEFAULT_MAX_WORDS : PG_GETARG_INT32(3);
	CheckMaxWords(r.max_words);
	r.style = PG_ARGISNULL(4) ? SUMMARY_SENTENCE : SummaryStyleFromName(text_to_cstring(PG_GETARG_TEXT_PP(4)));
	m = ModelFromArg(fcinfo, 2);
	body = TextToUtf8(PG_GETARG_TEXT_PP(0), &len);
	body = SummarySource(body, len, &len);
	prompt = FitPrompt(m, SummaryPrompt, &r, body, len, p.max_tokens, "the summary", "ask for fewer tokens", 3);
	SummaryDecoding(m, &r, body, len, &p);
	out = RunGeneration(m, &prompt, &p, &len);
	out = SummaryShape(m, &r, &p, out, &len);
	PG_RETURN_TEXT_P(Utf8ToText(out, len));
}
