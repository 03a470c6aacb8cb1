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
 *
 * The text is handled a window at a time (lm_tokenizer.window code points):
 * the pre-tokenizer splits the part of the window that the text after it
 * cannot change (lm_pretokenize_prefix), those words are encoded, and the
 * next window starts where they end; a window with no such part (one word
 * longer than the window) is doubled.  So memory follows the window and the
 * longest word, not the text, and the ids are those of one pass over the
 * whole text.  The abort check runs between words and every
 * LM_TOK_ABORT_EVERY merges inside one.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"
#include "unicode.h"

/* Encode one word (already byte-mapped) into out; false when memory runs out or on abort. */
static bool
encode_word(const lm_tokenizer *t, const char *w, uint32_t n, lm_tok_sym *sym, lm_tok_heap *heap,
			lm_tok_vec *out, lm_tok_abort *abort)
{
	int32_t		nsym = 0;
	uint32_t	pops = 0;

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

		if (++pops % LM_TOK_ABORT_EVERY == 0 && lm_tok_aborted(abort))
			return false;
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

/* Make *buf hold at least n elements of size sz; false when memory runs out. */
static bool
reserve(void **buf, size_t *cap, size_t n, size_t sz)
{
	void	   *p;

	if (n <= *cap)
		return true;
	p = realloc(*buf, n * sz);
	if (p == NULL)
		return false;
	*buf = p;
	*cap = n;
	return true;
}

/* Work space of one encode call, sized by the window and the longest word. */
typedef struct bpe_work
{
	uint32_t   *cps;			/* the window's code points */
	size_t		cp_cap;			/* entries allocated */
	uint16_t   *fl;				/* their LM_UC_* flags */
	size_t		fl_cap;			/* entries allocated */
	char	   *word;			/* one word, byte-mapped */
	size_t		word_cap;		/* bytes allocated */
	lm_tok_sym *sym;			/* its symbols */
	size_t		sym_cap;		/* entries allocated */
	lm_tok_heap heap;			/* candidate merges */
	lm_pretok_out pieces;		/* word lengths of the window, code points */
} bpe_work;

/* Byte-map and encode the words of cps[0..): false when memory runs out or on abort. */
static bool
encode_words(const lm_tokenizer *t, bpe_work *w, lm_tok_vec *out, lm_tok_abort *abort)
{
	size_t		start = 0;

	for (size_t k = 0; k < w->pieces.n; k++)
	{
		size_t		ncp = w->pieces.len[k];
		uint32_t	wn = 0;

		if (lm_tok_aborted(abort))
			return false;
		/* a code point is at most 4 bytes, each one symbol of at most 2 bytes after mapping */
		if (!reserve((void **) &w->word, &w->word_cap, ncp * 8, 1) ||
			!reserve((void **) &w->sym, &w->sym_cap, ncp * 4, sizeof(lm_tok_sym)))
			return false;
		for (size_t i = start; i < start + ncp; i++)
		{
			char		u8[4];
			int			nb = lm_utf8_encode(w->cps[i], u8);

			for (int j = 0; j < nb; j++)
				wn += (uint32_t) lm_utf8_encode(lm_unicode_from_byte((uint8_t) u8[j]), w->word + wn);
		}
		start += ncp;
		if (!encode_word(t, w->word, wn, w->sym, &w->heap, out, abort))
			return false;
	}
	return true;
}

/* Encode one text fragment, a window at a time. */
bool
lm_tok_bpe_encode(const lm_tokenizer *t, const char *text, size_t len, lm_tok_vec *out, lm_tok_abort *abort)
{
	bpe_work	w = {0};
	size_t		pos = 0;		/* bytes of text encoded */
	size_t		window = t->window > LM_PRETOK_LOOKAHEAD ? t->window : 2 * LM_PRETOK_LOOKAHEAD;
	bool		ok = false;

	if (len >= UINT32_MAX / 16)
		return false;
	while (pos < len)
	{
		size_t		ncp = 0;
		size_t		off = pos;
		size_t		done;

		if (!reserve((void **) &w.cps, &w.cp_cap, window, sizeof(uint32_t)) ||
			!reserve((void **) &w.fl, &w.fl_cap, window, sizeof(uint16_t)))
			goto done;
		/* decode up to a window of code points (an invalid byte reads as U+FFFD) */
		while (off < len && ncp < window)
		{
			off += lm_utf8_decode(text + off, len - off, &w.cps[ncp]);
			w.fl[ncp] = lm_unicode_flags(w.cps[ncp]);
			ncp++;
		}
		w.pieces.n = 0;
		if (lm_pretokenize_prefix(t->pre, w.cps, w.fl, ncp, off < len, &w.pieces, &done) != 0)
			goto done;
		if (done == 0)
		{
			/* one word fills the window: look further */
			window *= 2;
			continue;
		}
		if (!encode_words(t, &w, out, abort))
			goto done;
		/* step over the bytes of the code points encoded */
		if (done == ncp)
			pos = off;
		else
			for (size_t i = 0; i < done; i++)
			{
				uint32_t	cp;

				pos += lm_utf8_decode(text + pos, len - pos, &cp);
			}
	}
	ok = true;
done:
	free(w.cps);
	free(w.fl);
	free(w.word);
	free(w.sym);
	free(w.heap.a);
	free(w.pieces.len);
	return ok;
}
