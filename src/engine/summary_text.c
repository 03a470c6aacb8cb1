/*
 * summary_text.c — text shaping around summaries (see summary_text.h).
 *
 * Completing a phrase is a matter of where a text may end.  A small model
 * stopped by a limit leaves "convert X to various", a phrase that needs
 * more; one that stops by itself mostly ends well.  The rules are lexical
 * and deliberately few: a sentence end is the best place to stop, then a
 * clause boundary (comma, semicolon, colon, dash, bracket) if it keeps at
 * least half of the text; then trailing words that cannot end an English
 * phrase (articles, prepositions, conjunctions, auxiliaries, determiners)
 * and trailing commas or dashes are shed one at a time, and an unclosed
 * bracket or quote is cut off with what follows it.  The same word list
 * decides lm_text_ends_mid_phrase, so a completed text never counts as
 * mid-phrase by that test (which the evaluation program mirrors).
 */
#include "summary_text.h"

#include <string.h>

/* Words after which an English phrase is not finished (lowercase). */
static const char *const dangling_words[] = {
	"a", "an", "the", "and", "or", "but", "nor", "of", "to", "in", "on", "at", "by", "for",
	"with", "from", "into", "onto", "as", "via", "than", "that", "which", "who", "whose",
	"whom", "where", "when", "while", "if", "because", "so", "such", "this", "these",
	"those", "its", "their", "his", "her", "our", "your", "my", "is", "are", "was", "were",
	"be", "been", "being", "has", "have", "had", "can", "could", "will", "would", "should",
	"may", "might", "must", "do", "does", "did", "various", "several", "many", "some",
	"each", "every", "other", "both", "either", "including", "like", "about", "over",
	"under", "between", "through", "per", "after", "before", "since", "until", "during", "without",
	"within", "against", "among", "across", "behind", "beyond", "upon", "toward", "towards", "around",
	"unlike", "whether", "though", "although", "unless",
};

/* ASCII whitespace. */
static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ASCII letter or digit. */
static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Punctuation a phrase cannot end on. */
static bool
is_open_punct(char c)
{
	return c == ',' || c == ';' || c == ':' || c == '-' || c == '/' || c == '&' || c == '(' || c == '[';
}

/* Whether s[0..n) ends with an en or em dash (UTF-8). */
static bool
ends_with_long_dash(const char *s, size_t n)
{
	return n >= 3 && (unsigned char) s[n - 3] == 0xE2 && (unsigned char) s[n - 2] == 0x80 &&
		((unsigned char) s[n - 1] == 0x93 || (unsigned char) s[n - 1] == 0x94);
}

/* End of s[a..b) without trailing whitespace. */
static size_t
trim_end(const char *s, size_t a, size_t b)
{
	while (b > a && is_ws(s[b - 1]))
		b--;
	return b;
}

/* Start of the last word of s[a..b) (b already trimmed). */
static size_t
last_word_start(const char *s, size_t a, size_t b)
{
	while (b > a && !is_ws(s[b - 1]))
		b--;
	return b;
}

/* Whether s[a..b), in ASCII lower case, is one of the n words of list (all shorter than 16 bytes). */
static bool
lower_word_in(const char *s, size_t a, size_t b, const char *const *list, size_t n)
{
	char		w[16];

	if (b - a >= sizeof(w))
		return false;
	for (size_t i = 0; i < b - a; i++)
		w[i] = (s[a + i] >= 'A' && s[a + i] <= 'Z') ? s[a + i] - 'A' + 'a' : s[a + i];
	w[b - a] = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(w, list[i]) == 0)
			return true;
	return false;
}

/* Whether the word s[a..b), without punctuation around it, is a dangling word. */
static bool
is_dangling_word(const char *s, size_t a, size_t b)
{
	while (a < b && !is_alnum(s[a]))
		a++;
	while (b > a && !is_alnum(s[b - 1]))
		b--;
	return lower_word_in(s, a, b, dangling_words, sizeof(dangling_words) / sizeof(dangling_words[0]));
}

/* Position of the last unclosed bracket or quote in s[a..b), or b when none. */
static size_t
unclosed_at(const char *s, size_t a, size_t b)
{
	size_t		stack[64];
	int			depth = 0;
	size_t		quote = b;

	for (size_t i = a; i < b; i++)
	{
		if (s[i] == '(' || s[i] == '[')
		{
			if (depth < 64)
				stack[depth] = i;
			depth++;
		}
		else if ((s[i] == ')' || s[i] == ']') && depth > 0)
			depth--;
		else if (s[i] == '"')
			quote = quote == b ? i : b;
	}
	if (depth > 0)
	{
		size_t		at = stack[depth <= 64 ? depth - 1 : 63];

		return quote < at ? quote : at;
	}
	return quote;
}

/* Normalise whitespace, joining hard-wrapped lines. */
size_t
lm_text_unwrap(const char *in, size_t len, char *out)
{
	size_t		o = 0,
				i = 0;
	bool		new_para = false;

	while (i < len)
	{
		size_t		a = i,
					b;
		bool		item;

		while (i < len && in[i] != '\n')
			i++;
		b = i;
		if (i < len)
			i++;				/* the newline */
		while (a < b && is_ws(in[a]))
			a++;
		b = trim_end(in, a, b);
		if (a == b || (b - a == 1 && in[a] == '.'))
		{
			new_para = true;	/* a blank line or Debian's " ." */
			continue;
		}
		item = (b - a >= 2 && strchr("*-+o", in[a]) && in[a + 1] == ' ') ||
			(b - a >= 4 && (unsigned char) in[a] == 0xE2 && (unsigned char) in[a + 1] == 0x80 &&
			 (unsigned char) in[a + 2] == 0xA2);
		if (!item && in[a] >= '0' && in[a] <= '9')
		{
			size_t		d = a;

			while (d < b && in[d] >= '0' && in[d] <= '9')
				d++;
			item = d + 1 < b && (in[d] == '.' || in[d] == ')') && in[d + 1] == ' ';
		}
		if (o > 0)
			out[o++] = (new_para || item) ? '\n' : ' ';
		new_para = false;
		for (size_t k = a; k < b; k++)
		{
			if (is_ws(in[k]))
			{
				if (!is_ws(in[k - 1]))
					out[o++] = ' ';
			}
			else
				out[o++] = in[k];
		}
	}
	out[o] = 0;
	return o;
}

/* Count words. */
int
lm_text_count_words(const char *s, size_t len)
{
	int			n = 0;

	for (size_t i = 0; i < len; i++)
		if (!is_ws(s[i]) && (i == 0 || is_ws(s[i - 1])))
			n++;
	return n;
}

/*
 * Whether the full stop at s[b] ends an abbreviation that rarely ends a
 * sentence ("e.g.", "i.e.", "vs.") or an initial ("Adam M. Costello").
 */
static bool
is_abbreviation_stop(const char *s, size_t b)
{
	static const char *const abbreviations[] = {"e.g.", "i.e.", "vs.", "cf.", "approx.", "incl.", "esp.", "resp.",
	"mr.", "mrs.", "dr.", "ca."};
	size_t		a = last_word_start(s, 0, b + 1);

	while (a <= b && is_open_punct(s[a]))
		a++;
	if (b + 1 - a == 2 && s[a] >= 'A' && s[a] <= 'Z')
		return true;
	return lower_word_in(s, a, b + 1, abbreviations, sizeof(abbreviations) / sizeof(abbreviations[0]));
}

/* Length of the first sentence. */
size_t
lm_text_first_sentence(const char *s, size_t len)
{
	for (size_t b = 0; b < len; b++)
	{
		if (s[b] == '\n')
			return b;
		if ((s[b] == '.' || s[b] == '!' || s[b] == '?') && (b + 1 == len || is_ws(s[b + 1])) &&
			lm_text_count_words(s, b) >= 2 && !(s[b] == '.' && is_abbreviation_stop(s, b)))
			return b + 1;
	}
	return len;
}

/* Length of the first n words. */
size_t
lm_text_first_words(const char *s, size_t len, int n)
{
	int			words = 0;

	for (size_t i = 0; i < len; i++)
		if (!is_ws(s[i]) && (i + 1 == len || is_ws(s[i + 1])) && ++words == n)
			return i + 1;
	return len;
}

/* Whether a text ends mid-phrase. */
bool
lm_text_ends_mid_phrase(const char *s, size_t len)
{
	size_t		b = trim_end(s, 0, len);
	char		last;

	if (b == 0)
		return false;
	last = s[b - 1];
	if (is_open_punct(last) || ends_with_long_dash(s, b))
		return true;
	if (unclosed_at(s, 0, b) < b)
		return true;
	if (last == '.' || last == '!' || last == '?' || last == ')')
		return false;
	return is_dangling_word(s, last_word_start(s, 0, b), b);
}

/* Shed trailing dangling words, open punctuation and unclosed brackets from s[a..b). */
static size_t
shed_dangling(const char *s, size_t a, size_t b)
{
	for (;;)
	{
		size_t		u,
					w;

		b = trim_end(s, a, b);
		if (b == a)
			return b;
		if (is_open_punct(s[b - 1]))
		{
			b--;
			continue;
		}
		if (ends_with_long_dash(s, b))
		{
			b -= 3;
			continue;
		}
		u = unclosed_at(s, a, b);
		if (u < b)
		{
			b = u;
			continue;
		}
		w = last_word_start(s, a, b);
		if (s[b - 1] != '.' && s[b - 1] != '!' && s[b - 1] != '?' && s[b - 1] != ')' &&
			is_dangling_word(s, w, b))
		{
			b = w;
			continue;
		}
		return b;
	}
}

/* End a text cut by a limit at its last sentence end, else at a clause boundary keeping half. */
static size_t
cut_at_boundary(const char *s, size_t a, size_t b)
{
	int			total = lm_text_count_words(s + a, b - a);
	size_t		clause = b;

	for (size_t p = b; p > a; p--)
	{
		char		c = s[p - 1];
		bool		at_end = p == b || is_ws(s[p]);

		if ((c == '.' || c == '!' || c == '?') && at_end && lm_text_count_words(s + a, p - a) >= 3)
			return p;			/* the last sentence end, with something before it */
		if (clause == b && p < b && 2 * lm_text_count_words(s + a, p - 1 - a) >= total &&
			(((c == ',' || c == ';' || c == ':') && at_end) || c == '(' ||
			 (c == '-' && p >= 2 && is_ws(s[p - 2]) && at_end)))
			clause = p - 1;		/* the last clause boundary keeping half */
	}
	return clause;
}

/* End a generated text at a complete phrase. */
size_t
lm_summary_complete(const char *s, size_t len, lm_text_end end, size_t *start)
{
	size_t		a = 0,
				b;

	while (a < len && is_ws(s[a]))
		a++;
	b = trim_end(s, a, len);
	if (end == LM_TEXT_END_TOKEN && b > a && is_alnum(s[b - 1]))
	{
		/* the last word may be cut: drop it unless it is the only one */
		size_t		w = last_word_start(s, a, b);

		if (w > a)
			b = trim_end(s, a, w);
	}
	if (end != LM_TEXT_END_NATURAL && b > a && s[b - 1] != '.' && s[b - 1] != '!' && s[b - 1] != '?')
		b = cut_at_boundary(s, a, b);
	*start = a;
	return shed_dangling(s, a, b) - a;
}

/* Whether s[i..) begins with word w followed by a space (case-insensitive for its first letter). */
static bool
word_at(const char *s, size_t i, size_t b, const char *w)
{
	size_t		n = strlen(w);

	if (i + n >= b || !is_ws(s[i + n]))
		return false;
	if (!((s[i] | 0x20) == w[0]))
		return false;
	return memcmp(s + i + 1, w + 1, n - 1) == 0;
}

/* Start of the next word after position i (which is inside a word or on space). */
static size_t
next_word(const char *s, size_t i, size_t b)
{
	while (i < b && !is_ws(s[i]))
		i++;
	while (i < b && is_ws(s[i]))
		i++;
	return i;
}

/* A subject this many words long or shorter may precede a verb of content without an article ("This package provides X"). */
#define CONTENT_VERB_MAX_SUBJECT 3

/*
 * Where the description starts after a subject and copula among the first
 * words ("X is a ...", "This package contains the ..."), or after a short
 * subject and a verb of content ("This package provides System-V init
 * scripts"), or a when none.  The verbs of content are the verbs from
 * "contains" on.
 */
static size_t
after_copula(const char *s, size_t a, size_t b)
{
	static const char *const verbs[] = {"is", "are", "contains", "provides", "includes", "offers", "implements"};
	static const char *const articles[] = {"a", "an", "the", "one"};
	const size_t first_content_verb = 2;
	size_t		i = a;

	for (int w = 0; w < 16 && i < b; w++, i = next_word(s, i, b))
	{
		size_t		j;

		for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
		{
			if (w == 0 || !word_at(s, i, b, verbs[v]))
				continue;
			j = next_word(s, i, b);
			for (size_t k = 0; k < sizeof(articles) / sizeof(articles[0]); k++)
				if (word_at(s, j, b, articles[k]))
				{
					size_t		rest = next_word(s, j, b);

					/* keep it only if a description of two words or more follows */
					if (lm_text_count_words(s + rest, b - rest) >= 2)
						return rest;
				}
			if (v >= first_content_verb && w <= CONTENT_VERB_MAX_SUBJECT && lm_text_count_words(s + j, b - j) >= 2)
				return j;
		}
	}
	return a;
}

/* Where s[a..b) starts after a leading article ("A tool for X" -> "tool for X"), or a. */
static size_t
after_article(const char *s, size_t a, size_t b)
{
	static const char *const articles[] = {"a", "an", "the"};

	for (size_t k = 0; k < sizeof(articles) / sizeof(articles[0]); k++)
		if (word_at(s, a, b, articles[k]))
		{
			size_t		rest = next_word(s, a, b);

			/* keep it only if a description of two words or more follows */
			return lm_text_count_words(s + rest, b - rest) >= 2 ? rest : a;
		}
	return a;
}

/* Whether the words s[a1..b1) and s[a2..b2) are the same, ignoring ASCII case and punctuation around them. */
static bool
same_word(const char *s, size_t a1, size_t b1, size_t a2, size_t b2)
{
	while (a1 < b1 && !is_alnum(s[a1]))
		a1++;
	while (b1 > a1 && !is_alnum(s[b1 - 1]))
		b1--;
	while (a2 < b2 && !is_alnum(s[a2]))
		a2++;
	while (b2 > a2 && !is_alnum(s[b2 - 1]))
		b2--;
	if (b1 - a1 != b2 - a2 || a1 == b1)
		return false;
	for (size_t i = 0; i < b1 - a1; i++)
		if ((s[a1 + i] | 0x20) != (s[a2 + i] | 0x20))
			return false;
	return true;
}

/*
 * Whether the word s[a..b) loops inside itself: two hyphen-joined parts in
 * a row are the same ("conf-v-v-v", "2121-2122-2122-2122").
 */
static bool
hyphen_loop(const char *s, size_t a, size_t b)
{
	size_t		part = a,		/* start of the current part */
				prev = b,		/* the part before it, [prev, prev_end); none yet */
				prev_end = b;

	for (size_t i = a; i <= b; i++)
	{
		if (i < b && s[i] != '-')
			continue;
		if (prev < prev_end && same_word(s, prev, prev_end, part, i))
			return true;
		prev = part;
		prev_end = i;
		part = i + 1;
	}
	return false;
}

/*
 * End of s[a..b) before a small model's loop: the first word that repeats
 * the word just before it ("package-based package-based ..."), that
 * occurs for the third time, or that loops inside itself ("rc-conf-v-v-v");
 * b when there is none.
 */
static size_t
before_repeat(const char *s, size_t a, size_t b)
{
	size_t		starts[64],
				ends[64];
	int			n = 0;

	for (size_t i = a; i < b && n < 64;)
	{
		int			seen = 0;

		while (i < b && is_ws(s[i]))
			i++;
		if (i == b)
			break;
		starts[n] = i;
		while (i < b && !is_ws(s[i]))
			i++;
		ends[n] = i;
		for (int k = 0; k < n; k++)
			if (same_word(s, starts[k], ends[k], starts[n], ends[n]))
				seen++;
		if ((n > 0 && (same_word(s, starts[n - 1], ends[n - 1], starts[n], ends[n]) || seen >= 2)) ||
			hyphen_loop(s, starts[n], ends[n]))
			return trim_end(s, a, starts[n]);
		n++;
	}
	return b;
}

/* Whether s[i..) begins with one of the words in list (any case for the first letter), followed by a space. */
static bool
word_in(const char *s, size_t i, size_t b, const char *const *list, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (word_at(s, i, b, list[k]))
			return true;
	return false;
}

/*
 * End of s[a..b) before a relative clause ("platform game where the
 * player ...", "media player which plays ..."), keeping at least two
 * words; b when there is none.  On 1,500 descriptions of the training
 * file a headline cut from the text scores ROUGE-L 0.302 with it, 0.299
 * without; participles ("written in C") measured no better.
 */
static size_t
before_clause(const char *s, size_t a, size_t b)
{
	static const char *const starters[] = {"that", "which", "who", "whose", "where", "when", "while"};
	size_t		i = a;

	for (int w = 0; i < b; w++, i = next_word(s, i, b))
	{
		size_t		e;

		if (w < 2 || !word_in(s, i, b, starters, sizeof(starters) / sizeof(starters[0])))
			continue;
		e = trim_end(s, a, i);
		while (e > a && (s[e - 1] == ',' || s[e - 1] == ';'))
			e = trim_end(s, a, e - 1);
		return e;
	}
	return b;
}

/* Reduce a one-line summary to a headline. */
size_t
lm_summary_headline(const char *s, size_t len, size_t *start)
{
	size_t		a = 0,
				b,
				sub,
				n;

	while (a < len && is_ws(s[a]))
		a++;
	/* the first sentence (or line), without its full stop */
	b = a + lm_text_first_sentence(s + a, len - a);
	if (b > a && (s[b - 1] == '.' || s[b - 1] == '!' || s[b - 1] == '?'))
		b--;
	b = trim_end(s, a, b);
	a = after_copula(s, a, b);
	a = after_article(s, a, b);
	b = before_repeat(s, a, b);
	b = before_clause(s, a, b);
	n = lm_summary_complete(s + a, b - a, LM_TEXT_END_NATURAL, &sub);
	*start = a + sub;
	return n;
}

/* Bullet lines from a generated list. */
size_t
lm_summary_bullets(const char *s, size_t len, lm_text_end end, char *out)
{
	size_t		o = 0,
				i = 0;
	int			n = 0;

	while (i < len && n < LM_SUMMARY_MAX_BULLETS)
	{
		size_t		a = i,
					b,
					sub,
					k;
		bool		last;

		while (i < len && s[i] != '\n')
			i++;
		b = i;
		if (i < len)
			i++;
		while (a < b && is_ws(s[a]))
			a++;
		b = trim_end(s, a, b);
		if (b > a && s[b - 1] == ':')
			continue;			/* a lead-in ("Here are three points:") */
		/* the marker: "-", "*", "+", "•", or a number with "." or ")" */
		if (a < b && (s[a] == '-' || s[a] == '*' || s[a] == '+'))
			a++;
		else if (b - a >= 3 && (unsigned char) s[a] == 0xE2 && (unsigned char) s[a + 1] == 0x80 &&
				 (unsigned char) s[a + 2] == 0xA2)
			a += 3;
		else
		{
			for (k = a; k < b && s[k] >= '0' && s[k] <= '9'; k++)
				;
			if (k > a && k < b && (s[k] == '.' || s[k] == ')'))
				a = k + 1;
		}
		/* only the text's last line may have been cut by a limit */
		for (k = i; k < len && is_ws(s[k]); k++)
			;
		last = k >= len;
		k = lm_summary_complete(s + a, b - a, last ? end : LM_TEXT_END_NATURAL, &sub);
		if (k == 0)
			continue;
		if (o > 0)
			out[o++] = '\n';
		out[o++] = '-';
		out[o++] = ' ';
		memcpy(out + o, s + a + sub, k);
		o += k;
		n++;
	}
	out[o] = 0;
	return o;
}
