/*
 * summary_text.h — shaping text around a summary: the source's whitespace
 * normalised before prompting (hard-wrapped lines joined), and the model's
 * answer ended at a complete phrase, turned into a headline or into bullet
 * lines.  Plain byte-level work on UTF-8 text (only ASCII bytes are ever
 * looked at as punctuation or spaces, so multi-byte characters stay whole);
 * no model involved, so the rules are the same everywhere and testable
 * without one.
 */
#ifndef LM_SUMMARY_TEXT_H
#define LM_SUMMARY_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* How a generated text ended, as far as completing its last phrase goes. */
typedef enum lm_text_end
{
	LM_TEXT_END_NATURAL,		/* the model stopped by itself */
	LM_TEXT_END_WORD,			/* a word limit stopped it after a whole word */
	LM_TEXT_END_TOKEN			/* a token limit stopped it, maybe inside a word */
} lm_text_end;

/* Most bullet lines a summary in bullet style keeps. */
#define LM_SUMMARY_MAX_BULLETS 3

/*
 * Normalise whitespace: lines of a paragraph are joined with one space (a
 * hard-wrapped text becomes one line per paragraph), paragraphs (separated
 * by blank lines or Debian's " ." lines) and list items (lines starting
 * with "* ", "- ", "+ ", "o " or "1. ") each start a new line, other runs of
 * spaces and tabs become one space.  Writes at most len + 1 bytes (NUL
 * included) to out; returns the new length.
 */
extern size_t lm_text_unwrap(const char *in, size_t len, char *out);

/* Words in a text: runs of bytes other than ASCII whitespace. */
extern int	lm_text_count_words(const char *s, size_t len);

/*
 * Length of the first sentence of a text: through its first '.', '!' or '?'
 * that follows two words or more and is followed by whitespace or the end,
 * else to the first line break, else all of it.
 */
extern size_t lm_text_first_sentence(const char *s, size_t len);

/* Length of the first n words of a text (through the end of the n-th word). */
extern size_t lm_text_first_words(const char *s, size_t len, int n);

/*
 * Whether a text ends in the middle of a phrase: on a word that needs a
 * continuation (an article, preposition, conjunction, auxiliary or
 * determiner: "to", "the", "and", "various", ...), on a comma, colon,
 * semicolon, dash or slash, or with a bracket or quote left open.
 */
extern bool lm_text_ends_mid_phrase(const char *s, size_t len);

/*
 * End a generated text at a complete phrase; returns the kept length of
 * s + *start (leading whitespace skipped through *start).  A text cut by a
 * limit ends at its last sentence end, else at its last clause boundary
 * (comma, semicolon, colon, dash, bracket) when that keeps at least half of
 * it, after dropping a word a token limit may have cut; then every text
 * sheds trailing words and punctuation that leave it mid-phrase (see
 * lm_text_ends_mid_phrase) and unclosed brackets.  What is left never ends
 * mid-phrase (it may be empty).
 */
extern size_t lm_summary_complete(const char *s, size_t len, lm_text_end end, size_t *start);

/*
 * Reduce a one-line summary to a headline in place: its first sentence,
 * without a subject and copula in front of the description ("X is a tool
 * for Y" -> "tool for Y", "This package contains the Z" -> "Z"), without a
 * leading article ("A tool for Y" -> "tool for Y"), ended before a word
 * that repeats the one before it or occurs for the third time (a small
 * model's loop), and without a final full stop; then completed as
 * lm_summary_complete does.
 * Returns the new length; the headline starts at s + *start.
 */
extern size_t lm_summary_headline(const char *s, size_t len, size_t *start);

/*
 * Bullet lines from a generated list: up to LM_SUMMARY_MAX_BULLETS
 * non-empty lines, their markers ("-", "*", "•", "1.") removed, each
 * completed as lm_summary_complete does (the last one with `end`, the
 * others as natural ends), written as "- item" lines joined by newlines.
 * out needs len + 3 * LM_SUMMARY_MAX_BULLETS + 1 bytes; returns the new
 * length.
 */
extern size_t lm_summary_bullets(const char *s, size_t len, lm_text_end end, char *out);

#endif							/* LM_SUMMARY_TEXT_H */
