/*
 * test_tokenizer.c — the tokenizers against llama.cpp's reference ids, plus
 * round trips, streaming UTF-8 hold-back, special-token parsing and invalid
 * input.  Needs ../shared (models and golden/tokenizer); skips without it.
 */
#include <limits.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "pretokenize.h"
#include "tokenizer.h"
#include "tokenizer_int.h"
#include "unicode.h"
#include "unit.h"

#define SEP "\n__ggml_vocab_test__\n"
#define MAX_IDS 16384

/* Read a whole file (NUL-terminated); NULL if unreadable. */
static char *
slurp(const char *path, size_t *n)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		len;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) len + 1);
	*n = fread(buf, 1, (size_t) len, f);
	buf[*n] = '\0';
	fclose(f);
	return buf;
}

/* An open vocabulary. */
typedef struct vocab
{
	lm_gguf    *g;
	lm_tokenizer *t;
} vocab;

/* Open a GGUF and load its tokenizer; false (with message) on failure. */
static bool
vocab_open(vocab *v, const char *path, char *err, size_t errlen)
{
	v->t = NULL;
	v->g = lm_gguf_open(path, err, errlen);
	if (v->g == NULL)
		return false;
	v->t = lm_tokenizer_load(v->g, err, errlen);
	if (v->t == NULL)
	{
		lm_gguf_close(v->g);
		v->g = NULL;
		return false;
	}
	return true;
}

/* Close a vocabulary. */
static void
vocab_close(vocab *v)
{
	lm_tokenizer_free(v->t);
	lm_gguf_close(v->g);
}

/* Detokenize ids with the streaming API into out (NUL-terminated); returns the length. */
static size_t
detok_all(const lm_tokenizer *t, const int32_t *ids, int n, char *out, size_t cap)
{
	lm_detok	d;
	size_t		len = 0;
	int			r;

	lm_detok_init(&d, t);
	for (int i = 0; i < n; i++)
	{
		r = lm_detok_push(&d, ids[i], out + len, (int) (cap - len - 1));
		if (r < 0)
			return len;
		len += (size_t) r;
	}
	r = lm_detok_finish(&d, out + len, (int) (cap - len - 1));
	if (r > 0)
		len += (size_t) r;
	out[len] = '\0';
	return len;
}

/*
 * Run one .inp/.out pair: every test must give the expected ids
 * (add_special=false, parse_special=false).  Also counts round trips.
 */
static void
run_pair(const char *dir, const char *vocab_path, const char *name, bool expect_roundtrip)
{
	char		inp_path[2200];
	char		out_path[2200];
	char		err[512];
	size_t		ni,
				no;
	char	   *inp,
			   *outp;
	vocab		v;
	int			pass = 0,
				total = 0,
				rt_pass = 0;
	int32_t    *ids = malloc(MAX_IDS * sizeof(int32_t));
	char	   *text = malloc(1 << 20);
	char	   *p,
			   *q;

	snprintf(inp_path, sizeof(inp_path), "%s/%s.inp", dir, name);
	snprintf(out_path, sizeof(out_path), "%s/%s.out", dir, name);
	inp = slurp(inp_path, &ni);
	outp = slurp(out_path, &no);
	if (inp == NULL || outp == NULL || !unit_readable(vocab_path))
	{
		printf("# %s: test pair or vocabulary absent, skipped\n", name);
		free(inp);
		free(outp);
		free(ids);
		free(text);
		return;
	}
	if (!vocab_open(&v, vocab_path, err, sizeof(err)))
	{
		CHECK(false, "%s: tokenizer loads (%s)", name, err);
		free(inp);
		free(outp);
		free(ids);
		free(text);
		return;
	}
	p = inp;
	q = outp;
	for (;;)
	{
		char	   *e = strstr(p, SEP);
		char	   *nl = strchr(q, '\n');
		char		got[1 << 16];
		int			gl = 0;
		int			n;

		if (e == NULL || nl == NULL)
			break;
		*nl = '\0';
		n = lm_tokenize(v.t, p, (size_t) (e - p), false, false, ids, MAX_IDS, err, sizeof(err));
		got[0] = '\0';
		for (int i = 0; i < n && i < MAX_IDS && gl < (int) sizeof(got) - 16; i++)
			gl += snprintf(got + gl, sizeof(got) - gl, " %d", ids[i]);
		total++;
		if (n >= 0 && strcmp(got, q) == 0)
			pass++;
		else
			printf("# %s test %d differs:\n#   want%s\n#   got %s\n", name, total, q, got);
		if (n >= 0 && n <= MAX_IDS)
		{
			size_t		len = detok_all(v.t, ids, n, text, 1 << 20);

			if (len == (size_t) (e - p) && memcmp(text, p, len) == 0)
				rt_pass++;
			else if (expect_roundtrip)
				printf("# %s round trip %d differs: [%.*s] -> [%s]\n", name, total, (int) (e - p), p, text);
		}
		p = e + strlen(SEP);
		q = nl + 1;
	}
	printf("# %s: %d/%d ids, %d/%d round trips\n", name, pass, total, rt_pass, total);
	CHECK(total > 0 && pass == total, "%s: all %d test strings give llama.cpp's token ids (%d pass)",
		  name, total, pass);
	if (expect_roundtrip)
		CHECK(rt_pass == total, "%s: detokenize(tokenize(x)) == x for all %d strings (%d)", name, total, rt_pass);
	vocab_close(&v);
	free(inp);
	free(outp);
	free(ids);
	free(text);
}

/* Streaming detokenizer: a character split over byte tokens is held back, then released whole. */
static void
test_holdback(const lm_tokenizer *t)
{
	int32_t		lead = lm_tokenizer_find(t, "<0xD0>", 6);
	int32_t		cont = lm_tokenizer_find(t, "<0xB6>", 6);
	int32_t		ff = lm_tokenizer_find(t, "<0xFF>", 6);
	int32_t		ids[16];
	char		out[64];
	lm_detok	d;
	int			r1,
				r2,
				r3;
	int			n;

	CHECK(lead >= 0 && cont >= 0 && ff >= 0, "stories260K has byte tokens <0xD0> <0xB6> <0xFF>");
	n = lm_tokenize(t, "\xd0\xb6", 2, false, false, ids, 16, NULL, 0);
	CHECK(n >= 2 && ids[n - 2] == lead && ids[n - 1] == cont,
		  "\"\\u0436\" (not in the 512-token vocabulary) falls back to the bytes <0xD0> <0xB6>");
	lm_detok_init(&d, t);
	r1 = lm_detok_push(&d, lead, out, sizeof(out));
	r2 = lm_detok_push(&d, cont, out, sizeof(out));
	CHECK(r1 == 0 && r2 == 2 && memcmp(out, "\xd0\xb6", 2) == 0,
		  "detok holds back <0xD0> (0 bytes) and emits \\u0436 whole after <0xB6> (got %d, %d)", r1, r2);
	r3 = lm_detok_finish(&d, out, sizeof(out));
	CHECK(r3 == 0, "nothing is left over after a complete character");

	lm_detok_init(&d, t);
	r1 = lm_detok_push(&d, lead, out, sizeof(out));
	r3 = lm_detok_finish(&d, out, sizeof(out));
	CHECK(r1 == 0 && r3 == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0,
		  "a dangling lead byte at the end becomes U+FFFD");

	lm_detok_init(&d, t);
	r1 = lm_detok_push(&d, lead, out, sizeof(out));
	lm_detok_drop(&d);
	r3 = lm_detok_finish(&d, out, sizeof(out));
	CHECK(r1 == 0 && r3 == 0, "lm_detok_drop forgets a dangling lead byte (generation cut mid-character returns nothing of it)");

	lm_detok_init(&d, t);
	r1 = lm_detok_push(&d, ff, out, sizeof(out));
	CHECK(r1 == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0, "a byte that is never valid UTF-8 (0xFF) becomes U+FFFD");

	lm_detok_init(&d, t);
	r1 = lm_detok_push(&d, lead, out, 1);
	CHECK(r1 == 0, "held-back bytes need no room");
	r2 = lm_detok_push(&d, cont, out, 1);
	CHECK(r2 == -2, "a too-small buffer reports the room needed (-2) ...");
	r2 = lm_detok_push(&d, cont, out, sizeof(out));
	CHECK(r2 == 2 && memcmp(out, "\xd0\xb6", 2) == 0, "... and consumes nothing, so the retry succeeds");
}

/* SPM details on stories260K: BOS, specials, pieces, buffer sizing. */
static void
test_spm(const lm_tokenizer *t)
{
	int32_t		ids[64];
	char		buf[64];
	int			n;

	CHECK(lm_tokenizer_n_vocab(t) == 512, "stories260K has 512 tokens");
	CHECK(lm_tokenizer_bos(t) == 1 && lm_tokenizer_eos(t) == 2 && lm_tokenizer_add_bos(t),
		  "stories260K: BOS 1, EOS 2, BOS added");
	CHECK(lm_tokenizer_is_eog(t, 2) && !lm_tokenizer_is_eog(t, 1) && !lm_tokenizer_is_eog(t, 100),
		  "EOS is end-of-generation, BOS and normal tokens are not");
	CHECK(lm_tokenizer_is_control(t, 1) && !lm_tokenizer_is_control(t, 300) && !lm_tokenizer_is_control(t, -1) &&
		  !lm_tokenizer_is_control(t, 512), "is_control: <s> yes, a word no, bad ids no");
	CHECK(lm_tokenizer_find(t, "<s>", 3) == 1 && lm_tokenizer_find(t, "no such token", 13) == -1,
		  "find: exact text -> id, -1 when absent");

	n = lm_tokenize(t, "Once upon a time", 16, true, false, ids, 64, NULL, 0);
	CHECK(n == 5 && ids[0] == 1 && ids[1] == 403 && ids[2] == 407 && ids[3] == 261 && ids[4] == 378,
		  "add_special puts BOS first: \"Once upon a time\" -> 1 403 407 261 378 (the golden prompt ids)");
	n = lm_tokenize(t, "", 0, true, false, ids, 64, NULL, 0);
	CHECK(n == 1 && ids[0] == 1, "empty text with add_special is just BOS");
	n = lm_tokenize(t, "", 0, false, false, ids, 64, NULL, 0);
	CHECK(n == 0, "empty text without add_special is no tokens");

	n = lm_tokenize(t, "<s>", 3, false, false, ids, 64, NULL, 0);
	CHECK(n > 1 && ids[0] != 1, "parse_special=false: the text \"<s>\" stays plain text (%d tokens)", n);
	n = lm_tokenize(t, "<s>", 3, false, true, ids, 64, NULL, 0);
	CHECK(n == 1 && ids[0] == 1, "parse_special=true: \"<s>\" becomes BOS");
	n = lm_tokenize(t, "Hi</s>there", 11, false, true, ids, 64, NULL, 0);
	CHECK(n >= 3 && ids[0] != 2 && ids[n - 1] != 2, "parse_special=true splits around </s> ...");
	{
		bool		has_eos = false;

		for (int i = 0; i < n; i++)
			has_eos |= ids[i] == 2;
		CHECK(has_eos, "... and </s> in the middle becomes EOS");
	}

	/* buffer sizing */
	ids[2] = -77;
	n = lm_tokenize(t, "Once upon a time", 16, true, false, ids, 2, NULL, 0);
	CHECK(n == 5 && ids[0] == 1 && ids[2] == -77, "a short buffer gets max_out ids and the result is the count needed");
	n = lm_tokenize(t, "Once upon a time", 16, true, false, NULL, 0, NULL, 0);
	CHECK(n == 5, "max_out 0 only counts");

	/* pieces */
	n = lm_token_to_piece(t, 403, false, buf, sizeof(buf));
	CHECK(n == 5 && memcmp(buf, " Once", 5) == 0, "piece of ▁Once is \" Once\"");
	n = lm_token_to_piece(t, 1, false, buf, sizeof(buf));
	CHECK(n == 0, "control token renders as \"\" ...");
	n = lm_token_to_piece(t, 1, true, buf, sizeof(buf));
	CHECK(n == 3 && memcmp(buf, "<s>", 3) == 0, "... and as its text with render_special");
	n = lm_token_to_piece(t, 403, false, buf, 2);
	CHECK(n == 5 && memcmp(buf, " O", 2) == 0, "a short buffer gets a cut piece and the full length");
	n = lm_token_to_piece(t, lm_tokenizer_find(t, "<0x41>", 6), false, buf, sizeof(buf));
	CHECK(n == 1 && buf[0] == 'A', "<0x41> renders as the byte 'A'");
	CHECK(lm_token_to_piece(t, -1, true, buf, sizeof(buf)) == 0 && lm_token_to_piece(t, 512, true, buf, sizeof(buf)) == 0,
		  "bad ids render as \"\"");

	/* detok: leading space removed only on the first token */
	{
		char		out[256];
		size_t		len;

		n = lm_tokenize(t, "Once upon a time", 16, true, false, ids, 64, NULL, 0);
		len = detok_all(t, ids, n, out, sizeof(out));
		CHECK(len == 17 && strcmp(out, " Once upon a time") == 0,
			  "with BOS first the space stays, as in llama.cpp's detokenize (got \"%s\")", out);
		len = detok_all(t, ids + 1, n - 1, out, sizeof(out));
		CHECK(len == 16 && strcmp(out, "Once upon a time") == 0, "without BOS the leading space goes");
	}
}

/* Invalid UTF-8 and odd bytes never crash and always tokenize. */
static void
test_invalid(const lm_tokenizer *t, const char *name)
{
	static const char *cases[] = {
		"\xff", "\xc3", "abc\xe2\x96", "\x80\x80\x80", "\xf4\x90\x80\x80", "\xed\xa0\x80",
		"\xc0\x80", "a\0b", "\xf0\x9f\x98", "<s\xff>", "  \xe2\x96\x81  ",
	};
	static const size_t lens[] = {1, 1, 5, 3, 4, 3, 2, 3, 3, 4, 7};
	int32_t		ids[256];
	char		out[2048];
	bool		ok = true;
	unsigned	seed = 12345;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int			n = lm_tokenize(t, cases[i], lens[i], true, true, ids, 256, NULL, 0);

		ok &= n > 0 && n <= 256;
		if (n > 0)
			detok_all(t, ids, n, out, sizeof(out));
	}
	/* random bytes */
	for (int k = 0; k < 200; k++)
	{
		char		buf[64];
		int			len = 1 + k % 63;
		int			n;

		for (int i = 0; i < len; i++)
		{
			seed = seed * 1103515245u + 12345u;
			buf[i] = (char) (seed >> 16);
		}
		n = lm_tokenize(t, buf, (size_t) len, k & 1, k & 2, ids, 256, NULL, 0);
		ok &= n > 0 && n <= 256;
		if (n > 0 && n <= 256)
		{
			size_t		olen = detok_all(t, ids, n, out, sizeof(out));

			/* output is valid UTF-8 */
			for (size_t i = 0; i < olen;)
			{
				int			r = lm_utf8_check((const unsigned char *) out + i, olen - i);

				if (r <= 0)
				{
					ok = false;
					break;
				}
				i += (size_t) r;
			}
		}
	}
	CHECK(ok, "%s: invalid UTF-8 and random bytes tokenize without error and detokenize to valid UTF-8", name);
}

/* BPE special tokens: <|endoftext|> only with parse_special; EOG. */
static void
test_bpe_special(const lm_tokenizer *t)
{
	int32_t		ids[64];
	int			n;
	bool		has0 = false;

	n = lm_tokenize(t, "a<|endoftext|>b", 15, false, false, ids, 64, NULL, 0);
	for (int i = 0; i < n; i++)
		has0 |= ids[i] == 0;
	CHECK(n > 3 && !has0, "starcoder: parse_special=false keeps \"<|endoftext|>\" as plain text (%d tokens)", n);
	n = lm_tokenize(t, "a<|endoftext|>b", 15, false, true, ids, 64, NULL, 0);
	CHECK(n == 3 && ids[1] == 0, "starcoder: parse_special=true makes it token 0");
	CHECK(lm_tokenizer_is_eog(t, 0), "starcoder: <|endoftext|> ends generation");
	CHECK(strcmp(lm_tokenizer_kind_name(t), "gpt2/starcoder") == 0, "kind name is gpt2/starcoder");
}

/* Compare the pieces of one pre-tokenizer with lengths from Python's regex module. */
static bool
split_is(lm_pretok_kind kind, const char *text, const uint32_t *want, size_t nwant)
{
	uint32_t	cps[256];
	uint16_t	fl[256];
	size_t		n = 0;
	size_t		len = strlen(text);
	lm_pretok_out out = {NULL, 0, 0};
	bool		ok;

	for (size_t o = 0; o < len && n < 256;)
	{
		o += lm_utf8_decode(text + o, len - o, &cps[n]);
		fl[n] = lm_unicode_flags(cps[n]);
		n++;
	}
	ok = lm_pretokenize(kind, cps, fl, n, &out) == 0 && out.n == nwant &&
		memcmp(out.len, want, nwant * sizeof(uint32_t)) == 0;
	free(out.len);
	return ok;
}

/* The LLaMA 3 and Qwen2 splitters (no vocabulary here to test them end to end). */
static void
test_splitters(void)
{
	/* expected: regex.findall(<the tokenizer.json pattern>, text), as lengths in code points */
	static const char *text = "Hello WORLD'S it's 1234567 ,.!?\r\n\r\n  \n x  y\xc3\xa9";
	static const uint32_t llama3[] = {5, 6, 2, 3, 2, 1, 3, 3, 1, 9, 3, 2, 1, 3};
	static const uint32_t qwen2[] = {5, 6, 2, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 9, 3, 2, 1, 3};

	CHECK(split_is(LM_PRETOK_LLAMA3, text, llama3, sizeof(llama3) / sizeof(llama3[0])),
		  "llama3 pre-tokenizer: contractions any case, digits by 3, punctuation with newlines, "
		  "whitespace runs as the tokenizer.json regex splits them");
	CHECK(split_is(LM_PRETOK_QWEN2, text, qwen2, sizeof(qwen2) / sizeof(qwen2[0])),
		  "qwen2 pre-tokenizer: as llama3 but one digit per piece");
}

/*
 * A text that probes piece boundaries: words, contractions, digit runs,
 * whitespace runs, newlines, non-ASCII letters and CJK, special-token
 * texts, invalid bytes, and words and space runs longer than a small window.
 * Malloc'd, len bytes.
 */
static char *
boundary_text(size_t len)
{
	static const char *bits[] = {
		"a", "Once", " upon", " a", " time", "'s", "'RE", "'ll", " 123", "4567", "  ", "   ", "\n",
		"\n\n", "\r\n", "\t", " h\xc3\xa9llo", " \xd0\xb6\xd0\xb8", "\xe6\x97\xa5\xe6\x9c\xac",
		" \xf0\x9f\x8e\x89", "\xe3\x80\x80", "\xc2\xa0", "<s>", "</s>", "<|endoftext|>", "!?", "...",
		"\xff", "\xe2\x96", " x", "\xe2\x96\x81",
	};
	char	   *s = malloc(len);
	unsigned	seed = 4242;
	size_t		n = 0;

	while (n < len)
	{
		const char *b;
		size_t		bl;
		size_t		rep = 1;

		seed = seed * 1103515245u + 12345u;
		b = bits[(seed >> 16) % (sizeof(bits) / sizeof(bits[0]))];
		if ((seed >> 8) % 500 == 0)
			rep = 300;			/* a word or a space run longer than a small window */
		bl = strlen(b);
		for (size_t r = 0; r < rep && n < len; r++)
			for (size_t i = 0; i < bl && n < len; i++)
				s[n++] = b[i];
	}
	return s;
}

/* Tokenize into a malloc'd array; count in *n (-1 on error). */
static int32_t *
tokenize_all(const lm_tokenizer *t, const char *s, size_t len, bool special, int *n)
{
	int32_t    *ids = malloc(sizeof(int32_t) * (len + 16));

	*n = lm_tokenize(t, s, len, true, special, ids, (int) len + 16, NULL, 0);
	return ids;
}

/*
 * The ids do not depend on how the text is cut into windows (BPE) or chunks
 * (SPM): windows of 24 and of the default size give the ids of one window
 * holding the whole text, with and without special-token parsing.
 */
static void
test_windows(lm_tokenizer *t, const char *name)
{
	size_t		len = 200000;
	char	   *s = boundary_text(len);
	size_t		dflt = t->window;
	bool		same = true;
	int			nw = 0;

	for (int special = 0; special < 2; special++)
	{
		int			n_whole;
		int32_t    *whole;

		t->window = len + 1;
		whole = tokenize_all(t, s, len, special, &n_whole);
		nw = n_whole;
		for (int k = 0; k < 2; k++)
		{
			int			n;
			int32_t    *ids;

			t->window = k == 0 ? 24 : dflt;
			ids = tokenize_all(t, s, len, special, &n);
			same &= n == n_whole && n > 0 && memcmp(ids, whole, sizeof(int32_t) * n) == 0;
			free(ids);
		}
		free(whole);
	}
	t->window = dflt;
	CHECK(same, "%s: a 200 kB text gives the same %d ids in windows of 24, of %zu, and in one window",
		  name, nw, dflt);
	free(s);
}

/* Abort callback state: counts calls, asks to stop after stop_after of them. */
typedef struct abort_probe
{
	long		calls;			/* calls so far */
	long		stop_after;		/* calls answered false before the first true */
	size_t		heap_base;		/* heap in use before tokenizing */
	size_t		heap_peak;		/* most heap in use seen at a check */
} abort_probe;

/* Heap in use: malloc'd arena bytes and mmap'd blocks. */
static size_t
heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* The abort callback of the tests. */
static bool
probe_abort(void *arg)
{
	abort_probe *p = arg;
	size_t		h = heap_in_use();

	if (h > p->heap_peak)
		p->heap_peak = h;
	return ++p->calls > p->stop_after;
}

/*
 * lm_tokenize_abortable: checks spread through a long text and inside one
 * long word; once the check says stop, the call ends at once with
 * LM_TOKENIZE_ABORTED; working memory stays bounded by the piece.
 */
static void
test_abort(const lm_tokenizer *t, const char *name)
{
	size_t		len = 2 << 20;
	char	   *s = boundary_text(len);
	int32_t    *ids = malloc(sizeof(int32_t) * (len + 16));
	int32_t    *ref;
	int			n_ref;
	int			n;
	abort_probe p = {0, LONG_MAX, 0, 0};
	char		err[128] = "";
	size_t		extra;

	ref = tokenize_all(t, s, len, false, &n_ref);
	p.heap_base = p.heap_peak = heap_in_use();
	n = lm_tokenize_abortable(t, s, len, true, false, ids, (int) len + 16, probe_abort, &p, NULL, 0);
	CHECK(n == n_ref && n > 0 && memcmp(ids, ref, sizeof(int32_t) * n) == 0,
		  "%s: with an abort check that never fires, the ids are lm_tokenize's (%d)", name, n);
	CHECK(p.calls > 100, "%s: the check runs throughout a 2 MB text (%ld calls)", name, p.calls);
	/* ids of 4 bytes in a vector that doubles (old and new block during a move): at most 12 bytes per id */
	extra = p.heap_peak - p.heap_base;
	CHECK(extra < 12 * (size_t) n + (1 << 20),
		  "%s: memory in use while tokenizing 2 MB stays within the ids plus 1 MB (%zu kB for %d ids)",
		  name, extra >> 10, n);

	p = (abort_probe) {0, 10, 0, 0};
	n = lm_tokenize_abortable(t, s, len, true, false, ids, (int) len + 16, probe_abort, &p, err, sizeof(err));
	CHECK(n == LM_TOKENIZE_ABORTED && p.calls == 11 && strstr(err, "aborted") != NULL,
		  "%s: a check that fires on its 11th call stops the call there (%d, %ld calls, \"%s\")",
		  name, n, p.calls, err);

	/* one word of 200000 letters: checks between merges inside it */
	memset(s, 'a', 200000);
	p = (abort_probe) {0, LONG_MAX, 0, 0};
	n = lm_tokenize_abortable(t, s, 200000, false, false, ids, (int) len + 16, probe_abort, &p, NULL, 0);
	CHECK(n > 0 && p.calls > 10, "%s: inside one 200000-letter word the check runs too (%ld calls)",
		  name, p.calls);
	p = (abort_probe) {0, 2, 0, 0};
	n = lm_tokenize_abortable(t, s, 200000, false, false, ids, (int) len + 16, probe_abort, &p, NULL, 0);
	CHECK(n == LM_TOKENIZE_ABORTED && p.calls == 3, "%s: and stops it (%d after %ld calls)", name, n, p.calls);
	free(ref);
	free(ids);
	free(s);
}

/* Entry point. */
int
main(void)
{
	const char *shared = unit_shared_dir();
	char		dir[1024];
	char		path[2200];
	char		err[512];
	vocab		v;
	static const struct
	{
		const char *name;
		bool		roundtrip;
	}			pairs[] = {
		{"ggml-vocab-llama-spm.gguf", true},
		{"ggml-vocab-phi-3.gguf", true},
		{"ggml-vocab-gpt-2.gguf", true},
		{"ggml-vocab-deepseek-coder.gguf", true},
		{"ggml-vocab-deepseek-llm.gguf", true},
		{"ggml-vocab-falcon.gguf", true},
		{"ggml-vocab-mpt.gguf", true},
		{"ggml-vocab-refact.gguf", true},
		{"ggml-vocab-starcoder.gguf", true},
	};

	test_splitters();
	snprintf(dir, sizeof(dir), "%s/golden/tokenizer", shared);
	snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
	if (!unit_readable(dir) || !unit_readable(path))
	{
		printf("# ../shared (models, golden/tokenizer) not present: vocabulary tests skipped\n");
		return unit_done();
	}

	/* stories260K: its vectors, then SPM details */
	run_pair(dir, path, "stories260K.gguf", true);
	if (vocab_open(&v, path, err, sizeof(err)))
	{
		test_spm(v.t);
		test_holdback(v.t);
		test_invalid(v.t, "stories260K");
		test_windows(v.t, "stories260K");
		test_abort(v.t, "stories260K");
		vocab_close(&v);
	}
	else
		CHECK(false, "stories260K tokenizer loads: %s", err);

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, pairs[i].name);
		run_pair(dir, path, pairs[i].name, pairs[i].roundtrip);
	}

	snprintf(path, sizeof(path), "%s/ggml-vocab-starcoder.gguf", dir);
	if (unit_readable(path) && vocab_open(&v, path, err, sizeof(err)))
	{
		test_bpe_special(v.t);
		test_invalid(v.t, "starcoder");
		vocab_close(&v);
	}
	snprintf(path, sizeof(path), "%s/ggml-vocab-deepseek-llm.gguf", dir);
	if (unit_readable(path) && vocab_open(&v, path, err, sizeof(err)))
	{
		test_invalid(v.t, "deepseek-llm");
		vocab_close(&v);
	}
	/* windows and abort on every pre-tokenizer family with a vocabulary here */
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, pairs[i].name);
		if (unit_readable(path) && vocab_open(&v, path, err, sizeof(err)))
		{
			test_windows(v.t, pairs[i].name);
			if (strcmp(pairs[i].name, "ggml-vocab-gpt-2.gguf") == 0 ||
				strcmp(pairs[i].name, "ggml-vocab-llama-spm.gguf") == 0)
				test_abort(v.t, pairs[i].name);
			vocab_close(&v);
		}
	}

	/* WordPiece (tokenizer_wordpiece.c): llama.cpp's test strings for the bge vocabulary */
	snprintf(path, sizeof(path), "%s/ggml-vocab-bert-bge.gguf", dir);
	run_pair(dir, path, "ggml-vocab-bert-bge.gguf", false);
	printf("# not run (vocab too large to ship): llama-bpe, qwen2, qwen35, command-r, gemma-4 in no-vocab-available/\n");
	return unit_done();
}
