/*
 * tokenizer_bpe.c — byte-level BPE encoding, as llama.cpp does it.
 *
 * The text is decoded to code points (an invalid byte reads as U+FFFD), cut
 * into words by the vocabulary's pre-tokenizer (pretokenize.c), and each word
 * is re-encoded as UTF-8 with every byte replaced by its GPT-2 stand-in code
 * point.  Within a word, adjacent symbols merge in merge-rank order (lowest
 * rank first, leftmost on ties) through a heap; stale entries are recognised
 * by their recorded length.  With ignore_merges (LLaMA 3), a word that is
 * itself a token is emitted whole.  A final symbol that is not a token is
 * emitted as whatever single-byte tokens its bytes match (normally none),
 * which is what llama.cpp does.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"
#include "unicode.h"

/* Encode one word (already byte-mapped) into out. */
static bool
encode_word(const lm_tokenizer *t, const char *w, uint32_t n, lm_tok_sym *sym, lm_tok_heap *heap,
			lm_tok_vec *out)
{
	int32_t		nsym = 0;

	if (n == 0)
		return true;
	if (t->ignore_merges)
	{
		int32_t		id = lm_tok_lookup(t, w, n);

		if (id >= 0)
			return lm_tok_vec_push(out, id);
	}
	for (uint32_t off = 0; off < n;)
	{
		uint32_t	cl = (uint32_t) lm_utf8_lead_len((unsigned char) w[off]);

		if (cl > n - off)
			cl = n - off;
		sym[nsym].start = off;
		sym[nsym].n = cl;
		sym[nsym].prev = nsym - 1;
		off += cl;
		sym[nsym].next = off == n ? -1 : nsym + 1;
		nsym++;
	}
	heap->n = 0;
	for (int32_t i = 1; i < nsym; i++)
	{
		int32_t		r = lm_tok_merge_rank(t, w + sym[i - 1].start, sym[i - 1].n, sym[i - 1].n + sym[i].n);

		if (r >= 0 && !lm_tok_heap_push(heap, (lm_tok_bigram) {(double) r, i - 1, i, sym[i - 1].n + sym[i].n}))
			return false;
	}
	while (heap->n > 0)
	{
		lm_tok_bigram b;
		lm_tok_sym *l;
		int32_t		nb[2][2];

		lm_tok_heap_pop(heap, &b);
		if (!lm_tok_sym_merge(sym, &b))
			continue;
		l = &sym[b.left];
		/* queue the new symbol's pairs with its neighbours */
		nb[0][0] = l->prev;
		nb[0][1] = b.left;
		nb[1][0] = b.left;
		nb[1][1] = l->next;
		for (int k = 0; k < 2; k++)
		{
			int32_t		a = nb[k][0];
			int32_t		c = nb[k][1];
			int32_t		rank;

			if (a < 0 || c < 0)
				continue;
			rank = lm_tok_merge_rank(t, w + sym[a].start, sym[a].n, sym[a].n + sym[c].n);
			if (rank >= 0 &&
				!lm_tok_heap_push(heap, (lm_tok_bigram) {(double) rank, a, c, sym[a].n + sym[c].n}))
				return false;
		}
	}
	for (int32_t i = 0; i != -1; i = sym[i].next)
	{
		int32_t		id = lm_tok_lookup(t, w + sym[i].start, sym[i].n);

		if (id >= 0)
		{
			if (!lm_tok_vec_push(out, id))
				return false;
			continue;
		}
		for (uint32_t j = 0; j < sym[i].n; j++)
		{
			id = lm_tok_lookup(t, w + sym[i].start + j, 1);
			if (id >= 0 && !lm_tok_vec_push(out, id))
				return false;
		}
	}
	return true;
}

/* Encode one text fragment. */
bool
lm_tok_bpe_encode(const lm_tokenizer *t, const char *text, size_t len, lm_tok_vec *out)
{
	uint32_t   *cps = NULL;
	uint16_t   *fl = NULL;
	char	   *word = NULL;
	lm_tok_sym *sym = NULL;
	lm_tok_heap heap = {NULL, 0, 0};
	lm_pretok_out pieces = {NULL, 0, 0};
	size_t		ncp = 0;
	size_t		start = 0;
	bool		ok = false;

	if (len == 0)
		return true;
	if (len >= UINT32_MAX / 16)
		return false;
	cps = malloc(len * sizeof(uint32_t));
	fl = malloc(len * sizeof(uint16_t));
	if (cps == NULL || fl == NULL)
		goto done;
	for (size_t off = 0; off < len;)
	{
		off += lm_utf8_decode(text + off, len - off, &cps[ncp]);
		fl[ncp] = lm_unicode_flags(cps[ncp]);
		ncp++;
	}
	if (lm_pretokenize(t->pre, cps, fl, ncp, &pieces) != 0)
		goto done;
	/* a code point is at most 4 bytes, each byte at most 2 after mapping */
	word = malloc(ncp * 8);
	sym = malloc(ncp * 8 * sizeof(lm_tok_sym));
	if (word == NULL || sym == NULL)
		goto done;
	for (size_t k = 0; k < pieces.n; k++)
	{
		uint32_t	wn = 0;

		for (size_t i = start; i < start + pieces.len[k]; i++)
		{
			char		u8[4];
			int			nb = lm_utf8_encode(cps[i], u8);

			for (int j = 0; j < nb; j++)
				wn += (uint32_t) lm_utf8_encode(lm_unicode_from_byte((uint8_t) u8[j]), word + wn);
		}
		start += pieces.len[k];
		if (!encode_word(t, word, wn, sym, &heap, out))
			goto done;
	}
	ok = true;
done:
	free(cps);
	free(fl);
	free(word);
	free(sym);
	free(heap.a);
	free(pieces.len);
	return ok;
}
