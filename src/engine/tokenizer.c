/*
 * tokenizer.c — lm_tokenize and the small accessors.
 *
 * lm_tokenize first cuts the text at the texts of special tokens, the way
 * llama.cpp's partition does it: special tokens are tried longest first
 * (then lowest id), each taking every leftmost non-overlapping occurrence in
 * the text no earlier token has claimed.  Here the occurrences of all special
 * texts are found in one pass (a hash probe per position and per distinct
 * length of the special texts starting with that byte) and then granted in
 * that priority order, which gives the same cut without rescanning the text
 * once per special token.  Control and unknown tokens take part only with
 * parse_special; user-defined ones always.  The raw pieces between them go
 * to the SPM, BPE or WordPiece encoder, which work through them a bounded piece at a
 * time (see tokenizer_spm.c and tokenizer_bpe.c).  The abort check of
 * lm_tokenize_abortable runs between pieces, inside the encoders, and every
 * 64 kB of the special-token scan.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "tokenizer_int.h"

/* A piece of the text: raw bytes to encode, or one special token. */
typedef struct frag
{
	int32_t		id;				/* special token id, or -1 for raw text */
	size_t		off;			/* raw text: start byte */
	size_t		len;			/* raw text: length */
} frag;

/* One occurrence of a special text. */
typedef struct occurrence
{
	uint32_t	rank;			/* index in t->special (priority) */
	size_t		pos;			/* byte offset in the text */
} occurrence;

/* Growable array helper: make room for one more element of size sz. */
static bool
grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	void	   *p;
	size_t		c;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 16;
	p = realloc(*arr, c * sz);
	if (p == NULL)
		return false;
	*arr = p;
	*cap = c;
	return true;
}

/* Append one id. */
bool
lm_tok_vec_push(lm_tok_vec *v, int32_t id)
{
	if (!grow((void **) &v->v, &v->cap, v->n, sizeof(int32_t)))
		return false;
	v->v[v->n++] = id;
	return true;
}

/* Rank of the special token with exactly this text, -1 if none. */
static int32_t
special_lookup(const lm_tokenizer *t, const char *s, size_t n)
{
	uint64_t	i = lm_tok_hash(LM_TOK_HASH_SEED, s, n) & t->special_mask;

	for (;;)
	{
		uint32_t	v = t->special_index[i];
		const lm_tok_entry *e;

		if (v == 0)
			return -1;
		e = &t->tok[t->special[v - 1]];
		if (e->len == n && memcmp(e->text, s, n) == 0)
			return (int32_t) (v - 1);
		i = (i + 1) & t->special_mask;
	}
}

/* Order occurrences by priority, then position. */
static int
cmp_occurrence(const void *a, const void *b)
{
	const occurrence *x = a;
	const occurrence *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* Order fragments by position. */
static int
cmp_frag(const void *a, const void *b)
{
	const frag *x = a;
	const frag *y = b;

	return x->off < y->off ? -1 : (x->off > y->off);
}

/* ASCII whitespace, as C's isspace in the "C" locale. */
static inline bool
is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Text positions scanned for special texts between two abort checks. */
#define PARTITION_ABORT_EVERY 65536

/* Cut text into raw pieces and special tokens; false when memory runs out or on abort. */
static bool
partition(const lm_tokenizer *t, const char *text, size_t len, bool parse_special, frag **out, size_t *nout,
		  lm_tok_abort *abort)
{
	occurrence *occ = NULL;
	size_t		nocc = 0,
				capocc = 0;
	frag	   *tokf = NULL;	/* accepted special tokens */
	size_t		ntok = 0,
				captok = 0;
	unsigned char *claimed = NULL;	/* 0 free, 1 token, 2 stripped whitespace */
	frag	   *f = NULL;
	size_t		nf = 0,
				capf = 0;
	bool		ok = false;

	*out = NULL;
	*nout = 0;
	/* every occurrence of every special text that may take part */
	for (size_t i = 0; t->n_special > 0 && i < len; i++)
	{
		unsigned char b = (unsigned char) text[i];

		if (i % PARTITION_ABORT_EVERY == PARTITION_ABORT_EVERY - 1 && lm_tok_aborted(abort))
			goto done;
		for (uint32_t k = t->special_len_off[b]; k < t->special_len_off[b + 1]; k++)
		{
			uint32_t	L = t->special_lens[k];
			int32_t		r;
			uint16_t	attr;

			if (L > len - i)
				break;
			r = special_lookup(t, text + i, L);
			if (r < 0)
				continue;
			attr = t->tok[t->special[r]].attr;
			if (!parse_special && (attr & (LM_TATTR_CONTROL | LM_TATTR_UNKNOWN)))
				continue;
			if (!grow((void **) &occ, &capocc, nocc, sizeof(occurrence)))
				goto done;
			occ[nocc].rank = (uint32_t) r;
			occ[nocc].pos = i;
			nocc++;
		}
	}
	if (nocc > 0)
	{
		uint32_t	cur_rank = UINT32_MAX;
		size_t		next_ok = 0;

		claimed = calloc(len, 1);
		if (claimed == NULL)
			goto done;
		qsort(occ, nocc, sizeof(occurrence), cmp_occurrence);
		/* grant occurrences in priority order */
		for (size_t k = 0; k < nocc; k++)
		{
			int32_t		id = t->special[occ[k].rank];
			const lm_tok_entry *e = &t->tok[id];
			size_t		pos = occ[k].pos;
			size_t		end = pos + e->len;
			bool		free_span = true;

			if (occ[k].rank != cur_rank)
			{
				cur_rank = occ[k].rank;
				next_ok = 0;
			}
			if (pos < next_ok)
				continue;
			for (size_t j = pos; j < end && free_span; j++)
				free_span = claimed[j] == 0;
			if (!free_span)
				continue;
			memset(claimed + pos, 1, e->len);
			if (e->attr & LM_TATTR_LSTRIP)
				for (size_t j = pos; j > 0 && claimed[j - 1] == 0 && is_space(text[j - 1]); j--)
					claimed[j - 1] = 2;
			if (e->attr & LM_TATTR_RSTRIP)
				for (; end < len && claimed[end] == 0 && is_space(text[end]); end++)
					claimed[end] = 2;
			next_ok = end;
			if (!grow((void **) &tokf, &captok, ntok, sizeof(frag)))
				goto done;
			tokf[ntok].id = id;
			tokf[ntok].off = pos;
			tokf[ntok].len = e->len;
			ntok++;
		}
		qsort(tokf, ntok, sizeof(frag), cmp_frag);
	}
	/* raw runs between the granted tokens */
	{
		size_t		i = 0;
		size_t		k = 0;

		while (i < len)
		{
			if (k < ntok && tokf[k].off == i)
			{
				if (!grow((void **) &f, &capf, nf, sizeof(frag)))
					goto done;
				f[nf].id = tokf[k].id;
				f[nf].off = i;
				f[nf].len = 0;
				nf++;
				i += tokf[k].len;
				k++;
			}
			else if (claimed != NULL && claimed[i] != 0)
				i++;			/* stripped whitespace */
			else
			{
				size_t		j = i;

				while (j < len && (claimed == NULL || claimed[j] == 0))
					j++;
				if (!grow((void **) &f, &capf, nf, sizeof(frag)))
					goto done;
				f[nf].id = -1;
				f[nf].off = i;
				f[nf].len = j - i;
				nf++;
				i = j;
			}
		}
	}
	*out = f;
	*nout = nf;
	f = NULL;
	ok = true;
done:
	free(occ);
	free(tokf);
	free(claimed);
	free(f);
	return ok;
}

/* Tokenize text. */
int
lm_tokenize(const lm_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
			int32_t *out, int max_out, char *err, size_t errlen)
{
	return lm_tokenize_abortable(t, text, len, add_special, parse_special, out, max_out, NULL, NULL,
								 err, errlen);
}

/* Tokenize text, piece by piece, with an abort check between pieces. */
int
lm_tokenize_abortable(const lm_tokenizer *t, const char *text, size_t len, bool add_special,
					  bool parse_special, int32_t *out, int max_out,
					  lm_tok_abort_fn abort_fn, void *abort_arg, char *err, size_t errlen)
{
	lm_tok_abort abort = {abort_fn, abort_arg, false};
	lm_tok_vec	v = {NULL, 0, 0};
	frag	   *f = NULL;
	size_t		nf = 0;
	bool		prev_special = true;
	int			result = -1;

	if (t == NULL || (text == NULL && len > 0) || max_out < 0 || (out == NULL && max_out > 0))
	{
		lm_set_err(err, errlen, "lm_tokenize: invalid arguments");
		return -1;
	}
	if (add_special && t->add_bos && !lm_tok_vec_push(&v, t->bos))
		goto oom;
	if (len > 0 && !partition(t, text, len, parse_special, &f, &nf, &abort))
		goto oom;
	for (size_t k = 0; k < nf; k++)
	{
		bool		ok;

		if (lm_tok_aborted(&abort))
			goto oom;
		if (f[k].id >= 0)
		{
			ok = lm_tok_vec_push(&v, f[k].id);
			prev_special = true;
		}
		else if (t->model == LM_TOKMODEL_SPM)
		{
			ok = lm_tok_spm_encode(t, text + f[k].off, f[k].len, t->add_space_prefix && prev_special, &v,
								   &abort);
			prev_special = false;
		}
		else if (t->model == LM_TOKMODEL_WPM)
			ok = lm_tok_wpm_encode(t, text + f[k].off, f[k].len, &v, &abort);
		else
			ok = lm_tok_bpe_encode(t, text + f[k].off, f[k].len, &v, &abort);
		if (!ok)
			goto oom;
	}
	if (add_special && t->add_eos && !lm_tok_vec_push(&v, t->eos))
		goto oom;
	if (v.n > INT_MAX)
	{
		lm_set_err(err, errlen, "text needs more than INT_MAX tokens");
		goto done;
	}
	if (max_out > 0 && v.n > 0)
		memcpy(out, v.v, (v.n < (size_t) max_out ? v.n : (size_t) max_out) * sizeof(int32_t));
	result = (int) v.n;
	goto done;
oom:
	if (abort.hit)
	{
		lm_set_err(err, errlen, "tokenizing was aborted");
		result = LM_TOKENIZE_ABORTED;
	}
	else
		lm_set_err(err, errlen, "out of memory while tokenizing");
done:
	free(v.v);
	free(f);
	return result;
}

/* Vocabulary size. */
int32_t
lm_tokenizer_n_vocab(const lm_tokenizer *t)
{
	return t->n_vocab;
}

/* BOS id. */
int32_t
lm_tokenizer_bos(const lm_tokenizer *t)
{
	return t->bos;
}

/* EOS id. */
int32_t
lm_tokenizer_eos(const lm_tokenizer *t)
{
	return t->eos;
}

/* Whether prompts get BOS. */
bool
lm_tokenizer_add_bos(const lm_tokenizer *t)
{
	return t->add_bos;
}

/* End-of-generation test. */
bool
lm_tokenizer_is_eog(const lm_tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->tok[id].attr & LM_TATTR_EOG) != 0;
}

/* Control-token test. */
bool
lm_tokenizer_is_control(const lm_tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->tok[id].attr & LM_TATTR_CONTROL) != 0;
}

/* Exact text lookup. */
int32_t
lm_tokenizer_find(const lm_tokenizer *t, const char *piece, size_t len)
{
	if (piece == NULL && len > 0)
		return -1;
	return lm_tok_lookup(t, piece, len);
}

/* Model name. */
const char *
lm_tokenizer_kind_name(const lm_tokenizer *t)
{
	return t->name;
}
