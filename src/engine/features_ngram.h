/*
 * features_ngram.h — text features for the trained classifiers: hashed word uni-
 * and bi-grams with TF-IDF weighting, as sparse vectors.
 *
 * A word is a maximal run of ASCII letters, digits and '_' or of bytes >= 0x80
 * (so UTF-8 letters stay inside words), lower-cased in ASCII, of at least two
 * bytes.  Optionally (char_max > 0) each character n-gram of lengths
 * LM_NGRAM_CHAR_MIN..char_max of the lower-cased word with a space at each
 * end ("nix" of " unix ") is a feature too.  Each word, character n-gram and
 * pair of adjacent words is hashed (a fixed,
 * unkeyed 64-bit hash: the same text gives the same buckets in every process
 * and on every machine) into one of `dim` buckets.  A row's raw counts become
 * weights as (1 + ln tf) * idf, then the row is scaled to unit L2 norm.
 * idf is fitted on the training rows: ln((1 + n) / (1 + df)) + 1 for a bucket
 * seen in df > 0 rows, and 0 for a bucket never seen (so words met only at
 * prediction time neither score nor dilute the norm).
 */
#ifndef LM_FEATURES_NGRAM_H
#define LM_FEATURES_NGRAM_H

#include <stddef.h>
#include <stdint.h>

#define LM_NGRAM_MIN_DIM 16				/* smallest hashing dimension */
#define LM_NGRAM_DEFAULT_DIM (1 << 19)	/* default hashing dimension */
#define LM_NGRAM_MAX_DIM (1 << 24)		/* largest hashing dimension */
#define LM_NGRAM_CHAR_MIN 3				/* shortest character n-gram */
#define LM_NGRAM_DEFAULT_CHAR_MAX 4		/* longest character n-gram, by default */
#define LM_NGRAM_MAX_CHAR_MAX 8			/* largest char_max accepted */

/* A sparse vector: n entries with strictly increasing indices. */
typedef struct lm_sparse
{
	int			n;				/* entries in use */
	int			cap;			/* entries allocated */
	uint32_t   *idx;			/* (cap) bucket indices, increasing */
	float	   *val;			/* (cap) values */
} lm_sparse;

/* Free a sparse vector's arrays (the struct itself is the caller's). */
extern void lm_sparse_free(lm_sparse *v);

/* Make room for cap entries; 0, or -1 when out of memory. */
extern int	lm_sparse_reserve(lm_sparse *v, int cap);

/*
 * Raw hashed uni- and bi-gram counts of UTF-8 text (len bytes) into v,
 * replacing its contents; with char_max > 0 also the words' character
 * n-grams of lengths LM_NGRAM_CHAR_MIN..char_max.  0, or -1 when out of memory.
 */
extern int	lm_ngram_counts(const char *text, size_t len, uint32_t dim, int char_max, lm_sparse *v);

/*
 * Weight raw counts in place: (1 + ln tf) * idf[i], drop idf 0, scale to unit
 * L2 norm.  Only the entries below ngram_dim are n-gram counts; those at or
 * above it (other features appended after them) are kept as they are.
 */
extern void lm_tfidf_apply(const float *idf, uint32_t ngram_dim, lm_sparse *v);

/* idf of each of dim buckets from df[i] (rows containing bucket i) out of n_rows rows. */
extern void lm_idf_from_df(const uint32_t *df, uint32_t dim, int64_t n_rows, float *idf);

#endif							/* LM_FEATURES_NGRAM_H */
