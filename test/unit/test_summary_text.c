/*
 * test_summary_text.c — the text shaping around summaries: hard-wrapped
 * lines joined, phrases completed after a limit (never ending on "to",
 * "the", a comma or an open bracket), headlines and bullet lines.
 */
#include <string.h>

#include "summary_text.h"
#include "unit.h"

/* lm_summary_complete on a C string, as a new C string in buf. */
static const char *
complete(const char *s, lm_text_end end, char *buf)
{
	size_t		start,
				n = lm_summary_complete(s, strlen(s), end, &start);

	memcpy(buf, s + start, n);
	buf[n] = 0;
	return buf;
}

/* lm_summary_headline on a C string, as a new C string in buf. */
static const char *
headline(const char *s, char *buf)
{
	size_t		start,
				n = lm_summary_headline(s, strlen(s), &start);

	memcpy(buf, s + start, n);
	buf[n] = 0;
	return buf;
}

int
main(void)
{
	char		buf[512];
	const char *wrapped = "This program can convert CASTEP's .check, .castep_bin, orbitals, and .cell to various\n"
		"formats.\n \n  Features:\n * Identify space-group type\n * Find   symmetry\n .\nThe end.";
	const char *r;
	size_t		n;

	/* whitespace */
	n = lm_text_unwrap(wrapped, strlen(wrapped), buf);
	CHECK(strcmp(buf, "This program can convert CASTEP's .check, .castep_bin, orbitals, and .cell to various formats.\n"
				  "Features:\n* Identify space-group type\n* Find symmetry\nThe end.") == 0 && n == strlen(buf),
		  "hard-wrapped lines are joined; paragraphs and list items keep their own line (got \"%s\")", buf);
	n = lm_text_unwrap("  \n\t\n", 5, buf);
	CHECK(n == 0 && buf[0] == 0, "blank text unwraps to nothing");
	CHECK(lm_text_count_words(" a  b\nc ", 8) == 3, "words are runs of non-space");
	CHECK(lm_text_first_words(" a  bc d", 8, 2) == 6 && lm_text_first_words("a b", 3, 5) == 3,
		  "the first n words end after the n-th word (or at the end)");

	CHECK(lm_text_first_sentence("A game. A game.", 15) == 7 && lm_text_first_sentence("v1.2 is out", 11) == 11 &&
		  lm_text_first_sentence("Hi. It is. Done", 15) == 10 && lm_text_first_sentence("one\ntwo", 7) == 3,
		  "the first sentence ends at a full stop after two words, else at a line break");
	{
		const char *eg = "It finds broken files (e.g. empty ones). It is fast.";
		const char *initial = "Enhanced fmt program by Adam M. Costello. Can be used within vi.";

		CHECK(lm_text_first_sentence(eg, strlen(eg)) == 40 &&
			  lm_text_first_sentence(initial, strlen(initial)) == 41,
			  "a sentence does not end at \"e.g.\" or at an initial (got %zu, %zu)",
			  lm_text_first_sentence(eg, strlen(eg)), lm_text_first_sentence(initial, strlen(initial)));
	}

	/* mid-phrase detection */
	CHECK(lm_text_ends_mid_phrase("convert files to various", 24), "ending on \"various\" is mid-phrase");
	CHECK(lm_text_ends_mid_phrase("a tool for", 10), "ending on a preposition is mid-phrase");
	CHECK(lm_text_ends_mid_phrase("tools, libraries,", 17), "ending on a comma is mid-phrase");
	CHECK(lm_text_ends_mid_phrase("a tool (for images", 18), "an open bracket is mid-phrase");
	CHECK(!lm_text_ends_mid_phrase("a tool for images", 17), "a complete phrase is not mid-phrase");
	CHECK(!lm_text_ends_mid_phrase("It is what it is.", 17), "a sentence end is not mid-phrase");

	/* completion */
	r = complete("This program can convert CASTEP's .check, .castep_bin, orbitals, and .cell to various",
				 LM_TEXT_END_WORD, buf);
	CHECK(strcmp(r, "This program can convert CASTEP's .check, .castep_bin, orbitals") == 0,
		  "a word-limited text ends at its last clause boundary (got \"%s\")", r);
	CHECK(!lm_text_ends_mid_phrase(r, strlen(r)), "and the result is not mid-phrase");
	r = complete("A racing game. It has many levels and the", LM_TEXT_END_WORD, buf);
	CHECK(strcmp(r, "A racing game.") == 0, "a cut text ends at its last sentence end (got \"%s\")", r);
	r = complete("A game with penguins, snow and ice, and lots of trees in the mount", LM_TEXT_END_TOKEN, buf);
	CHECK(strcmp(r, "A game with penguins, snow and ice") == 0,
		  "a token-limited text drops its possibly cut last word and ends at a clause (got \"%s\")", r);
	r = complete("  A small game for the family.\n", LM_TEXT_END_NATURAL, buf);
	CHECK(strcmp(r, "A small game for the family.") == 0, "a natural end is kept, trimmed (got \"%s\")", r);
	r = complete("Converts images (PNG, JPEG", LM_TEXT_END_NATURAL, buf);
	CHECK(strcmp(r, "Converts images") == 0, "an unclosed bracket is cut off (got \"%s\")", r);
	r = complete("to the", LM_TEXT_END_WORD, buf);
	CHECK(r[0] == 0, "a text of dangling words only completes to nothing");

	/* headlines: text, headline, what the case shows */
	{
		static const char *const cases[][3] = {
			{"Extreme Tux Racer, or etracer as it's called, is a simple OpenGL racing game featuring Tux. It is fun.",
			"simple OpenGL racing game featuring Tux",
			"a headline is the first sentence without its subject and copula"},
			{"This package contains the Ruby bindings for Spglib.",
			"Ruby bindings for Spglib",
			"\"This package contains the X\" gives X"},
			{"Looping sampler for live music\nsecond line",
			"Looping sampler for live music",
			"a headline is one line"},
			{"It is a game.",
			"It is a game",
			"a copula is kept when too little would follow"},
			{" A Dutch spelling dictionary for Aspell.",
			"Dutch spelling dictionary for Aspell",
			"a leading article goes"},
			{"The Times",
			"The Times",
			"a leading article stays when one word would follow"},
			{" package-based package-based package-based package-based",
			"package-based",
			"a headline ends before a word repeating the one before"},
			{"mailcheck tool for mailbox-check mailbox-check mailbox-check",
			"mailcheck tool for mailbox-check",
			"a loop is cut at its first repeat"},
			{"SysV runlevel tool runlevel-rc-conf-v-v-v-v-v-v-v-v-v-v",
			"SysV runlevel tool",
			"a headline ends before a word looping inside itself"},
			{"2111-2121-2122-2122-2122-2122-2122-21",
			"",
			"a headline that is one looping word shapes to nothing"},
			{"command-line tool for bit-by-bit comparison",
			"command-line tool for bit-by-bit comparison",
			"hyphen-joined words without a repeated part stay"},
			{"Jison-based, Bison-based, Jison-based, Jison-based, JavaScript-based",
			"Jison-based, Bison-based, Jison-based",
			"a headline ends before a word's third occurrence, at a complete phrase"},
			{"This package provides System-V init scripts for packages.",
			"System-V init scripts for packages",
			"\"This package provides X\" gives X without an article too"},
			{"The program in this package provides fast analysis of logs.",
			"program in this package provides fast analysis of logs",
			"a verb of content after a subject of more than three words is kept"},
			{"KGoldrunner is a fast-paced platform game where the player must navigate a maze.",
			"fast-paced platform game",
			"a headline ends before a relative clause"},
			{"Mpdscribble is a daemon that watches a Music Player Daemon instance.",
			"daemon that watches a Music Player Daemon instance",
			"a relative clause after one word stays"},
			{"IRC client for IRC in Emacs",
			"IRC client for IRC in Emacs",
			"a word used twice apart is kept"},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		{
			r = headline(cases[i][0], buf);
			CHECK(strcmp(r, cases[i][1]) == 0, "%s (got \"%s\")", cases[i][2], r);
		}
	}

	/* bullets */
	{
		const char *list = "Here are the points:\n1. Converts images between formats\n- Resizes photos, \n* Runs on Linux and\n- a fourth";

		n = lm_summary_bullets(list, strlen(list), LM_TEXT_END_WORD, buf);
		CHECK(strcmp(buf, "- Converts images between formats\n- Resizes photos\n- Runs on Linux") == 0 && n == strlen(buf),
			  "bullets: up to three lines, markers normalised, each complete (got \"%s\")", buf);
	}
	return unit_done();
}
