/*
 * features_ngram.c — hashed word n-gram features with TF-IDF weighting (see
 * features_ngram.h for the exact recipe).
 */
#include "features_ngram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Seeds that keep unigram and bigram buckets apart. */
#define UNIGRAM_SEED 0x243f6a8885a308d3ULL
#define BIGRAM_SEED 0x13198a2e03707344ULL
#define CHAR_SEED 0xa4093822299f31d0ULL

/* Free a sparse vector's arrays. */
void
lm_sparse_free(lm_sparse *v)
{
	free(v->idx);
	free(v->val);
	v->idx = NULL;
	v->val = NULL;
	v->n = v->cap = 0;
}

/* Make room for cap entries. */
int
lm_sparse_reserve(lm_sparse *v, int cap)
{
	uint32_t   *idx;
	float	   *val;

	if (cap <= v->cap)
		return 0;
	if (cap < 2 * v->cap)
		cap = 2 * v->cap;
	idx = realloc(v->idx, sizeof(uint32_t) * (size_t) cap);
	if (idx == NULL)
		return -1;
	v->idx = idx;
	val = realloc(v->val, sizeof(float) * (size_t) cap);
	if (val == NULL)
		return -1;
	v->val = val;
	v->cap = cap;
	return 0;
}

/* splitmix64's finaliser: spreads every input bit over the output. */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* True for a byte that belongs to a word. */
static inline int
is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '_' || c >= 0x80;
}

/* Sort order of bucket indices for qsort. */
static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a;
	uint32_t	y = *(const uint32_t *) b;

	return (x > y) - (x < y);
}

/* Raw hashed uni- and bi-gram (and character n-gram) counts of text into v. */
int
lm_ngram_counts(const char *text, size_t len, uint32_t dim, int char_max, lm_sparse *v)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		i = 0;
	uint64_t	prev = 0;
	int			have_prev = 0;
	int			n = 0;
	int			out;

	v->n = 0;
	while (i < len)
	{
		size_t		start;
		uint64_t	h = 0xcbf29ce484222325ULL;	/* FNV-1a over the lower-cased word */

		while (i < len && !is_word_byte(s[i]))
			i++;
		start = i;
		while (i < len && is_word_byte(s[i]))
		{
			unsigned char c = s[i++];

			if (c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			h = (h ^ c) * 0x100000001b3ULL;
		}
		if (i - start < 2)
			continue;
		h = mix64(h);
		if (char_max >= LM_NGRAM_CHAR_MIN)
		{
			/* character n-grams of " word ", lower-cased, FNV-1a per length */
			size_t		wl = i - start + 2;
			size_t		need = (size_t) n + 2 + wl * (size_t) (char_max - LM_NGRAM_CHAR_MIN + 1);

			if (need > INT32_MAX / 2 || lm_sparse_reserve(v, (int) need) != 0)
				return -1;	/* a word of hundreds of megabytes: too many features */
			for (size_t a = 0; a + LM_NGRAM_CHAR_MIN <= wl; a++)
			{
				uint64_t	ch = 0xcbf29ce484222325ULL;

				for (int k = 0; k < char_max && a + k < wl; k++)
				{
					size_t		pos = a + k;
					unsigned char c = (pos == 0 || pos == wl - 1) ? ' ' : s[start + pos - 1];

					if (c >= 'A' && c <= 'Z')
						c += 'a' - 'A';
					ch = (ch ^ c) * 0x100000001b3ULL;
					if (k + 1 >= LM_NGRAM_CHAR_MIN)
						v->idx[n++] = (uint32_t) (mix64(ch ^ CHAR_SEED ^ (uint64_t) (k + 1)) % dim);
				}
			}
		}
		if (lm_sparse_reserve(v, n + 2) != 0)
			return -1;
		v->idx[n++] = (uint32_t) (mix64(h ^ UNIGRAM_SEED) % dim);
		if (have_prev)
			v->idx[n++] = (uint32_t) (mix64(prev * 0x9e3779b97f4a7c15ULL + h + BIGRAM_SEED) % dim);
		prev = h;
		have_prev = 1;
	}
	if (n == 0)
		return 0;

	/* sort the buckets and fold repeats into counts */
	qsort(v->idx, n, sizeof(uint32_t), cmp_u32);
	out = 0;
	for (int k = 0; k < n; k++)
	{
		if (out > 0 && v->idx[out - 1] == v->idx[k])
			v->val[out - 1] += 1.0f;
		else
		{
			v->idx[out] = v->idx[k];
			v->val[out] = 1.0f;
			out++;
		}
	}
	v->n = out;
	return 0;
}

/* Weight raw counts in place and scale to unit L2 norm. */
void
lm_tfidf_apply(const float *idf, uint32_t ngram_dim, lm_sparse *v)
{
	double		norm = 0.0;
	int			out = 0;
	int			k;

	for (k = 0; k < v->n && v->idx[k] < ngram_dim; k++)
	{
		float		w = idf[v->idx[k]];

		if (w == 0.0f)
			continue;
		w *= 1.0f + logf(v->val[k]);
		v->idx[out] = v->idx[k];
		v->val[out] = w;
		norm += (double) w * w;
		out++;
	}
	if (norm > 0.0)
	{
		float		inv = (float) (1.0 / sqrt(norm));

		for (int i = 0; i < out; i++)
			v->val[i] *= inv;
	}
	/* the other features move down behind the kept n-grams */
	for (; k < v->n; k++, out++)
	{
		v->idx[out] = v->idx[k];
		v->val[out] = v->val[k];
	}
	v->n = out;
}

/* idf of each bucket from its document frequency. */
void
lm_idf_from_df(const uint32_t *df, uint32_t dim, int64_t n_rows, float *idf)
{
	for (uint32_t i = 0; i < dim; i++)
		idf[i] = df[i] ? (float) (log((1.0 + (double) n_rows) / (1.0 + df[i])) + 1.0) : 0.0f;
}
