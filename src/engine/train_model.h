/*
 * train_model.h — a trained softmax-regression classifier: its weights, the
 * numbers of its feature recipe, its byte form (what the database stores)
 * and prediction.
 *
 * Features are laid out as n-gram buckets [0, ngram_dim) followed by
 * embedding dimensions [ngram_dim, ngram_dim + embed_dim); either part may be
 * empty.  W holds one row of n_classes weights per feature, so a sparse input
 * touches contiguous memory.
 *
 * Byte form (little-endian, as x86 stores it): "LMCL", version, n_classes,
 * ngram_dim, embed_dim, char_max (uint32 each; version 1 had no char_max,
 * read as 0), idf (ngram_dim float32), a bitmap of
 * the feature rows that are not all zero, those rows (n_classes float32
 * each), then the biases (n_classes float32).  Parsing checks every size and
 * that every number is finite, so damaged bytes are an error, never a crash.
 */
#ifndef LM_TRAIN_MODEL_H
#define LM_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "features_ngram.h"

#define LM_CLASSIFIER_MAX_CLASSES 1000	/* most classes one classifier has */
#define LM_CLASSIFIER_MAX_WEIGHTS (1 << 26) /* most weights (features x classes) */

/* A classifier: weights and the numbers of its feature recipe. */
typedef struct lm_classifier
{
	int32_t		n_classes;		/* K, >= 2 */
	uint32_t	ngram_dim;		/* hashed n-gram buckets, 0 when none */
	uint32_t	char_max;		/* longest character n-gram, 0 for words only */
	uint32_t	embed_dim;		/* embedding dimensions, 0 when none */
	uint32_t	dim;			/* ngram_dim + embed_dim */
	float	   *idf;			/* (ngram_dim) idf per bucket, 0 for buckets never seen */
	float	   *W;				/* (dim, n_classes) weights, one row per feature */
	float	   *b;				/* (n_classes) biases */
} lm_classifier;

/*
 * A classifier with zero weights and idf; NULL with a message when the sizes
 * are out of range or memory is short.
 */
extern lm_classifier *lm_classifier_create(int32_t n_classes, uint32_t ngram_dim, uint32_t embed_dim,
										   char *err, size_t errlen);

/* Free; NULL is allowed. */
extern void lm_classifier_free(lm_classifier *c);

/* Bytes lm_classifier_serialize writes. */
extern size_t lm_classifier_serialized_size(const lm_classifier *c);

/* Write the byte form into out (lm_classifier_serialized_size bytes). */
extern void lm_classifier_serialize(const lm_classifier *c, uint8_t *out);

/* Parse the byte form; NULL with a message when it is damaged or memory is short. */
extern lm_classifier *lm_classifier_parse(const uint8_t *data, size_t len, char *err, size_t errlen);

/*
 * Features of one text as the classifier wants them, into x: the TF-IDF
 * n-grams of the UTF-8 text (when ngram_dim > 0) followed by the embedding
 * (embed_dim floats, when embed_dim > 0).  0, or -1 when out of memory.
 */
extern int	lm_classifier_features(const lm_classifier *c, const char *text, size_t len,
								   const float *embedding, lm_sparse *x);

/* Class probabilities (n_classes) of a feature vector. */
extern void lm_classifier_proba(const lm_classifier *c, const lm_sparse *x, float *probs);

/* logits (n) replaced by their softmax, computed stably. */
extern void lm_softmax(float *logits, int n);

#endif							/* LM_TRAIN_MODEL_H */
