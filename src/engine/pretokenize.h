/*
 * pretokenize.h — the regex pre-tokenizers of byte-level BPE vocabularies,
 * written by hand (no regex library).
 *
 * A pre-tokenizer cuts text into words before BPE merges run inside each
 * word.  A vocabulary's tokenizer.ggml.pre names a list of stages; each stage
 * is one regular expression applied to every piece the previous stages made,
 * and both its matches and the text between them become pieces (so nothing
 * is ever dropped).  Matching follows ECMAScript rules: leftmost match,
 * ordered alternation, greedy quantifiers with backtracking.  \p{X} tests the
 * Unicode general category and \s the White_Space property (unicode.h).
 */
#ifndef LM_PRETOKENIZE_H
#define LM_PRETOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Pre-tokenizer families (one per distinct list of stages). */
typedef enum lm_pretok_kind
{
	LM_PRETOK_DEFAULT = 0,		/* no or "default" pre name */
	LM_PRETOK_GPT2,				/* gpt-2, mpt, olmo, phi-2, ... */
	LM_PRETOK_LLAMA3,			/* llama-bpe / llama3, dbrx, smaug, glm4 */
	LM_PRETOK_QWEN2,			/* qwen2, stablelm2, deepseek-r1-qwen */
	LM_PRETOK_STARCODER,		/* starcoder, refact, smollm, command-r, ... */
	LM_PRETOK_FALCON,
	LM_PRETOK_DEEPSEEK_CODER,
	LM_PRETOK_DEEPSEEK_LLM
} lm_pretok_kind;

/* Growable list of piece lengths, in code points. */
typedef struct lm_pretok_out
{
	uint32_t   *len;			/* length of each piece, in code points */
	size_t		n;				/* pieces so far */
	size_t		cap;			/* allocated entries */
} lm_pretok_out;

/*
 * Split cps[0..n) (code points, with their LM_UC_* flags in fl) into pieces.
 * Appends piece lengths to out (which the caller frees); returns 0, or -1
 * when memory runs out.
 */
extern int	lm_pretokenize(lm_pretok_kind kind, const uint32_t *cps, const uint16_t *fl, size_t n,
						   lm_pretok_out *out);

/*
 * Code points past a piece's end that can change where the piece ends: the
 * scanners look at most 3 code points ahead ('re, \p{N}{3}, ...).
 */
#define LM_PRETOK_LOOKAHEAD 8

/*
 * Split the start of a longer text: cps[0..n) is a window whose text goes on
 * after it when more is true.  Appends the pieces of the longest prefix that
 * the text after the window cannot change, and sets *done to its length in
 * code points: the prefix ends on a boundary of the first stage (the regex
 * run over the whole text) at least LM_PRETOK_LOOKAHEAD code points before
 * the window's end, so the first stage restarted there gives the same pieces
 * as one run over the whole text, and later stages only see first-stage
 * pieces.  *done is 0 when there is no such boundary (call again with a
 * longer window).  With more false the whole window is split.  Returns 0, or
 * -1 when memory runs out.
 */
extern int	lm_pretokenize_prefix(lm_pretok_kind kind, const uint32_t *cps, const uint16_t *fl, size_t n,
								  bool more, lm_pretok_out *out, size_t *done);

#endif							/* LM_PRETOKENIZE_H */
