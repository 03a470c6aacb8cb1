/*
 * tokenizer_wordpiece.c — BERT's WordPiece tokenizer (tokenizer.ggml.model
 * "bert"), giving the ids of Hugging Face's BertNormalizer +
 * BertPreTokenizer + WordPiece.
 *
 * One pass over the code points does all three stages:
 *   normalise   clean the text (drop NUL, U+FFFD and other/control code
 *               points except \t \n \r; whitespace becomes a word break),
 *               put CJK ideographs in words of their own, strip accents
 *               (canonical decomposition, nonspacing marks dropped), then
 *               lower-case — each switchable by tokenizer.wordpiece.*;
 *   pre-split   words end at whitespace, and every punctuation character
 *               (ASCII punctuation and Unicode P*) is a word of its own;
 *   WordPiece   each word is cut greedily, longest match first, into
 *               vocabulary pieces; pieces after the first are looked up as
 *               continuations.  A word with a piece that matches nothing,
 *               or longer than max_input_chars_per_word, is one [UNK].
 * The vocabulary is in llama.cpp's phantom-space form: a word-initial piece
 * "foo" is stored as "\u2581foo" and a continuation "##bar" as "bar".
 * Canonical reordering of combining marks is not done (marks are dropped
 * when accents are stripped, and rare otherwise).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"
#include "unicode.h"

/* The phantom space that marks a word-initial piece. */
#define WPM_PHANTOM "\xe2\x96\x81"
#define WPM_PHANTOM_LEN 3

/* Words between two abort checks. */
#define WPM_ABORT_EVERY 4096

/* The word being collected. */
typedef struct wpm_word
{
	char	   *buf;			/* phantom space, then the word's UTF-8 bytes */
	size_t		cap;			/* bytes allocated */
	size_t		len;			/* bytes of the word (after the phantom space) */
	uint32_t   *ends;			/* byte offset after each character */
	size_t		n_chars;		/* characters (may exceed what is stored) */
	size_t		max_chars;		/* longer words are [UNK] */
} wpm_word;

/* CJK ideographs BERT puts in words of their own (its _is_chinese_char). */
static bool
is_cjk(uint32_t cp)
{
	return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
		(cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
		(cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
		(cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* BERT punctuation: any ASCII punctuation (symbols like $ + < included) or Unicode P*. */
static bool
is_punct(uint32_t cp)
{
	if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
		return true;
	return (lm_unicode_flags(cp) & LM_UC_PUNCTUATION) != 0;
}

/* Whitespace as BERT sees it: \t \n \r and the White_Space property. */
static bool
is_space(uint32_t cp)
{
	return cp == '\t' || cp == '\n' || cp == '\r' || (lm_unicode_flags(cp) & LM_UC_WHITESPACE) != 0;
}

/* Code points the cleaning drops: NUL, U+FFFD, and C* categories except \t \n \r. */
static bool
is_dropped(uint32_t cp)
{
	if (cp == 0 || cp == LM_UC_REPLACEMENT)
		return true;
	if (cp == '\t' || cp == '\n' || cp == '\r')
		return false;
	return (lm_unicode_flags(cp) & (LM_UC_CONTROL | LM_UC_UNDEFINED)) != 0;
}

/* Append one id, or report failure. */
static bool
push(lm_tok_vec *out, int32_t id)
{
	return lm_tok_vec_push(out, id);
}

/* WordPiece the collected word into out and empty it; false when memory runs out. */
static bool
flush_word(const lm_tokenizer *t, wpm_word *w, lm_tok_vec *out)
{
	size_t		n_in = out->n,
				start = 0,
				c0 = 0;
	bool		ok = true;

	if (w->n_chars == 0)
		return true;
	if (w->n_chars > w->max_chars)
		goto unk;
	while (start < w->len)
	{
		int32_t		id = -1;
		size_t		c1;

		/* longest piece first: ends on character boundaries, at most max_len bytes */
		for (c1 = w->n_chars; c1 > c0; c1--)
		{
			size_t		end = w->ends[c1 - 1];

			if (end - start > t->max_len)
				continue;
			if (start == 0)
				id = lm_tok_lookup(t, w->buf, WPM_PHANTOM_LEN + end);
			else
				id = lm_tok_lookup(t, w->buf + WPM_PHANTOM_LEN + start, end - start);
			if (id >= 0)
				break;
		}
		if (id < 0)
		{
			out->n = n_in;		/* the whole word becomes [UNK] */
			goto unk;
		}
		if (!push(out, id))
			return false;
		start = w->ends[c1 - 1];
		c0 = c1;
	}
	goto done;
unk:
	if (t->unk >= 0)
		ok = push(out, t->unk);
done:
	w->len = 0;
	w->n_chars = 0;
	return ok;
}

/* Add one normalised code point to the word (only counted once the word is too long). */
static bool
add_char(wpm_word *w, uint32_t cp)
{
	char		u8[4];
	int			n;

	w->n_chars++;
	if (w->n_chars > w->max_chars)
		return true;
	n = lm_utf8_encode(cp, u8);
	if (WPM_PHANTOM_LEN + w->len + n > w->cap)
		return false;			/* cannot happen: cap is sized for max_chars */
	memcpy(w->buf + WPM_PHANTOM_LEN + w->len, u8, n);
	w->len += n;
	w->ends[w->n_chars - 1] = (uint32_t) w->len;
	return true;
}

/* Normalised code points of cp (accents stripped, lower-cased); returns the count (<= 12). */
static int
normalise(const lm_tokenizer *t, uint32_t cp, uint32_t *out)
{
	uint32_t	d[4];
	int			nd = 1,
				n = 0;

	d[0] = cp;
	if (t->wpm_strip_accents)
		nd = lm_unicode_nfd(cp, d);
	for (int i = 0; i < nd; i++)
	{
		if (t->wpm_strip_accents && lm_unicode_is_mn(d[i]))
			continue;
		if (t->wpm_lowercase)
			n += lm_unicode_lower(d[i], out + n);
		else
			out[n++] = d[i];
	}
	return n;
}

/* WordPiece-encode raw text into out; false when memory runs out or on abort. */
bool
lm_tok_wpm_encode(const lm_tokenizer *t, const char *text, size_t len, lm_tok_vec *out, lm_tok_abort *abort)
{
	wpm_word	w;
	size_t		words = 0;
	bool		ok = false;

	memset(&w, 0, sizeof(w));
	w.max_chars = t->wpm_max_chars;
	w.cap = WPM_PHANTOM_LEN + 4 * (w.max_chars + 1);
	w.buf = malloc(w.cap);
	w.ends = malloc(sizeof(uint32_t) * (w.max_chars + 1));
	if (w.buf == NULL || w.ends == NULL)
		goto done;
	memcpy(w.buf, WPM_PHANTOM, WPM_PHANTOM_LEN);
	for (size_t i = 0; i < len;)
	{
		uint32_t	cp,
					norm[12];
		int			nn;
		bool		alone;

		i += lm_utf8_decode(text + i, len - i, &cp);
		if (t->wpm_clean_text && is_dropped(cp))
			continue;
		if (is_space(cp))
		{
			if (w.n_chars > 0 && (!flush_word(t, &w, out) ||
								  (++words % WPM_ABORT_EVERY == 0 && lm_tok_aborted(abort))))
				goto done;
			continue;
		}
		alone = t->wpm_chinese && is_cjk(cp);
		if (alone && !flush_word(t, &w, out))
			goto done;
		nn = normalise(t, cp, norm);
		for (int k = 0; k < nn; k++)
		{
			if (is_space(norm[k]) || is_punct(norm[k]))
			{
				if (!flush_word(t, &w, out))
					goto done;
				if (is_space(norm[k]))
					continue;
				if (!add_char(&w, norm[k]) || !flush_word(t, &w, out))
					goto done;
			}
			else if (!add_char(&w, norm[k]))
				goto done;
		}
		if (alone && !flush_word(t, &w, out))
			goto done;
	}
	ok = flush_word(t, &w, out);
done:
	free(w.buf);
	free(w.ends);
	return ok && !abort->hit;
}
