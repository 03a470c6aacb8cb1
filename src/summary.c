/*
 * summary.c — summarize() around the model call (see summary.h).
 *
 * What users see is decided as much here as by the model.  The source's
 * hard-wrapped lines are joined first (a line break inside a sentence makes
 * small models stop there).  The prompt asks for the style; decoding is
 * greedy, stops at the word limit (engine: lm_gen_params.max_words) and
 * prefers the source's own tokens through a small copy bias (engine:
 * lm_sampler_params.copy_bias), which on the public Debian descriptions
 * raised the share of summary words found in the source from about 0.91 to
 * 0.99 at no cost in ROUGE-L (README, "Summaries").  The answer is then
 * ended at a complete phrase (summary_text.c): never "convert X to various".
 *
 * Headlines are prompted differently, by example rather than by instruction:
 * three (description, Debian synopsis) pairs from the training file, then
 * the text, in a plain completion format ("Description: ...\nSynopsis:")
 * without the chat template, for every model.  Measured on a fixed 70-row
 * development sample of debian_packages_train.csv (never on the public
 * file; quality.py --dev 70), with the shaping below: the instruction
 * prompt scored ROUGE-L 0.272 on SmolLM2 (a tie with the prompt kept),
 * while on Gemma 3 it had scored about half of SmolLM2's on the public
 * file (Gemma answers with prose about the text); the plain three-shot
 * prompt 0.268 on SmolLM2 and 0.284 on Gemma 3 (copy bias 4; the same
 * examples as chat turns: 0.243 on SmolLM2; a fourth plain example:
 * 0.213).  One prompt for both models, the one where both do their best
 * together.  Its prefix (the examples, about 175 tokens)
 * is the same for every row, so the worker's scheduler computes it once and
 * shares it (lmgen.worker_share_prefixes): on all 200 public rows a
 * headline row costs 3 % (SmolLM2) and 10 % (Gemma 3) more than with the
 * instruction prompt, and ROUGE-L went from 0.243 to 0.247 (SmolLM2) and
 * from 0.160 to 0.258 (Gemma 3), faithfulness 0.98 for both (README,
 * "Summaries").  The headline shaping drops a leading article ("A Dutch
 * dictionary" -> "Dutch dictionary", as synopses are written) and cuts a
 * small model's loops ("package-based package-based ...").
 *
 * With examples => 'SELECT text, summary ...', the three fixed examples
 * give way to the 4 rows of that query most similar to the text, chosen
 * by classify()'s retrieval (classify_prompt.c, classify_embed.c: minilm
 * embeddings or word overlap), in the same plain format, the most similar
 * last, next to the text (on 70 development rows of the Debian test file,
 * Gemma 3: ROUGE-L 0.345 against 0.324 with the most similar first, 0.341
 * with 3 examples, 0.274 with each example cut to its first sentence).
 * These prompts differ per row, so no prefix is shared.
 *
 * A headline is then chosen, not just decoded: the greedy generation and
 * lmgen.headline_candidates - 1 sampled ones (fixed seeds, so a row always
 * gets the same) after one evaluation of the prompt, and the source's own
 * first sentence shaped as a headline (of 6 and of 10 words), vote; the
 * candidate sharing most words with the others wins (summary_select.c).
 * Greedy decoding of a small model picks one phrasing among several
 * plausible ones, and the first sentence alone, shaped, scores about as
 * well as the model (0.265 against 0.258 on the public file); agreement
 * between them drops each one's outliers.  The sampled generations share
 * the prompt's KV, so a headline costs its prompt once and a few more
 * decode steps; the prompt holds only the text's first 40 words.  Chosen
 * on 250 development rows of the test file (quality.py --dev 250 --dev-set
 * test; the variants with a throwaway driver over the engine, figures at
 * the constants below); the server's figures are in the README
 * ("Headlines chosen among candidates").
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "classify_prompt.h"
#include "lmgen.h"
#include "summary.h"
#include "summary_select.h"
#include "summary_text.h"
#include "sqlfuncs_common.h"

/* Logit bonus for tokens of the source (measured; README, "Summaries"). */
#define SUMMARY_COPY_BIAS 2.0f

/*
 * The same for headlines: on the development sample, 4 against 2 gave the
 * same ROUGE-L on SmolLM2 (0.268) with more words from the source (0.975
 * against 0.961), and 0.284 against 0.279 on Gemma 3.
 */
#define HEADLINE_COPY_BIAS 4.0f

/*
 * The same for headlines with retrieved examples, whose synopses lead the
 * model to words of their own: on 70 development rows (Gemma 3), 4 gave
 * ROUGE-L 0.345 with 0.943 of the headline's content words in the source,
 * 5 gave 0.338 with 0.955, 6 0.332 with 0.950 (before loops inside a
 * word were cut; README, "Headlines with retrieved examples").
 */
#define HEADLINE_EXAMPLES_COPY_BIAS 5.0f

/*
 * Words a headline keeps at most (fewer when max_words is smaller), ended
 * at a complete phrase: synopses average 6 words, and on the development
 * sample a cap of 8 scored higher than 6 or 10 for both models (README,
 * "Summaries").
 */
#define HEADLINE_MAX_WORDS 8

/*
 * Words a headline's generations stop at (fewer when max_words is
 * smaller): the shaping keeps at most HEADLINE_MAX_WORDS of them after
 * dropping a subject and copula in front ("X is a ..."), so words past
 * these are never kept and generating them only costs time.
 */
#define HEADLINE_GENERATED_WORDS 12

/*
 * Sampled headline candidates: temperature, top-k and top-p of generations
 * 1 and up (generation 0 is greedy); generation k draws with seed k, so a
 * row always gets the same candidates.  SmolLM2, 4 generations, ROUGE-L on
 * 500 development rows of the training file: 0.309 at temperature 0.7,
 * 0.315 at 1.0 with top-p 0.9, 0.310 at 1.0 with top-p 0.8, 0.314 at 1.3
 * with top-p 0.9 (250 rows of the test file: 0.309, 0.313; at 0.5: 0.293).
 */
#define HEADLINE_SAMPLE_TEMPERATURE 1.0f
#define HEADLINE_SAMPLE_TOP_K 40
#define HEADLINE_SAMPLE_TOP_P 0.9f

/*
 * The source's own first sentence is a candidate too, shaped as a headline
 * twice: of at most 6 and of at most 10 words; each weighs as much as a
 * generation.  On 250 development rows (Gemma 3, a throwaway driver over
 * the engine, 2 / 4 generations): ROUGE-L 0.286 / 0.297 with these two,
 * 0.274 / 0.291 with 6 and 8 words, 0.282 / 0.285 with 8 alone, 0.251 /
 * 0.272 with none; the greedy headline alone 0.251.
 */
#define HEADLINE_SOURCE_SHORT_WORDS 6
#define HEADLINE_SOURCE_LONG_WORDS 10

/*
 * lmgen.headline_candidates = 0 (auto): as many generations as keep a
 * headline within a quarter of a sentence summary's time.  Each generated
 * token costs the layers and the vocabulary projection, a prompt token the
 * layers alone: SmolLM2's projection (49152 x 576) is a quarter of its
 * layers' weights, and with 4 generations a headline costs 1.22 times a
 * sentence summary per row (public file, 2 threads); Gemma 3's (262144 x
 * 640) is 1.7 times its layers', and 2 generations already cost 1.32
 * times, so it gets the greedy one (README, "Headlines chosen among
 * candidates").
 */
#define HEADLINE_AUTO_CANDIDATES_SMALL_VOCAB 4
#define HEADLINE_AUTO_CANDIDATES_LARGE_VOCAB 1

/*
 * Description -> synopsis pairs of debian_packages_train.csv that open every
 * headline prompt, in a plain "Description: ... / Synopsis: ..." completion
 * format (see the design note above; test/bench/quality.py --dev leaves
 * these packages out of its sample).
 */
static const struct
{
	const char *text;			/* the description, lines joined */
	const char *headline;		/* its Debian synopsis */
}			headline_examples[] =
{
	{"Blur-effect is an offscreen image blurring utility, based on efficient Gaussian blur with linear "
		"sampling. This package is part of DDE (Deepin Desktop Environment).",
	"Offscreen Image Blurring utility"},
	{"httpfs2 is a FUSE based filesystem for mounting http or https URLS as files in the filesystem. "
		"There is no notion of listable directories in http so only a single URL can be mounted. "
		"The server must be able to send byte ranges.",
	"FUSE filesystem for mounting files from http servers"},
	{"MiceAmaze is a video game that features a maze with mice and snakes. The goal is to bring the "
		"most mice to your house by placing arrows on the maze floor. But beware the snakes that want "
		"to eat them!",
	"video game with mice in a maze"},
};

/*
 * The text goes into a headline prompt as the retrieved examples' texts
 * do: its first CLASSIFY_EXAMPLE_WORDS (40) words.  A synopsis comes from
 * a description's opening, and the rest costs prompt time: on 250
 * development rows (Gemma 3, greedy, a throwaway driver over the engine)
 * ROUGE-L 0.261 with 40 words, 0.255 with 30, 0.251 with the whole text.
 */
#define HEADLINE_SOURCE_WORDS CLASSIFY_EXAMPLE_WORDS

/* The examples go in a prompt when they take at most 1/4 of the model's context. */
#define HEADLINE_EXAMPLES_CONTEXT_SHARE 4

/* Style names, in SummaryStyle order. */
static const char *const style_names[] = {"sentence", "headline", "bullets"};

/* The style named by a style argument. */
SummaryStyle
SummaryStyleFromName(const char *name)
{
	for (int i = 0; i < lengthof(style_names); i++)
		if (pg_strcasecmp(name, style_names[i]) == 0)
			return (SummaryStyle) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown summary style \"%s\"", name),
			 errhint("Use 'sentence', 'headline' or 'bullets'.")));
	pg_unreachable();
}

/* ERROR unless max_words lies in 1..SUMMARY_MAX_MAX_WORDS. */
void
CheckMaxWords(int max_words)
{
	if (max_words < 1 || max_words > SUMMARY_MAX_MAX_WORDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_words must be between 1 and %d, not %d", SUMMARY_MAX_MAX_WORDS, max_words)));
}

/* The source with hard-wrapped lines joined. */
char *
SummarySource(const char *body, size_t len, size_t *out_len)
{
	char	   *out = palloc(len + 1);

	*out_len = lm_text_unwrap(body, len, out);
	return out;
}

/* The instruction of a sentence or bullets for a chat model. */
static void
AppendInstruction(StringInfo buf, const SummaryRequest *r)
{
	if (r->style == SUMMARY_BULLETS)
		appendStringInfo(buf, "Summarize the following text in at most %d short bullet points, "
						 "one per line, each starting with \"- \". Reply with the bullet points only.",
						 LM_SUMMARY_MAX_BULLETS);
	else
		appendStringInfo(buf, "Summarize the following text in one sentence of at most %d words. "
						 "Reply with the summary only.", r->max_words);
}

/* The (text, summary) examples most like the source, into the call. */
void
SummaryChooseExamples(FunctionCallInfo fcinfo, int examples_arg, LmgenCall *c)
{
	ClassifyPromptSpec spec;
	int			k;

	if (c->opt[LMGEN_OPT_STYLE] != SUMMARY_HEADLINE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("summarize() takes examples only with style 'headline'"),
				 errhint("Pass style => 'headline', or leave examples out.")));
	spec = ChooseExamples(fcinfo, examples_arg, 0, NULL, NULL, c->body, c->body_len);
	k = Min(spec.n_shots, SUMMARY_EXAMPLES_K);
	c->extra = palloc(sizeof(char *) * 2 * Max(k, 1));
	c->extra_lens = palloc(sizeof(size_t) * 2 * Max(k, 1));
	for (int i = 0; i < k; i++)
	{
		c->extra[2 * i] = spec.pool->text[spec.shots[i]];
		c->extra[2 * i + 1] = spec.pool->answer[spec.shots[i]];
	}
	for (int i = 0; i < 2 * k; i++)
		c->extra_lens[i] = strlen(c->extra[i]);
	c->n_extra = 2 * k;
	c->opt[LMGEN_OPT_SUMMARY_SHOTS] = k;
}

/*
 * The headline prompt: the examples (the call's, the most similar last,
 * next to the text; else the built-in three), then the text's first
 * HEADLINE_SOURCE_WORDS words (on one line) waiting for its synopsis.  A
 * model whose context the examples would take more than a quarter of gets
 * the text alone in the same format.
 */
static LmgenPrompt
HeadlinePrompt(LmgenModel *m, const SummaryRequest *r, const char *text, size_t len)
{
	StringInfoData buf;
	int			n;

	initStringInfo(&buf);
	if (r->n_shots > 0)
		for (int i = r->n_shots - 1; i >= 0; i--)
			appendStringInfo(&buf, "Description: %s\nSynopsis: %s\n\n", r->shots[2 * i], r->shots[2 * i + 1]);
	else
		for (int i = 0; i < lengthof(headline_examples); i++)
			appendStringInfo(&buf, "Description: %s\nSynopsis: %s\n\n",
							 headline_examples[i].text, headline_examples[i].headline);
	pfree(TokenizeText(m, buf.data, buf.len, false, false, &n));
	if (n > m->model->cfg.n_ctx_train / HEADLINE_EXAMPLES_CONTEXT_SHARE)
		resetStringInfo(&buf);
	appendStringInfoString(&buf, "Description: ");
	len = lm_text_first_words(text, len, HEADLINE_SOURCE_WORDS);
	for (size_t i = 0; i < len; i++)
		appendStringInfoChar(&buf, text[i] == '\n' ? ' ' : text[i]);
	appendStringInfoString(&buf, "\nSynopsis:");
	return BuildInstructionPrompt(m, NULL, buf.data, buf.len, false);
}

/* Build a summarize() prompt around the text. */
LmgenPrompt
SummaryPrompt(LmgenModel *m, void *arg, const char *text, size_t len)
{
	const SummaryRequest *r = arg;
	StringInfoData buf;

	if (r->style == SUMMARY_HEADLINE)
		return HeadlinePrompt(m, r, text, len);
	initStringInfo(&buf);
	if (m->chat_fallback != LM_CHAT_UNKNOWN)
	{
		AppendInstruction(&buf, r);
		appendStringInfoString(&buf, "\n\n");
		appendBinaryStringInfo(&buf, text, len);
		return BuildInstructionPrompt(m, NULL, buf.data, buf.len, true);
	}
	/* a model without a chat format gets a plain-text cue */
	appendStringInfoString(&buf, "Text: ");
	appendBinaryStringInfo(&buf, text, len);
	appendStringInfoString(&buf, r->style == SUMMARY_BULLETS ? "\n\nKey points:\n" : "\n\nOne-sentence summary:");
	return BuildInstructionPrompt(m, NULL, buf.data, buf.len, false);
}

static const char *const line_stop[] = {"\n"};
static const char *const list_stop[] = {"\n\n"};

/* The generations a headline of model m is chosen among: the setting (lmgen.headline_candidates), or for 0 (auto) by the model's shape. */
int
SummaryCandidates(LmgenModel *m, int setting)
{
	const lm_model_config *cfg = &m->model->cfg;
	double		layers,
				projection;

	if (setting > 0)
		return setting;
	layers = (double) cfg->n_layer *
		((double) cfg->n_embd * cfg->head_dim_k * (cfg->n_head + cfg->n_head_kv) +
		 (double) cfg->n_embd * cfg->head_dim_v * (cfg->n_head_kv + cfg->n_head) +
		 3.0 * cfg->n_embd * cfg->n_ff);
	projection = (double) cfg->n_vocab * cfg->n_embd;
	return projection < layers ? HEADLINE_AUTO_CANDIDATES_SMALL_VOCAB : HEADLINE_AUTO_CANDIDATES_LARGE_VOCAB;
}

/* Words a summary's generation stops at. */
int
SummaryGeneratedWords(const SummaryRequest *r)
{
	return r->style == SUMMARY_HEADLINE ? Min(r->max_words, HEADLINE_GENERATED_WORDS) : r->max_words;
}

/* Decoding settings of a summary's generations. */
void
SummaryDecoding(LmgenModel *m, const SummaryRequest *r, const char *src, size_t len, lm_gen_params *p)
{
	int			n;

	/* a sentence or headline is one line; bullets end at a blank line */
	p->stop = r->style == SUMMARY_BULLETS ? list_stop : line_stop;
	p->n_stop = 1;
	p->max_words = SummaryGeneratedWords(r);
	p->sampling.copy_bias = r->style == SUMMARY_HEADLINE ? HEADLINE_COPY_BIAS : SUMMARY_COPY_BIAS;
	if (r->style == SUMMARY_HEADLINE && r->n_shots > 0)
		p->sampling.copy_bias = HEADLINE_EXAMPLES_COPY_BIAS;
	p->sampling.copy_ids = TokenizeText(m, src, len, false, false, &n);
	p->sampling.n_copy_ids = n;
	for (int k = 1; k < r->n_candidates; k++)
	{
		p[k] = p[0];
		p[k].sampling.temperature = HEADLINE_SAMPLE_TEMPERATURE;
		p[k].sampling.top_k = HEADLINE_SAMPLE_TOP_K;
		p[k].sampling.top_p = HEADLINE_SAMPLE_TOP_P;
		p[k].sampling.seed = k;
	}
}

/* How the generation ended: a limit (words, tokens) or by itself. */
static lm_text_end
SummaryEnd(LmgenModel *m, const lm_gen_params *p, const char *out, size_t len)
{
	int			n;

	if (lm_text_count_words(out, len) >= p->max_words)
		return LM_TEXT_END_WORD;
	pfree(TokenizeText(m, out, len, false, false, &n));
	return n >= p->max_tokens - 1 ? LM_TEXT_END_TOKEN : LM_TEXT_END_NATURAL;
}

/*
 * Text in a style, ending at a complete phrase; end says how its
 * generation ended; a headline keeps at most headline_words words.
 */
static char *
ShapeTextIn(const SummaryRequest *r, int headline_words, lm_text_end end, char *out, size_t *len)
{
	size_t		start = 0,
				sub;
	char	   *list;

	switch (r->style)
	{
		case SUMMARY_SENTENCE:
			/*
			 * one sentence: a small model that goes on mostly repeats
			 * itself; it is completed again, since a sentence that ends
			 * inside a bracket the next sentence closes is cut there
			 */
			*len = lm_summary_complete(out, *len, end, &start);
			*len = lm_text_first_sentence(out + start, *len);
			*len = lm_summary_complete(out + start, *len, LM_TEXT_END_NATURAL, &sub);
			start += sub;
			break;
		case SUMMARY_HEADLINE:
			*len = lm_summary_complete(out, *len, end, &start);
			*len = lm_summary_headline(out + start, *len, &sub);
			start += sub;
			if (lm_text_count_words(out + start, *len) > headline_words)
			{
				*len = lm_text_first_words(out + start, *len, headline_words);
				*len = lm_summary_complete(out + start, *len, LM_TEXT_END_WORD, &sub);
				start += sub;
			}
			return out + start;
		case SUMMARY_BULLETS:
			list = palloc(*len + 3 * LM_SUMMARY_MAX_BULLETS + 1);
			*len = lm_summary_bullets(out, *len, end, list);
			return list;
	}
	return out + start;
}

/* Text in a style, ending at a complete phrase (a headline of at most HEADLINE_MAX_WORDS words). */
static char *
ShapeText(const SummaryRequest *r, lm_text_end end, char *out, size_t *len)
{
	return ShapeTextIn(r, Min(r->max_words, HEADLINE_MAX_WORDS), end, out, len);
}

/*
 * The source's own beginning in the summary's style (the answer of last
 * resort, and candidates of the vote): its first sentence, or its first
 * max_words words when that is longer; a headline of at most
 * headline_words words.
 */
static char *
SourceInStyle(const SummaryRequest *r, int headline_words, const char *src, size_t src_len, size_t *len)
{
	char	   *copy = pnstrdup(src, src_len);
	size_t		n = lm_text_first_sentence(copy, src_len);

	if (lm_text_count_words(copy, n) <= r->max_words)
	{
		*len = n;
		return ShapeTextIn(r, headline_words, LM_TEXT_END_NATURAL, copy, len);
	}
	*len = lm_text_first_words(copy, n, r->max_words);
	return ShapeTextIn(r, headline_words, LM_TEXT_END_WORD, copy, len);
}

/*
 * The summary from its generations.  One answer is shaped; an answer that
 * shapes to nothing (the model stopped at once, or said nothing but a
 * subject and a dangling clause: Gemma 3 left 2 of the 200 public
 * headlines empty) is replaced by the source's own beginning in the same
 * style, so a summary of a text with words is never empty.  A headline's
 * generations are shaped and vote, with the source's first sentence shaped
 * as a headline of at most 6 and of at most 10 words, for the one sharing
 * most words with the others (lm_summary_consensus; ties go to the greedy
 * answer).  With retrieved examples the generations vote among themselves:
 * the examples' synopses carry what the text's own sentence would, and two
 * cuts of that sentence would outvote a single generation every time.
 */
char *
SummaryChoose(LmgenModel *m, const SummaryRequest *r, const lm_gen_params *limits, const char *src,
			  size_t src_len, const char *const *texts, const size_t *lens, int n, size_t *len)
{
	const char *cand[LMGEN_MAX_GENERATIONS + 2];
	size_t		cand_len[LMGEN_MAX_GENERATIONS + 2];
	int			headline_words = Min(r->max_words, HEADLINE_MAX_WORDS);
	int			n_cand;
	int			best;

	if (n < 1 || n > LMGEN_MAX_GENERATIONS)
		elog(ERROR, "a summary needs 1 to %d generations, not %d", LMGEN_MAX_GENERATIONS, n);
	for (int k = 0; k < n; k++)
	{
		cand_len[k] = lens[k];
		cand[k] = ShapeText(r, SummaryEnd(m, limits, texts[k], lens[k]), pnstrdup(texts[k], lens[k]),
							&cand_len[k]);
	}
	n_cand = n;
	if (r->style == SUMMARY_HEADLINE && r->n_shots == 0 && lm_text_count_words(src, src_len) > 0)
	{
		cand[n_cand] = SourceInStyle(r, Min(r->max_words, HEADLINE_SOURCE_SHORT_WORDS), src, src_len,
									 &cand_len[n_cand]);
		n_cand++;
		cand[n_cand] = SourceInStyle(r, Min(r->max_words, HEADLINE_SOURCE_LONG_WORDS), src, src_len,
									 &cand_len[n_cand]);
		n_cand++;
	}
	best = n_cand > 1 ? lm_summary_consensus(cand, cand_len, NULL, n_cand) : 0;
	if (lm_text_count_words(cand[best], cand_len[best]) > 0 || lm_text_count_words(src, src_len) == 0)
	{
		*len = cand_len[best];
		return pnstrdup(cand[best], cand_len[best]);
	}
	return SourceInStyle(r, headline_words, src, src_len, len);
}
