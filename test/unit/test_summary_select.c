/*
 * test_summary_select.c — choosing a summary among candidates by
 * agreement: the LCS F1 of words, the candidate the others share most,
 * weights, ties, empty candidates.
 */
#include <math.h>
#include <string.h>

#include "summary_select.h"
#include "unit.h"

/* lm_text_lcs_f1 on two C strings. */
static double
f1(const char *a, const char *b)
{
	return lm_text_lcs_f1(a, strlen(a), b, strlen(b));
}

/* lm_summary_consensus on n C strings. */
static int
pick(const char *const *texts, const double *weights, int n)
{
	size_t		lens[16];

	for (int i = 0; i < n; i++)
		lens[i] = strlen(texts[i]);
	return lm_summary_consensus(texts, lens, weights, n);
}

int
main(void)
{
	char		longer[2048] = "";

	/* the similarity */
	CHECK(f1("tool for converting images", "tool for converting images") == 1.0, "the same words: F1 1");
	CHECK(f1("Tool for CONVERTING, images!", "tool for converting images") == 1.0,
		  "case and punctuation do not count");
	CHECK(fabs(f1("tool for converting images", "converting tool for images") - 0.75) < 1e-12,
		  "LCS 3 of 4 and 4 words: F1 0.75 (got %.6f)", f1("tool for converting images", "converting tool for images"));
	CHECK(fabs(f1("fast tool", "tool for converting images") - 2.0 * 1 / 6) < 1e-12, "LCS 1 of 2 and 4 words: F1 1/3");
	CHECK(f1("", "tool") == 0.0 && f1("tool", "") == 0.0 && f1("...", "tool") == 0.0, "no word: F1 0");
	CHECK(f1("a b c", "d e f") == 0.0, "nothing in common: F1 0");
	CHECK(f1("café crème", "Café crème") == 1.0 && f1("crème", "creme") == 0.0,
		  "non-ASCII bytes belong to words and are compared as they are");
	CHECK(f1("x_y 3d", "X_Y 3D") == 1.0, "underscores and digits are word characters");
	for (int i = 0; i < 200; i++)
		strcat(longer, "word ");
	CHECK(f1(longer, longer) == 1.0, "a text longer than LM_SELECT_MAX_WORDS compares its first words");

	/* the choice */
	{
		const char *c[] = {"fast image viewer", "image viewer for X", "image viewer", "music player"};

		/* sums 4/7 + 4/5, 4/7 + 4/6, 4/5 + 4/6, 0 */
		CHECK(pick(c, NULL, 4) == 2, "the candidate sharing most words with the others wins (got %d)", pick(c, NULL, 4));
	}
	{
		const char *c[] = {"alpha beta", "gamma delta", "epsilon zeta"};

		CHECK(pick(c, NULL, 3) == 0, "no agreement at all: the first candidate");
	}
	{
		const char *c[] = {"Lithuanian dictionary for hunspell", "Lithuanian dictionary for hunspell", "spell checker"};

		CHECK(pick(c, NULL, 3) == 0, "equal candidates tie: the lower index");
	}
	{
		const char *c[] = {"image viewer", "photo viewer", "image editor", "photo album"};
		const double w_even[] = {1, 1, 1, 1};
		const double w_photo[] = {1, 1, 1, 5};

		CHECK(pick(c, w_even, 4) == pick(c, NULL, 4), "weights of 1 are no weights");
		CHECK(pick(c, NULL, 4) == 0, "two candidates agree as much (1/2 + 1/2): the lower index (got %d)",
			  pick(c, NULL, 4));
		CHECK(pick(c, w_photo, 4) == 1, "a heavy candidate draws the choice to those like it (got %d)",
			  pick(c, w_photo, 4));
	}
	{
		const char *c[] = {"", "...", "terminal emulator"};

		CHECK(pick(c, NULL, 3) == 2, "a candidate with words beats empty ones");
		CHECK(pick(c, NULL, 2) == 0, "all empty: the first");
	}
	{
		const char *c[] = {"only one"};

		CHECK(pick(c, NULL, 1) == 0 && pick(c, NULL, 0) == -1, "one candidate is chosen; none gives -1");
	}
	return unit_done();
}
