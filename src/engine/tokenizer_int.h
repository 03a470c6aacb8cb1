/*
 * tokenizer_int.h — the tokenizer's internal layout, shared by its files
 * (tokenizer_load.c, tokenizer.c, tokenizer_spm.c, tokenizer_bpe.c,
 * tokenizer_wordpiece.c, tokenizer_piece.c).  Not for use outside the tokenizer.
 */
#ifndef LM_TOKENIZER_INT_H
#define LM_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hash.h"
#include "pretokenize.h"
#include "tokenizer.h"

/* Token attributes (from tokenizer.ggml.token_type, then adjusted as llama.cpp does). */
#define LM_TATTR_UNDEFINED		0x0000	/* type 0 or unknown type: renders as "" */
#define LM_TATTR_UNKNOWN		0x0001	/* type 2: <unk> */
#define LM_TATTR_UNUSED			0x0002	/* type 5 */
#define LM_TATTR_NORMAL			0x0004	/* type 1 */
#define LM_TATTR_CONTROL		0x0008	/* type 3: <s>, <|im_end|>, ... */
#define LM_TATTR_USER_DEFINED	0x0010	/* type 4: always matched in raw text */
#define LM_TATTR_BYTE			0x0020	/* type 6: <0xNN> */
#define LM_TATTR_LSTRIP			0x0080	/* eat whitespace before the token when matched */
#define LM_TATTR_RSTRIP			0x0100	/* eat whitespace after the token when matched */
#define LM_TATTR_EOG			0x1000	/* ends generation (lmgen's own bit) */

/* Tokenizer models. */
typedef enum lm_tok_model
{
	LM_TOKMODEL_SPM = 1,		/* "llama" */
	LM_TOKMODEL_BPE = 2,		/* "gpt2" */
	LM_TOKMODEL_WPM = 3			/* "bert" (WordPiece) */
} lm_tok_model;

/* One vocabulary entry. */
typedef struct lm_tok_entry
{
	const char *text;			/* token text: in the GGUF mapping, or in owned storage */
	uint32_t	len;			/* text length in bytes (> 0) */
	float		score;			/* SPM merge score (tokenizer.ggml.scores), 0 if absent */
	uint16_t	attr;			/* LM_TATTR_* bits */
} lm_tok_entry;

/* One BPE merge "left right"; its rank is its index in the merge list. */
typedef struct lm_tok_merge
{
	const char *left;			/* left part, in the GGUF mapping */
	uint32_t	left_len;		/* bytes */
	const char *right;			/* right part, in the GGUF mapping */
	uint32_t	right_len;		/* bytes */
} lm_tok_merge;

/* Merge steps inside one piece between two abort checks. */
#define LM_TOK_ABORT_EVERY 4096

/* Default text encoded per step: SPM raw bytes, BPE code points (lm_tokenizer.window). */
#define LM_TOK_WINDOW 16384

/* The abort check of one tokenize call. */
typedef struct lm_tok_abort
{
	lm_tok_abort_fn fn;			/* NULL: never abort */
	void	   *arg;			/* its argument */
	bool		hit;			/* fn has asked to stop */
} lm_tok_abort;

/* True once the call's abort check has asked to stop (asks fn again until then). */
static inline bool
lm_tok_aborted(lm_tok_abort *a)
{
	if (!a->hit && a->fn != NULL && a->fn(a->arg))
		a->hit = true;
	return a->hit;
}

/* A growable list of token ids. */
typedef struct lm_tok_vec
{
	int32_t    *v;				/* ids */
	size_t		n;				/* ids stored */
	size_t		cap;			/* ids allocated */
} lm_tok_vec;

/* A candidate merge of two adjacent symbols. */
typedef struct lm_tok_bigram
{
	double		key;			/* smaller pops first: -score (SPM) or rank (BPE) */
	int32_t		left;			/* left symbol index; ties pop the leftmost first */
	int32_t		right;			/* right symbol index */
	uint32_t	size;			/* byte length of the pair when queued (stale check) */
} lm_tok_bigram;

/* A binary min-heap of bigrams. */
typedef struct lm_tok_heap
{
	lm_tok_bigram *a;			/* heap array */
	size_t		n;				/* entries */
	size_t		cap;			/* allocated */
} lm_tok_heap;

/* True when x must pop before y. */
static inline bool
lm_tok_bigram_before(const lm_tok_bigram *x, const lm_tok_bigram *y)
{
	return x->key < y->key || (x->key == y->key && x->left < y->left);
}

/* Push a bigram; false when memory runs out. */
static inline bool
lm_tok_heap_push(lm_tok_heap *h, lm_tok_bigram b)
{
	size_t		i;

	if (h->n == h->cap)
	{
		size_t		cap = h->cap ? h->cap * 2 : 64;
		lm_tok_bigram *p = (lm_tok_bigram *) realloc(h->a, cap * sizeof(lm_tok_bigram));

		if (p == NULL)
			return false;
		h->a = p;
		h->cap = cap;
	}
	i = h->n++;
	while (i > 0 && lm_tok_bigram_before(&b, &h->a[(i - 1) / 2]))
	{
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = b;
	return true;
}

/* Pop the first bigram into *out (heap must not be empty). */
static inline void
lm_tok_heap_pop(lm_tok_heap *h, lm_tok_bigram *out)
{
	lm_tok_bigram last;
	size_t		i = 0;

	*out = h->a[0];
	last = h->a[--h->n];
	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && lm_tok_bigram_before(&h->a[c + 1], &h->a[c]))
			c++;
		if (!lm_tok_bigram_before(&h->a[c], &last))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n > 0)
		h->a[i] = last;
}

/* A symbol in a doubly linked list over a byte buffer. */
typedef struct lm_tok_sym
{
	int32_t		prev;			/* previous live symbol, -1 at the start */
	int32_t		next;			/* next live symbol, -1 at the end */
	uint32_t	start;			/* first byte in the buffer */
	uint32_t	n;				/* bytes; 0 once merged into its left neighbour */
} lm_tok_sym;

/* Merge bigram b's right symbol into its left one; false, doing nothing, when b is stale. */
static inline bool
lm_tok_sym_merge(lm_tok_sym *sym, const lm_tok_bigram *b)
{
	lm_tok_sym *l = &sym[b->left];
	lm_tok_sym *r = &sym[b->right];

	if (l->n == 0 || r->n == 0 || l->n + r->n != b->size)
		return false;
	l->n += r->n;
	r->n = 0;
	l->next = r->next;
	if (r->next >= 0)
		sym[r->next].prev = b->left;
	return true;
}

struct lm_tokenizer
{
	lm_tok_model model;			/* SPM or BPE */
	lm_pretok_kind pre;			/* BPE pre-tokenizer family */
	char		name[80];		/* "llama" or "gpt2/<pre>", for messages */
	int32_t		n_vocab;		/* tokens */
	lm_tok_entry *tok;			/* [n_vocab] */
	uint32_t   *index;			/* open addressing text -> id+1 (0 = empty slot) */
	uint64_t	index_mask;		/* slots - 1 (slots a power of two) */

	lm_tok_merge *merges;		/* [n_merges], BPE only */
	uint32_t	n_merges;
	uint32_t   *merge_index;	/* open addressing (left,right) -> rank+1 */
	uint64_t	merge_mask;

	int32_t    *special;		/* control/user-defined/unknown ids, longest text first */
	uint32_t	n_special;
	uint32_t   *special_index;	/* open addressing text -> rank in special[] + 1 */
	uint64_t	special_mask;
	uint32_t	special_len_off[257];	/* special_lens[off[b]..off[b+1]): distinct lengths of */
	uint32_t   *special_lens;	/* the special texts starting with byte b, ascending */

	int32_t		byte_id[256];	/* SPM: byte-fallback token of each byte, -1 if none */

	int32_t		bos;			/* -1 if none */
	int32_t		eos;
	int32_t		eot;
	int32_t		eom;
	int32_t		unk;
	bool		add_bos;		/* prompt gets BOS (tokenizer.ggml.add_bos_token) */
	bool		add_eos;		/* prompt gets EOS */
	bool		add_space_prefix;	/* SPM: a space before the first word */
	bool		ignore_merges;	/* BPE: a word that is a token stays whole (llama3) */
	uint32_t	max_len;		/* longest token text, bytes (SPM chunk cuts) */
	size_t		window;			/* text encoded per step: SPM bytes, BPE code points */
	char	   *owned;			/* storage for texts made up at load ([EMPTY_n]) */
	/* WordPiece settings (tokenizer.wordpiece.*; tokenizer_wordpiece.c) */
	bool		wpm_lowercase;	/* lower-case the text */
	bool		wpm_strip_accents;	/* decompose and drop nonspacing marks */
	bool		wpm_chinese;	/* CJK ideographs are words of their own */
	bool		wpm_clean_text; /* drop control characters, NUL and U+FFFD */
	size_t		wpm_max_chars;	/* longer words become [UNK] */
};

/* Hash of bytes, continuing from h (start with LM_TOK_HASH_SEED); keyed, see hash.h. */
#define LM_TOK_HASH_SEED LM_HASH_INIT
static inline uint64_t
lm_tok_hash(uint64_t h, const char *s, size_t n)
{
	return lm_hash(h, s, n);
}

/* Id of the token with exactly this text, -1 if none. */
extern int32_t lm_tok_lookup(const lm_tokenizer *t, const char *s, size_t n);

/* Rank of merging left span[0..left_len) with span[left_len..total), -1 if no such merge. */
extern int32_t lm_tok_merge_rank(const lm_tokenizer *t, const char *span, size_t left_len, size_t total);

/* Hash of a merge pair (also used at load to build merge_index). */
extern uint64_t lm_tok_merge_hash(const char *left, size_t left_len, const char *right, size_t right_len);

/* Append one id; false when memory runs out. */
extern bool lm_tok_vec_push(lm_tok_vec *v, int32_t id);

/* SPM-encode raw text (spaces not yet escaped); false when memory runs out or on abort. */
extern bool lm_tok_spm_encode(const lm_tokenizer *t, const char *text, size_t len, bool space_prefix,
							  lm_tok_vec *out, lm_tok_abort *abort);

/* BPE-encode raw text (pre-tokenize, byte-map, merge); false when memory runs out or on abort. */
extern bool lm_tok_bpe_encode(const lm_tokenizer *t, const char *text, size_t len, lm_tok_vec *out,
							  lm_tok_abort *abort);

/* WordPiece-encode raw text (normalise, split, greedy pieces); false when memory runs out or on abort. */
extern bool lm_tok_wpm_encode(const lm_tokenizer *t, const char *text, size_t len, lm_tok_vec *out,
							  lm_tok_abort *abort);

#endif							/* LM_TOKENIZER_INT_H */
