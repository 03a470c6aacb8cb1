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

/* Encode one text fragment. */
bool
lm_tok_spm_encode(const lm_tokenizer *t, const char *text, size_t len, bool space_prefix, lm_tok_vec *out)
{
	spm_state	s = {t, NULL, NULL, {NULL, 0, 0}};
	char	   *buf;
	size_t		n = 0;
	int32_t		nsym = 0;
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
