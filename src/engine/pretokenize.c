/*
 * pretokenize.c — hand-written pre-tokenizer regexes for byte-level BPE.
 *
 * Each vocabulary family applies a fixed list of stages (see stage_lists).
 * Three stages are whole regexes with a custom scanner, written to give the
 * same pieces llama.cpp's own scanners give:
 *
 *   GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   LLAMA3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   QWEN2   as LLAMA3 with \p{N} instead of \p{N}{1,3}
 *
 * The other stages are single-token patterns (a character class, optionally
 * after \s?, repeated), matched by a generic leftmost scan: text between
 * matches becomes a piece of its own.  Patterns that llama.cpp runs through
 * std::wregex on raw code points (those with literal non-ASCII classes) see
 * every non-ASCII White_Space code point as U+000B, as llama.cpp does; that is
 * what wcp() gives.  Lookarounds and "$" only see the current piece.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "pretokenize.h"
#include "unicode.h"

/* Stages, each one regex. */
typedef enum stage
{
	ST_END = 0,					/* terminates a list */
	ST_GPT2,
	ST_LLAMA3,
	ST_QWEN2,
	ST_N1,						/* \p{N} */
	ST_NPLUS,					/* \p{N}+ */
	ST_PUNCT_FALCON,			/* [\p{P}\$\+<=>\^~\|`]+ */
	ST_PUNCT_DEFAULT,			/* [\p{P}\$\+<=>\^~\|]+ */
	ST_DIGIT3,					/* [0-9][0-9][0-9] */
	ST_CRLF,					/* [\r\n] */
	ST_WS_LETTERS,				/* \s?\p{L}+ */
	ST_WS_PUNCT,				/* \s?\p{P}+ */
	ST_CJK,						/* [U+4E00-U+9FA5 U+0800-U+4E00 U+AC00-U+D7FF]+ */
	ST_DSLLM_LETTERS,			/* \s?[A-Za-z ... Latin/Greek/Cyrillic/... letters]+ */
	ST_DSLLM_PUNCT,				/* \s?[!-/:-~ U+FF01-FF0F U+FF1A-FF5E U+2018-201F U+3000-3002]+ */
	ST_TRAIL_WS					/* \s+$ */
} stage;

/* The stage list of each family, in order. */
static const stage stage_lists[][7] = {
	[LM_PRETOK_DEFAULT] = {ST_PUNCT_DEFAULT, ST_GPT2, ST_NPLUS, ST_DIGIT3, ST_END},
	[LM_PRETOK_GPT2] = {ST_GPT2, ST_END},
	[LM_PRETOK_LLAMA3] = {ST_LLAMA3, ST_END},
	[LM_PRETOK_QWEN2] = {ST_QWEN2, ST_END},
	[LM_PRETOK_STARCODER] = {ST_N1, ST_GPT2, ST_END},
	[LM_PRETOK_FALCON] = {ST_PUNCT_FALCON, ST_GPT2, ST_DIGIT3, ST_END},
	[LM_PRETOK_DEEPSEEK_CODER] = {ST_CRLF, ST_WS_LETTERS, ST_WS_PUNCT, ST_CJK, ST_N1, ST_END},
	[LM_PRETOK_DEEPSEEK_LLM] = {ST_CRLF, ST_DSLLM_LETTERS, ST_DSLLM_PUNCT, ST_TRAIL_WS, ST_CJK, ST_NPLUS, ST_END},
};

/* An inclusive code point range. */
typedef struct cp_range
{
	uint32_t	lo;
	uint32_t	hi;
} cp_range;

/* DeepSeek LLM's letter class (its tokenizer.json pre-tokenizer). */
static const cp_range dsllm_letters[] = {
	{0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6},
	{0x00D8, 0x00F6}, {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293},
	{0x0295, 0x02AF}, {0x0370, 0x0373}, {0x0376, 0x0377}, {0x037B, 0x037D},
	{0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A}, {0x038C, 0x038C},
	{0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481}, {0x048A, 0x052F},
	{0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
	{0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77},
	{0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45},
	{0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
	{0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
	{0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3},
	{0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
	{0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115},
	{0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
	{0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
	{0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B},
	{0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D},
	{0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E},
	{0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
	{0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
	{0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* DeepSeek LLM's punctuation class. */
static const cp_range dsllm_punct[] = {
	{0x0021, 0x002F}, {0x003A, 0x007E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
	{0x2018, 0x201F}, {0x3000, 0x3002},
};

/* The CJK class shared by the DeepSeek pre-tokenizers. */
static const cp_range cjk_class[] = {
	{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF},
};

#define OUT_OF_RANGE 0xFFFFFFFFu

/* Scanner state for one piece [a, b) of the text. */
typedef struct scan
{
	const uint32_t *cps;		/* the whole text */
	const uint16_t *fl;			/* flags of each code point */
	size_t		a;				/* piece start */
	size_t		b;				/* piece end (exclusive) */
	size_t		prev;			/* end of the last emitted piece */
	lm_pretok_out *out;			/* where pieces go */
	bool		oom;			/* allocation failed */
} scan;

/* Append one length to the output list. */
static bool
out_push(lm_pretok_out *o, size_t len)
{
	if (o->n == o->cap)
	{
		size_t		cap = o->cap ? o->cap * 2 : 64;
		uint32_t   *p = realloc(o->len, cap * sizeof(uint32_t));

		if (p == NULL)
			return false;
		o->len = p;
		o->cap = cap;
	}
	o->len[o->n++] = (uint32_t) len;
	return true;
}

/* Close the piece ending at end (nothing when empty); returns its length. */
static size_t
emit(scan *s, size_t end)
{
	size_t		len = end - s->prev;

	if (len > 0 && !out_push(s->out, len))
		s->oom = true;
	s->prev = end;
	return len;
}

/* Flags at i, 0 outside the piece. */
static inline uint16_t
F(const scan *s, size_t i)
{
	return i < s->b ? s->fl[i] : 0;
}

/* Code point at i, OUT_OF_RANGE outside the piece. */
static inline uint32_t
CP(const scan *s, size_t i)
{
	return i < s->b ? s->cps[i] : OUT_OF_RANGE;
}

/* Code point as std::wregex sees it: non-ASCII White_Space becomes U+000B. */
static inline uint32_t
wcp(const scan *s, size_t i)
{
	uint32_t	c = s->cps[i];

	return (c > 0x7F && (s->fl[i] & LM_UC_WHITESPACE)) ? 0x0B : c;
}

/* True when c lies in one of the ranges. */
static bool
in_ranges(const cp_range *r, size_t n, uint32_t c)
{
	for (size_t i = 0; i < n; i++)
		if (c >= r[i].lo && c <= r[i].hi)
			return true;
	return false;
}

/* ASCII lower case (the contraction patterns only test ASCII letters). */
static inline uint32_t
lower(uint32_t c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Length of a contraction ('s 't 'm 'd 're 've 'll) at pos, 0 if none. */
static size_t
contraction(const scan *s, size_t pos, bool any_case)
{
	uint32_t	c1;
	uint32_t	c2;

	if (CP(s, pos) != '\'' || pos + 1 >= s->b)
		return 0;
	c1 = any_case ? lower(CP(s, pos + 1)) : CP(s, pos + 1);
	if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
		return 2;
	if (pos + 2 >= s->b)
		return 0;
	c2 = any_case ? lower(CP(s, pos + 2)) : CP(s, pos + 2);
	if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
		return 3;
	return 0;
}

/* \s+(?!\S) then \s+ over the nws white-space code points at pos (else one code point); returns the new position. */
static size_t
emit_spaces(scan *s, size_t pos, size_t nws)
{
	if (nws > 1 && pos + nws < s->b)
		pos += nws - 1;
	else if (nws > 0)
		pos += nws;
	else
		pos++;
	emit(s, pos);
	return pos;
}

/* The GPT-2 regex over one piece. */
static void
split_gpt2(scan *s)
{
	const uint16_t LNW = LM_UC_LETTER | LM_UC_NUMBER | LM_UC_WHITESPACE;
	size_t		pos = s->a;

	while (pos < s->b)
	{
		uint32_t	c = CP(s, pos);
		uint16_t	f2 = (c == ' ') ? F(s, pos + 1) : F(s, pos);
		size_t		k;
		size_t		nws;

		/* 's|'t|'re|'ve|'m|'ll|'d */
		if ((k = contraction(s, pos, false)) > 0)
		{
			pos += emit(s, pos + k);
			continue;
		}
		/* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
		if (f2 & (LM_UC_LETTER | LM_UC_NUMBER))
		{
			uint16_t	want = f2 & (LM_UC_LETTER | LM_UC_NUMBER);

			pos += (c == ' ');
			while (F(s, pos) & want)
				pos++;
			emit(s, pos);
			continue;
		}
		if (!(f2 & LNW) && f2 != 0)
		{
			pos += (c == ' ');
			while (!(F(s, pos) & LNW) && F(s, pos) != 0)
				pos++;
			emit(s, pos);
			continue;
		}
		/* \s+(?!\S) then \s+ */
		nws = 0;
		while (F(s, pos + nws) & LM_UC_WHITESPACE)
			nws++;
		pos = emit_spaces(s, pos, nws);
	}
}

/* The LLaMA 3 regex (digits_max 3) or Qwen2's (digits_max 1) over one piece. */
static void
split_llama3(scan *s, size_t digits_max)
{
	const uint16_t LNW = LM_UC_LETTER | LM_UC_NUMBER | LM_UC_WHITESPACE;
	size_t		pos = s->a;

	while (pos < s->b)
	{
		uint32_t	c = CP(s, pos);
		uint16_t	f = F(s, pos);
		uint16_t	f2;
		size_t		k;
		size_t		nws;
		size_t		last_nl;

		/* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
		if ((k = contraction(s, pos, true)) > 0)
		{
			pos += emit(s, pos + k);
			continue;
		}
		/* [^\r\n\p{L}\p{N}]?\p{L}+ */
		if (!(c == '\r' || c == '\n' || (f & LM_UC_NUMBER)) &&
			((f & LM_UC_LETTER) || (F(s, pos + 1) & LM_UC_LETTER)))
		{
			pos++;
			while (F(s, pos) & LM_UC_LETTER)
				pos++;
			emit(s, pos);
			continue;
		}
		/* \p{N}{1,digits_max} */
		if (f & LM_UC_NUMBER)
		{
			size_t		ini = pos;

			while (F(s, pos) & LM_UC_NUMBER)
			{
				pos++;
				if (pos - ini >= digits_max)
				{
					emit(s, pos);
					ini = pos;
				}
			}
			emit(s, pos);
			continue;
		}
		/* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
		f2 = (c == ' ') ? F(s, pos + 1) : f;
		if (!(f2 & LNW) && f != 0)
		{
			pos += (c == ' ');
			while (!(F(s, pos) & LNW) && F(s, pos) != 0)
				pos++;
			while (CP(s, pos) == '\r' || CP(s, pos) == '\n')
				pos++;
			emit(s, pos);
			continue;
		}
		/* \s*[\r\n]+, \s+(?!\S), \s+ */
		nws = 0;
		last_nl = 0;
		while (F(s, pos + nws) & LM_UC_WHITESPACE)
		{
			uint32_t	c2 = CP(s, pos + nws);

			if (c2 == '\r' || c2 == '\n')
				last_nl = pos + nws + 1;
			nws++;
		}
		if (last_nl > 0)
		{
			pos = last_nl;
			emit(s, pos);
			continue;
		}
		pos = emit_spaces(s, pos, nws);
	}
}

/* True when the code point at i belongs to a single-token stage's class. */
static bool
in_class(const scan *s, stage st, size_t i)
{
	uint16_t	f = s->fl[i];
	uint32_t	c = s->cps[i];

	switch (st)
	{
		case ST_N1:
		case ST_NPLUS:
			return (f & LM_UC_NUMBER) != 0;
		case ST_PUNCT_FALCON:
			if (c == '`')
				return true;
			/* FALLTHROUGH */
		case ST_PUNCT_DEFAULT:
			return (f & LM_UC_PUNCTUATION) || c == '$' || c == '+' || c == '<' || c == '=' ||
				c == '>' || c == '^' || c == '~' || c == '|';
		case ST_DIGIT3:
			return c >= '0' && c <= '9';
		case ST_CRLF:
			return c == '\r' || c == '\n';
		case ST_WS_LETTERS:
			return (f & LM_UC_LETTER) != 0;
		case ST_WS_PUNCT:
			return (f & LM_UC_PUNCTUATION) != 0;
		case ST_CJK:
			return in_ranges(cjk_class, sizeof(cjk_class) / sizeof(cjk_class[0]), wcp(s, i));
		case ST_DSLLM_LETTERS:
			return in_ranges(dsllm_letters, sizeof(dsllm_letters) / sizeof(dsllm_letters[0]), wcp(s, i));
		case ST_DSLLM_PUNCT:
			return in_ranges(dsllm_punct, sizeof(dsllm_punct) / sizeof(dsllm_punct[0]), wcp(s, i));
		default:
			return false;
	}
}

/* Length of the stage's match starting at p, 0 when it does not match there. */
static size_t
match_at(const scan *s, stage st, size_t p)
{
	size_t		q = p;

	switch (st)
	{
		case ST_N1:
		case ST_CRLF:
			return in_class(s, st, p) ? 1 : 0;
		case ST_DIGIT3:
			if (p + 3 > s->b)
				return 0;
			return (in_class(s, st, p) && in_class(s, st, p + 1) && in_class(s, st, p + 2)) ? 3 : 0;
		case ST_WS_LETTERS:
		case ST_WS_PUNCT:
		case ST_DSLLM_LETTERS:
		case ST_DSLLM_PUNCT:
			/* \s? is greedy: take it when the class follows */
			if ((s->fl[p] & LM_UC_WHITESPACE) && p + 1 < s->b && in_class(s, st, p + 1))
				q = p + 1;
			break;
		default:
			break;
	}
	while (q < s->b && in_class(s, st, q))
		q++;
	return (q > p && in_class(s, st, q - 1)) ? q - p : 0;
}

/* Run one stage over one piece. */
static void
run_stage(scan *s, stage st)
{
	size_t		p;

	switch (st)
	{
		case ST_GPT2:
			split_gpt2(s);
			return;
		case ST_LLAMA3:
			split_llama3(s, 3);
			return;
		case ST_QWEN2:
			split_llama3(s, 1);
			return;
		case ST_TRAIL_WS:
			/* the leftmost match of \s+$ is the whitespace run ending the piece */
			p = s->b;
			while (p > s->a && (s->fl[p - 1] & LM_UC_WHITESPACE))
				p--;
			emit(s, p);
			emit(s, s->b);
			return;
		default:
			break;
	}
	p = s->a;
	while (p < s->b)
	{
		size_t		m = match_at(s, st, p);

		if (m > 0)
		{
			emit(s, p);
			emit(s, p + m);
			p += m;
		}
		else
			p++;
	}
	emit(s, s->b);
}

/* Apply every stage of the family in turn. */
int
lm_pretokenize(lm_pretok_kind kind, const uint32_t *cps, const uint16_t *fl, size_t n, lm_pretok_out *out)
{
	size_t		done;

	return lm_pretokenize_prefix(kind, cps, fl, n, false, out, &done);
}

/* Apply every stage to the part of the window that the text after it cannot change. */
int
lm_pretokenize_prefix(lm_pretok_kind kind, const uint32_t *cps, const uint16_t *fl, size_t n, bool more,
					  lm_pretok_out *out, size_t *done)
{
	lm_pretok_out cur = {0};
	lm_pretok_out next = {0};
	const stage *list = stage_lists[kind];
	int			rc = 0;

	*done = 0;
	if (n == 0)
		return 0;
	if (!out_push(&cur, n))
		return -1;
	for (int si = 0; list[si] != ST_END; si++)
	{
		size_t		start = 0;

		next.n = 0;
		for (size_t k = 0; k < cur.n; k++)
		{
			scan		s = {cps, fl, start, start + cur.len[k], start, &next, false};

			run_stage(&s, list[si]);
			if (s.oom)
			{
				rc = -1;
				goto done;
			}
			start += cur.len[k];
		}
		if (si == 0 && more)
		{
			/* keep the first-stage pieces that end well before the window does */
			size_t		end = 0;
			size_t		keep = 0;

			while (keep < next.n && n >= LM_PRETOK_LOOKAHEAD && end + next.len[keep] <= n - LM_PRETOK_LOOKAHEAD)
				end += next.len[keep++];
			next.n = keep;
			n = end;
		}
		{
			lm_pretok_out t = cur;

			cur = next;
			next = t;
		}
	}
	for (size_t k = 0; k < cur.n; k++)
		if (!out_push(out, cur.len[k]))
		{
			rc = -1;
			goto done;
		}
	*done = n;
done:
	free(cur.len);
	free(next.len);
	return rc;
}
