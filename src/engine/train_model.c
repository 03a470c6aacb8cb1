/*
 * train_model.c — a trained classifier's memory, byte form and prediction.
 */
#include "train_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

#define CLASSIFIER_MAGIC "LMCL"
#define CLASSIFIER_VERSION 2
#define HEADER_BYTES 24			/* magic + five uint32 */
#define HEADER_BYTES_V1 20		/* magic + four uint32 (no char_max) */
#define PREFETCH_AHEAD 8		/* weight rows are fetched this many features ahead */

/* A classifier with zero weights. */
lm_classifier *
lm_classifier_create(int32_t n_classes, uint32_t ngram_dim, uint32_t embed_dim, char *err, size_t errlen)
{
	lm_classifier *c;
	uint64_t	dim = (uint64_t) ngram_dim + embed_dim;

	if (n_classes < 2 || n_classes > LM_CLASSIFIER_MAX_CLASSES)
	{
		lm_set_err(err, errlen, "a classifier needs 2 to %d classes, not %d", LM_CLASSIFIER_MAX_CLASSES, n_classes);
		return NULL;
	}
	if (dim == 0 || ngram_dim > LM_NGRAM_MAX_DIM || dim * (uint64_t) n_classes > LM_CLASSIFIER_MAX_WEIGHTS)
	{
		lm_set_err(err, errlen, "%llu features x %d classes is out of range (at most %d weights)",
				  (unsigned long long) dim, n_classes, LM_CLASSIFIER_MAX_WEIGHTS);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto oom;
	c->n_classes = n_classes;
	c->ngram_dim = ngram_dim;
	c->embed_dim = embed_dim;
	c->dim = (uint32_t) dim;
	c->idf = calloc(ngram_dim ? ngram_dim : 1, sizeof(float));
	c->W = calloc(dim * n_classes, sizeof(float));
	c->b = calloc(n_classes, sizeof(float));
	if (c->idf == NULL || c->W == NULL || c->b == NULL)
		goto oom;
	return c;
oom:
	lm_classifier_free(c);
	lm_set_err(err, errlen, "out of memory for a classifier of %llu x %d weights",
			  (unsigned long long) dim, n_classes);
	return NULL;
}

/* Free a classifier. */
void
lm_classifier_free(lm_classifier *c)
{
	if (c == NULL)
		return;
	free(c->idf);
	free(c->W);
	free(c->b);
	free(c);
}

/* True when feature row r has a nonzero weight. */
static int
row_nonzero(const lm_classifier *c, uint32_t r)
{
	const float *w = c->W + (size_t) r * c->n_classes;

	for (int k = 0; k < c->n_classes; k++)
		if (w[k] != 0.0f)
			return 1;
	return 0;
}

/* Bytes of the byte form. */
size_t
lm_classifier_serialized_size(const lm_classifier *c)
{
	size_t		rows = 0;

	for (uint32_t r = 0; r < c->dim; r++)
		rows += row_nonzero(c, r);
	return HEADER_BYTES + sizeof(float) * (size_t) c->ngram_dim + (c->dim + 7) / 8 +
		sizeof(float) * (rows + 1) * c->n_classes;
}

/* Append n bytes at *p. */
static void
put(uint8_t **p, const void *src, size_t n)
{
	memcpy(*p, src, n);
	*p += n;
}

/* Write the byte form. */
void
lm_classifier_serialize(const lm_classifier *c, uint8_t *out)
{
	uint32_t	head[5] = {CLASSIFIER_VERSION, (uint32_t) c->n_classes, c->ngram_dim, c->embed_dim, c->char_max};
	uint8_t    *bitmap;
	size_t		K = c->n_classes;

	put(&out, CLASSIFIER_MAGIC, 4);
	put(&out, head, sizeof(head));
	put(&out, c->idf, sizeof(float) * c->ngram_dim);
	bitmap = out;
	memset(bitmap, 0, (c->dim + 7) / 8);
	out += (c->dim + 7) / 8;
	for (uint32_t r = 0; r < c->dim; r++)
		if (row_nonzero(c, r))
		{
			bitmap[r / 8] |= (uint8_t) (1u << (r % 8));
			put(&out, c->W + r * K, sizeof(float) * K);
		}
	put(&out, c->b, sizeof(float) * K);
}

/* True when all n floats are finite. */
static int
all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

/* Parse the byte form, checking every size. */
lm_classifier *
lm_classifier_parse(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	uint32_t	head[5] = {0};
	lm_classifier *c;
	size_t		header = HEADER_BYTES;
	const uint8_t *p;
	const uint8_t *bitmap;
	size_t		K,
				rows = 0,
				need;

	if (len < HEADER_BYTES_V1 || memcmp(data, CLASSIFIER_MAGIC, 4) != 0)
	{
		lm_set_err(err, errlen, "the stored weights are not a classifier (bad header)");
		return NULL;
	}
	memcpy(head, data + 4, 4 * sizeof(uint32_t));
	if (head[0] == 1)
		header = HEADER_BYTES_V1;
	else if (head[0] != CLASSIFIER_VERSION)
	{
		lm_set_err(err, errlen, "the stored weights have version %u; this build reads versions 1 and %d",
				  head[0], CLASSIFIER_VERSION);
		return NULL;
	}
	else if (len < HEADER_BYTES)
	{
		lm_set_err(err, errlen, "the stored weights are not a classifier (bad header)");
		return NULL;
	}
	else
		memcpy(&head[4], data + 4 + 4 * sizeof(uint32_t), sizeof(uint32_t));
	if (head[4] > LM_NGRAM_MAX_CHAR_MAX || (head[4] != 0 && head[4] < LM_NGRAM_CHAR_MIN))
	{
		lm_set_err(err, errlen, "the stored weights name character n-grams up to %u (0 or %d to %d)",
				  head[4], LM_NGRAM_CHAR_MIN, LM_NGRAM_MAX_CHAR_MAX);
		return NULL;
	}
	p = data + header;
	c = lm_classifier_create((int32_t) head[1], head[2], head[3], err, errlen);
	if (c == NULL)
		return NULL;
	c->char_max = head[4];
	K = c->n_classes;
	need = header + sizeof(float) * (size_t) c->ngram_dim + (c->dim + 7) / 8;
	if (len < need)
		goto truncated;
	memcpy(c->idf, p, sizeof(float) * c->ngram_dim);
	p += sizeof(float) * c->ngram_dim;
	bitmap = p;
	p += (c->dim + 7) / 8;
	for (uint32_t r = 0; r < c->dim; r++)
		rows += (bitmap[r / 8] >> (r % 8)) & 1;
	need += sizeof(float) * (rows + 1) * K;
	if (len != need)
		goto truncated;
	for (uint32_t r = 0; r < c->dim; r++)
		if ((bitmap[r / 8] >> (r % 8)) & 1)
		{
			memcpy(c->W + r * K, p, sizeof(float) * K);
			p += sizeof(float) * K;
		}
	memcpy(c->b, p, sizeof(float) * K);
	if (!all_finite(c->idf, c->ngram_dim) || !all_finite(c->W, (size_t) c->dim * K) || !all_finite(c->b, K))
	{
		lm_classifier_free(c);
		lm_set_err(err, errlen, "the stored weights hold a value that is not a finite number");
		return NULL;
	}
	return c;
truncated:
	lm_set_err(err, errlen, "the stored weights have %zu bytes where %d classes x %u features need %s%zu",
			   len, (int) K, c->dim, len < need ? "at least " : "", need);
	lm_classifier_free(c);
	return NULL;
}

/* Features of one text as the classifier wants them. */
int
lm_classifier_features(const lm_classifier *c, const char *text, size_t len, const float *embedding,
					   lm_sparse *x)
{
	x->n = 0;
	if (c->ngram_dim > 0)
	{
		if (lm_ngram_counts(text, len, c->ngram_dim, (int) c->char_max, x) != 0)
			return -1;
		lm_tfidf_apply(c->idf, c->ngram_dim, x);
	}
	if (c->embed_dim > 0)
	{
		if (lm_sparse_reserve(x, x->n + (int) c->embed_dim) != 0)
			return -1;
		for (uint32_t e = 0; e < c->embed_dim; e++)
		{
			x->idx[x->n] = c->ngram_dim + e;
			x->val[x->n++] = embedding[e];
		}
	}
	return 0;
}

/* Stable softmax in place. */
void
lm_softmax(float *z, int n)
{
	float		mx = z[0];
	double		sum = 0.0;

	for (int k = 1; k < n; k++)
		if (z[k] > mx)
			mx = z[k];
	for (int k = 0; k < n; k++)
	{
		z[k] = expf(z[k] - mx);
		sum += z[k];
	}
	for (int k = 0; k < n; k++)
		z[k] = (float) (z[k] / sum);
}

/* Class probabilities of a feature vector. */
void
lm_classifier_proba(const lm_classifier *c, const lm_sparse *x, float *probs)
{
	int			K = c->n_classes;

	memcpy(probs, c->b, sizeof(float) * K);
	for (int i = 0; i < x->n; i++)
	{
		const float *w = c->W + (size_t) x->idx[i] * K;
		float		v = x->val[i];

		/* the weight rows are scattered: ask for one a few entries ahead now */
		if (i + PREFETCH_AHEAD < x->n)
		{
			const float *ahead = c->W + (size_t) x->idx[i + PREFETCH_AHEAD] * K;

			__builtin_prefetch(ahead);
			__builtin_prefetch(ahead + K - 1);
		}

		for (int k = 0; k < K; k++)
			probs[k] += v * w[k];
	}
	lm_softmax(probs, K);
}
