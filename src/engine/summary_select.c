/*
 * summary_select.c — one summary among candidates by agreement (see
 * summary_select.h).
 *
 * Greedy decoding of a small model gives one plausible headline among
 * several; sampled alternatives and the text's own first sentence give
 * others.  Choosing the one with the most words in common with the rest
 * (a minimum-Bayes-risk choice with the LCS F1 as the gain) drops the
 * outliers: a loop, a detail of the text, a phrase the model made up.  On
 * Debian descriptions this moved headline ROUGE-L more than any prompt did
 * (README, "Summaries").  Everything here is integer word matching and
 * sums in a fixed order, so the choice is the same on every machine.
 */
#include "summary_select.h"

#include <stdbool.h>
#include <stdint.h>

/* A word of a text: its start and length. */
typedef struct word_span
{
	const char *s;
	size_t		len;
} word_span;

/* Whether byte c belongs to a word. */
static bool
is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

/* ASCII lowercase of c. */
static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char) (c - 'A' + 'a') : c;
}

/* The words of s[0..len) into w (at most LM_SELECT_MAX_WORDS); returns their count. */
static int
split_words(const char *s, size_t len, word_span *w)
{
	int			n = 0;
	size_t		i = 0;

	while (i < len && n < LM_SELECT_MAX_WORDS)
	{
		size_t		a;

		while (i < len && !is_word_byte((unsigned char) s[i]))
			i++;
		a = i;
		while (i < len && is_word_byte((unsigned char) s[i]))
			i++;
		if (i > a)
			w[n++] = (word_span) {s + a, i - a};
	}
	return n;
}

/* Whether two words are equal ignoring ASCII case. */
static bool
same_word(word_span x, word_span y)
{
	if (x.len != y.len)
		return false;
	for (size_t i = 0; i < x.len; i++)
		if (lower((unsigned char) x.s[i]) != lower((unsigned char) y.s[i]))
			return false;
	return true;
}

/* LCS F1 of two word lists. */
static double
lcs_f1(const word_span *a, int na, const word_span *b, int nb)
{
	int			row[LM_SELECT_MAX_WORDS + 1] = {0};
	int			lcs;

	if (na == 0 || nb == 0)
		return 0.0;
	for (int i = 0; i < na; i++)
	{
		int			diag = 0;	/* row[j - 1] of the previous row */

		for (int j = 1; j <= nb; j++)
		{
			int			up = row[j];

			row[j] = same_word(a[i], b[j - 1]) ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
			diag = up;
		}
	}
	lcs = row[nb];
	return lcs == 0 ? 0.0 : 2.0 * lcs / (double) (na + nb);
}

/* LCS F1 of two texts' words. */
double
lm_text_lcs_f1(const char *a, size_t alen, const char *b, size_t blen)
{
	word_span	wa[LM_SELECT_MAX_WORDS],
				wb[LM_SELECT_MAX_WORDS];
	int			na = split_words(a, alen, wa),
				nb = split_words(b, blen, wb);

	return lcs_f1(wa, na, wb, nb);
}

/* The candidate that agrees most with the others. */
int
lm_summary_consensus(const char *const *texts, const size_t *lens, const double *weights, int n)
{
	int			best = -1;
	double		best_gain = 0.0;
	bool		best_has_words = false;

	for (int i = 0; i < n; i++)
	{
		word_span	wi[LM_SELECT_MAX_WORDS];
		int			ni = split_words(texts[i], lens[i], wi);
		double		gain = 0.0;

		for (int j = 0; j < n; j++)
		{
			word_span	wj[LM_SELECT_MAX_WORDS];
			int			nj;

			if (j == i)
				continue;
			nj = split_words(texts[j], lens[j], wj);
			gain += (weights ? weights[j] : 1.0) * lcs_f1(wi, ni, wj, nj);
		}
		if (best < 0 || (ni > 0 && !best_has_words) || ((ni > 0) == best_has_words && gain > best_gain))
		{
			best = i;
			best_gain = gain;
			best_has_words = ni > 0;
		}
	}
	return best;
}
