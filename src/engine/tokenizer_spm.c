/*
 * tokenizer_spm.c — SentencePiece-style (SPM) encoding, as llama.cpp does it.
 *
 * The text (with an optional leading space) has its spaces replaced by U+2581
 * and is cut into UTF-8 characters (by lead byte; invalid bytes stand alone).
 * Every adjacent pair whose concatenation is a token goes into a heap keyed
 * by that token's score; the best pair (highest score, leftmost on ties)
 * merges, and the new symbol's pairs with its neighbours are queued.  Heap
 * entries made stale by earlier merges are recognised by their recorded
 * length and skipped.  O(n log n).  Each final symbol is a token, or — for
 * characters the vocabulary lacks — its bytes as <0xNN> tokens.
 *
 * A long text is encoded in chunks of about lm_tokenizer.window bytes.  A
 * chunk ends at a symbol boundary that no token of the vocabulary spans
 * (checked by looking up every span of up to the longest token's length
 * across it): no merge can then join the two sides, and merges on one side
 * never depend on the other (a pair's order is its score, then its position,
 * the same within a side), so the chunks give the ids of one pass over the
 * whole text.  Cuts before a space are tried first; a chunk with no possible
 * cut grows.  The abort check runs between chunks and every
 * LM_TOK_ABORT_EVERY merges.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"
#include "unicode.h"

/* Work state of one encode call. */
typedef struct spm_state
{
	const lm_tokenizer *t;
	const char *buf;			/* escaped text */
	lm_tok_sym *sym;			/* symbols */
	lm_tok_heap heap;			/* candidate merges */
} spm_state;

/* Queue the pair (l, r) when it forms a token. */
static bool
try_pair(spm_state *s, int32_t l, int32_t r)
{
	lm_tok_bigram b;
	uint32_t	size;
	int32_t		id;

	if (l < 0 || r < 0)
		return true;
	size = s->sym[l].n + s->sym[r].n;
	id = lm_tok_lookup(s->t, s->buf + s->sym[l].start, size);
	if (id < 0)
		return true;
	b.key = -(double) s->t->tok[id].score;
	b.left = l;
	b.right = r;
	b.size = size;
	return lm_tok_heap_push(&s->heap, b);
}

/* Cut positions tried per chunk, before a space and elsewhere. */
#define MAX_CUT_TRIES 32

/* Encode one chunk of raw text; false when memory runs out or on abort. */
static bool
encode_chunk(const lm_tokenizer *t, const char *text, size_t len, bool space_prefix, lm_tok_vec *out,
			 lm_tok_abort *abort)
{
	spm_state	s = {t, NULL, NULL, {NULL, 0, 0}};
	char	   *buf;
	size_t		n = 0;
	int32_t		nsym = 0;
	uint32_t	pops = 0;
	bool		ok = false;

	if (len > (SIZE_MAX - 3) / 3 || len >= UINT32_MAX / 4)
		return false;
	buf = malloc(3 * len + 3);
	s.sym = malloc((len + 1) * sizeof(lm_tok_sym));
	if (buf == NULL || s.sym == NULL)
		goto done;
	s.buf = buf;
	/* escape: ' ' -> U+2581 */
	if (space_prefix)
	{
		memcpy(buf, "\xe2\x96\x81", 3);
		n = 3;
	}
	for (size_t i = 0; i < len; i++)
	{
		if (text[i] == ' ')
		{
			memcpy(buf + n, "\xe2\x96\x81", 3);
			n += 3;
		}
		else
			buf[n++] = text[i];
	}
	if (n == 0)
	{
		ok = true;
		goto done;
	}
	/* one symbol per UTF-8 character */
	for (size_t off = 0; off < n;)
	{
		size_t		cl = lm_utf8_lead_len((unsigned char) buf[off]);

		if (cl > n - off)
			cl = n - off;
		s.sym[nsym].start = (uint32_t) off;
		s.sym[nsym].n = (uint32_t) cl;
		s.sym[nsym].prev = nsym - 1;
		off += cl;
		s.sym[nsym].next = off == n ? -1 : nsym + 1;
		nsym++;
	}
	for (int32_t i = 1; i < nsym; i++)
		if (!try_pair(&s, i - 1, i))
			goto done;
	/* merge the best pair while any remain */
	while (s.heap.n > 0)
	{
		lm_tok_bigram b;
		lm_tok_sym *l;

		if (++pops % LM_TOK_ABORT_EVERY == 0 && lm_tok_aborted(abort))
			goto done;
		lm_tok_heap_pop(&s.heap, &b);
		if (!lm_tok_sym_merge(s.sym, &b))
			continue;
		l = &s.sym[b.left];
		if (!try_pair(&s, l->prev, b.left) || !try_pair(&s, b.left, l->next))
			goto done;
	}
	/* emit: a token, or the bytes of an unknown character */
	for (int32_t i = 0; i != -1; i = s.sym[i].next)
	{
		const lm_tok_sym *y = &s.sym[i];
		int32_t		id = lm_tok_lookup(t, buf + y->start, y->n);

		if (id >= 0)
		{
			if (!lm_tok_vec_push(out, id))
				goto done;
			continue;
		}
		for (uint32_t j = 0; j < y->n; j++)
		{
			id = t->byte_id[(unsigned char) buf[y->start + j]];
			if (id < 0)
				id = t->unk;
			if (id >= 0 && !lm_tok_vec_push(out, id))
				goto done;
		}
	}
	ok = true;
done:
	free(buf);
	free(s.sym);
	free(s.heap.a);
	return ok;
}

/* Escape raw text[from..to) (' ' -> U+2581) into out; returns the bytes written. */
static size_t
escape(const char *text, size_t from, size_t to, char *out)
{
	size_t		n = 0;

	for (size_t i = from; i < to; i++)
	{
		if (text[i] == ' ')
		{
			memcpy(out + n, "\xe2\x96\x81", 3);
			n += 3;
		}
		else
			out[n++] = text[i];
	}
	return n;
}

/*
 * True when no token spans raw offset c of text[0..len): no escaped span
 * that starts before c and ends after it, at most max_len bytes long, is a
 * token.  c must be at least max_len (esc holds 6 * max_len bytes).
 */
static bool
no_token_spans(const lm_tokenizer *t, const char *text, size_t len, size_t c, char *esc)
{
	size_t		L = t->max_len;
	size_t		left = escape(text, c - L, c, esc);
	size_t		total = left + escape(text, c, c + L < len ? c + L : len, esc + left);

	for (size_t i = left - L + 1; i < left; i++)
		for (size_t j = left + 1; j <= total && j - i <= L; j++)
			if (lm_tok_lookup(t, esc + i, j - i) >= 0)
				return false;
	return true;
}

/*
 * Where to end the chunk that starts at raw offset from (a symbol start):
 * a raw offset in the second half of the next target bytes where a symbol
 * starts and no token spans, before a space when possible; 0 if none.
 * cand is scratch space for target / 2 + 1 offsets.
 */
static size_t
find_cut(const lm_tokenizer *t, const char *text, size_t len, size_t from, size_t target, size_t *cand,
		 char *esc)
{
	size_t		lim = from + target < len ? from + target : len;
	size_t		half = from + target / 2;
	size_t		ncand = 0;
	size_t		rem = 0;		/* escaped bytes left in the current symbol */

	/* walk the symbols the encoder would make, over the escaped bytes */
	for (size_t r = from; r < lim; r++)
	{
		const char *e = text[r] == ' ' ? "\xe2\x96\x81" : text + r;
		int			ne = text[r] == ' ' ? 3 : 1;

		if (rem == 0 && r > half && r >= t->max_len)
			cand[ncand++] = r;
		for (int k = 0; k < ne; k++)
			rem = rem == 0 ? lm_utf8_lead_len((unsigned char) e[k]) - 1 : rem - 1;
	}
	/* latest first: before a space, then anywhere */
	for (int pass = 0; pass < 2; pass++)
	{
		int			tries = 0;

		for (size_t k = ncand; k > 0 && tries < MAX_CUT_TRIES; k--)
		{
			size_t		c = cand[k - 1];

			if ((text[c] == ' ') != (pass == 0))
				continue;
			tries++;
			if (no_token_spans(t, text, len, c, esc))
				return c;
		}
	}
	return 0;
}

/* Encode one text fragment, a chunk at a time. */
bool
lm_tok_spm_encode(const lm_tokenizer *t, const char *text, size_t len, bool space_prefix, lm_tok_vec *out,
				  lm_tok_abort *abort)
{
	size_t		target = t->window > 16 ? t->window : 16;
	size_t		pos = 0;
	size_t	   *cand = NULL;
	char	   *esc = NULL;
	bool		ok = false;

	if (len > target)
	{
		cand = malloc((target / 2 + 1) * sizeof(size_t));
		esc = malloc(6 * (size_t) t->max_len + 6);
		if (cand == NULL || esc == NULL)
			goto done;
	}
	while (pos < len)
	{
		size_t		c = len;

		if (len - pos > target)
		{
			c = find_cut(t, text, len, pos, target, cand, esc);
			if (c == 0)
			{
				/* no cut here: try a chunk twice as long */
				size_t	   *p = realloc(cand, (target + 1) * sizeof(size_t));

				if (p == NULL)
					goto done;
				cand = p;
				target *= 2;
				continue;
			}
		}
		if (lm_tok_aborted(abort) ||
			!encode_chunk(t, text + pos, c - pos, space_prefix && pos == 0, out, abort))
			goto done;
		pos = c;
	}
	ok = true;
done:
	free(cand);
	free(esc);
	return ok;
}
