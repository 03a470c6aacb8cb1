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
#include "call.h"
#include "call_batch.h"
#include "runtime.h"
#include "summary.h"
#include "sqlfuncs_common.h"

PG_FUNCTION_INFO_V1(lmgen_generate);
PG_FUNCTION_INFO_V1(lmgen_summarize);
PG_FUNCTION_INFO_V1(lmgen_generate_array);
PG_FUNCTION_INFO_V1(lmgen_summarize_array);

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

/*
 * generate(prompt text, max_tokens int, temperature real, top_p real,
 *          top_k int, seed bigint, stop text[], model text) RETURNS text
 */
Datum
lmgen_generate(PG_FUNCTION_ARGS)
{
	return CallFunction(fcinfo, GenerateCallOf, TextResult);
}

/* generate(prompts text[], ...same optional arguments...) RETURNS text[]: the prompts run together. */
Datum
lmgen_generate_array(PG_FUNCTION_ARGS)
{
	return CallArrayFunction(fcinfo, GenerateCallOf, TextResult);
}

/* A generate() call from its arguments; false for a NULL prompt (NULL result). */
bool
GenerateCallOf(FunctionCallInfo fcinfo, LmgenCall *c)
{
	lm_gen_params *p;

	if (PG_ARGISNULL(0))
		return false;
	*c = CallInit(LMGEN_CALL_GENERATE, ModelNameArg(fcinfo, 7));
	p = &c->gen;
	p->max_tokens = PG_ARGISNULL(1) ? 128 : PG_GETARG_INT32(1);
	CheckMaxTokens(p->max_tokens);
	p->sampling.temperature = RealArg(fcinfo, 2, "temperature", 0.0f, 0.0f, 100.0f);
	p->sampling.top_p = RealArg(fcinfo, 3, "top_p", 1.0f, 0.0f, 1.0f);
	if (!PG_ARGISNULL(4))
	{
		p->sampling.top_k = PG_GETARG_INT32(4);
		if (p->sampling.top_k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("top_k must be 0 (off) or positive, not %d", p->sampling.top_k)));
	}
	if (p->sampling.top_p == 0.0f)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_p must be greater than 0"),
				 errhint("Use temperature => 0 for greedy decoding.")));
	p->sampling.seed = PG_ARGISNULL(5) ? pg_prng_uint64(&pg_global_prng_state) : (uint64) PG_GETARG_INT64(5);
	if (!PG_ARGISNULL(6))
	{
		c->strings = TextArrayToUtf8(PG_GETARG_ARRAYTYPE_P(6), "stop string", false, &c->n_strings,
									 &c->string_lens);
		p->stop = (const char *const *) c->strings;
		p->n_stop = c->n_strings;
	}
	c->body = TextToUtf8(PG_GETARG_TEXT_PP(0), &c->body_len);
	return true;
}

/* The text result of a generate() or summarize() call. */
Datum
TextResult(const LmgenCall *c, StringInfo res)
{
	return PointerGetDatum(Utf8ToText(res->data, res->len));
}

/* The prompt of a generate() call: the text, through the chat template when the model has one. */
LmgenPrompt
GeneratePromptOf(LmgenModel *m, const LmgenCall *c)
{
	bool		use_chat = m->chat != LM_CHAT_UNKNOWN;

	return FitPrompt(m, GeneratePrompt, &use_chat, c->body, c->body_len, c->gen.max_tokens, "the answer", "ask for fewer tokens", 1);
}

/*
 * summarize(body text, max_tokens int, model text, max_words int, style text,
 *           examples text) RETURNS text (the new arguments come last, so calls naming the model by
 * position keep working)
 */
Datum
lmgen_summarize(PG_FUNCTION_ARGS)
{
	return CallFunction(fcinfo, SummarizeCallOf, TextResult);
}

/* summarize(bodies text[], ...same optional arguments...) RETURNS text[]: the bodies run together. */
Datum
lmgen_summarize_array(PG_FUNCTION_ARGS)
{
	return CallArrayFunction(fcinfo, SummarizeCallOf, TextResult);
}

/* A summarize() call from its arguments; false for a NULL body (NULL result). */
bool
SummarizeCallOf(FunctionCallInfo fcinfo, LmgenCall *c)
{
	size_t		len;
	char	   *body;

	if (PG_ARGISNULL(0))
		return false;
	*c = CallInit(LMGEN_CALL_SUMMARIZE, ModelNameArg(fcinfo, 2));
	c->gen.max_tokens = PG_ARGISNULL(1) ? 128 : PG_GETARG_INT32(1);
	CheckMaxTokens(c->gen.max_tokens);
	c->opt[LMGEN_OPT_MAX_WORDS] = PG_ARGISNULL(3) ? SUMMARY_DEFAULT_MAX_WORDS : PG_GETARG_INT32(3);
	CheckMaxWords(c->opt[LMGEN_OPT_MAX_WORDS]);
	c->opt[LMGEN_OPT_STYLE] = PG_ARGISNULL(4) ? SUMMARY_SENTENCE :
		SummaryStyleFromName(text_to_cstring(PG_GETARG_TEXT_PP(4)));
	body = TextToUtf8(PG_GETARG_TEXT_PP(0), &len);
	c->body = SummarySource(body, len, &c->body_len);
	c->opt[LMGEN_OPT_CANDIDATES] = c->opt[LMGEN_OPT_STYLE] == SUMMARY_HEADLINE ? lmgen_headline_candidates : 1;
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
		SummaryChooseExamples(fcinfo, 5, c);
	return true;
}

/* The summary settings of a summarize() call of model m. */
static SummaryRequest
SummaryRequestOf(LmgenModel *m, const LmgenCall *c)
{
	SummaryRequest r;

	r.max_words = c->opt[LMGEN_OPT_MAX_WORDS];
	r.style = (SummaryStyle) c->opt[LMGEN_OPT_STYLE];
	r.n_shots = c->opt[LMGEN_OPT_SUMMARY_SHOTS];
	if (r.n_shots < 0 || r.n_shots > SUMMARY_EXAMPLES_K || c->n_extra != 2 * r.n_shots)
		elog(ERROR, "summarize call has a malformed example list");
	r.shots = c->extra;
	if (c->opt[LMGEN_OPT_CANDIDATES] < 0 || c->opt[LMGEN_OPT_CANDIDATES] > LMGEN_MAX_GENERATIONS)
		elog(ERROR, "summarize call asks for %d candidates", c->opt[LMGEN_OPT_CANDIDATES]);
	r.n_candidates = r.style == SUMMARY_HEADLINE ? SummaryCandidates(m, c->opt[LMGEN_OPT_CANDIDATES]) : 1;
	return r;
}

/* The prompt of a summarize() call. */
LmgenPrompt
SummarizePromptOf(LmgenModel *m, const LmgenCall *c)
{
	SummaryRequest r = SummaryRequestOf(m, c);

	return FitPrompt(m, SummaryPrompt, &r, c->body, c->body_len, c->gen.max_tokens, "the summary",
					 "ask for fewer tokens", 3);
}

/* The generations a summarize() call runs: a headline's candidates, else one. */
int
SummarizeGenerationsOf(LmgenModel *m, const LmgenCall *c)
{
	return SummaryRequestOf(m, c).n_candidates;
}

/* The decoding settings of a summarize() call's n generations: its style's stops, the word limit, the copy bias. */
void
SummarizeDecodingOf(LmgenModel *m, const LmgenCall *c, int n, lm_gen_params *p)
{
	SummaryRequest r = SummaryRequestOf(m, c);

	if (n != r.n_candidates)
		elog(ERROR, "summarize call runs %d generations, not %d", n, r.n_candidates);
	SummaryDecoding(m, &r, c->body, c->body_len, p);
}

/* A summary from the generated texts: in its style, ending at a complete phrase, the candidates' choice. */
void
SummarizeFinish(LmgenModel *m, const LmgenCall *c, const char *const *texts, const size_t *lens, int n,
				StringInfo buf)
{
	SummaryRequest r = SummaryRequestOf(m, c);
	lm_gen_params p = c->gen;
	size_t		len;
	char	   *summary;

	p.max_words = SummaryGeneratedWords(&r);
	summary = SummaryChoose(m, &r, &p, c->body, c->body_len, texts, lens, n, &len);
	appendBinaryStringInfo(buf, summary, len);
}
