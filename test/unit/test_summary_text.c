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

	/* headlines */
	r = headline("Extreme Tux Racer, or etracer as it's called, is a simple OpenGL racing game featuring Tux. It is fun.", buf);
	CHECK(strcmp(r, "simple OpenGL racing game featuring Tux") == 0,
		  "a headline is the first sentence without its subject and copula (got \"%s\")", r);
	r = headline("This package contains the Ruby bindings for Spglib.", buf);
	CHECK(strcmp(r, "Ruby bindings for Spglib") == 0, "\"This package contains the X\" gives X (got \"%s\")", r);
	r = headline("Looping sampler for live music\nsecond line", buf);
	CHECK(strcmp(r, "Looping sampler for live music") == 0, "a headline is one line (got \"%s\")", r);
	r = headline("It is a game.", buf);
	CHECK(strcmp(r, "It is a game") == 0, "a copula is kept when too little would follow (got \"%s\")", r);
	r = headline(" A Dutch spelling dictionary for Aspell.", buf);
	CHECK(strcmp(r, "Dutch spelling dictionary for Aspell") == 0, "a leading article goes (got \"%s\")", r);
	r = headline("The Times", buf);
	CHECK(strcmp(r, "The Times") == 0, "a leading article stays when one word would follow (got \"%s\")", r);
	r = headline(" package-based package-based package-based package-based", buf);
	CHECK(strcmp(r, "package-based") == 0, "a headline ends before a word repeating the one before (got \"%s\")", r);
	r = headline("mailcheck tool for mailbox-check mailbox-check mailbox-check", buf);
	CHECK(strcmp(r, "mailcheck tool for mailbox-check") == 0, "a loop is cut at its first repeat (got \"%s\")", r);
	r = headline("SysV runlevel tool runlevel-rc-conf-v-v-v-v-v-v-v-v-v-v", buf);
	CHECK(strcmp(r, "SysV runlevel tool") == 0, "a headline ends before a word looping inside itself (got \"%s\")", r);
	r = headline("2111-2121-2122-2122-2122-2122-2122-21", buf);
	CHECK(strcmp(r, "") == 0, "a headline that is one looping word shapes to nothing (got \"%s\")", r);
	r = headline("command-line tool for bit-by-bit comparison", buf);
	CHECK(strcmp(r, "command-line tool for bit-by-bit comparison") == 0,
		  "hyphen-joined words without a repeated part stay (got \"%s\")", r);
	r = headline("Jison-based, Bison-based, Jison-based, Jison-based, JavaScript-based", buf);
	CHECK(strcmp(r, "Jison-based, Bison-based, Jison-based") == 0,
		  "a headline ends before a word's third occurrence, at a complete phrase (got \"%s\")", r);
	r = headline("This package provides System-V init scripts for packages.", buf);
	CHECK(strcmp(r, "System-V init scripts for packages") == 0,
		  "\"This package provides X\" gives X without an article too (got \"%s\")", r);
	r = headline("The program in this package provides fast analysis of logs.", buf);
	CHECK(strcmp(r, "program in this package provides fast analysis of logs") == 0,
		  "a verb of content after a subject of more than three words is kept (got \"%s\")", r);
	r = headline("KGoldrunner is a fast-paced platform game where the player must navigate a maze.", buf);
	CHECK(strcmp(r, "fast-paced platform game") == 0, "a headline ends before a relative clause (got \"%s\")", r);
	r = headline("Mpdscribble is a daemon that watches a Music Player Daemon instance.", buf);
	CHECK(strcmp(r, "daemon that watches a Music Player Daemon instance") == 0,
		  "a relative clause after one word stays (got \"%s\")", r);
	r = headline("IRC client for IRC in Emacs", buf);
	CHECK(strcmp(r, "IRC client for IRC in Emacs") == 0, "a word used twice apart is kept (got \"%s\")", r);

	/* bullets */
	{
		const char *list = "Here are the points:\n1. Converts images between formats\n- Resizes photos, \n* Runs on Linux and\n- a fourth";

		n = lm_summary_bullets(list, strlen(list), LM_TEXT_END_WORD, buf);
		CHECK(strcmp(buf, "- Converts images between formats\n- Resizes photos\n- Runs on Linux") == 0 && n == strlen(buf),
			  "bullets: up to three lines, markers normalised, each complete (got \"%s\")", buf);
	}
	return unit_done();
}
