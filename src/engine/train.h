/*
 * train.h — fitting a softmax-regression classifier (multinomial logistic
 * regression) on sparse features: the row store, the seeded stratified
 * split, and the trainer (cross-entropy, Adam, L1/L2, mini-batches, epochs,
 * early stopping on a validation slice).
 *
 * The trainer runs on the calling thread only, so the same rows, parameters
 * and seed give bit-identical weights whatever lmgen.threads says.  The
 * caller drives it one epoch at a time (lm_trainer_epoch), which lets it
 * report progress between epochs; inside an epoch the abort check runs
 * between mini-batches.
 */
#ifndef LM_TRAIN_H
#define LM_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "features_ngram.h"
#include "train_metrics.h"
#include "train_model.h"

#define LM_TRAIN_VALIDATION_FRACTION 0.1	/* of the training part, held out for early stopping */
#define LM_TRAIN_MAX_ROWS 100000000		/* most rows one training reads */

/* Rows of sparse features with a class each (compressed sparse rows). */
typedef struct lm_dataset
{
	uint32_t	dim;			/* features per row */
	int32_t		n_rows;			/* rows stored */
	int32_t		cap_rows;		/* rows allocated */
	int64_t		nnz;			/* entries stored */
	int64_t		cap_nnz;		/* entries allocated */
	int64_t    *row_ptr;		/* (cap_rows + 1) first entry of each row */
	uint32_t   *idx;			/* (cap_nnz) feature indices, increasing within a row */
	float	   *val;			/* (cap_nnz) feature values */
	int32_t    *label;			/* (cap_rows) class of each row */
} lm_dataset;

/* An empty row store; NULL when out of memory. */
extern lm_dataset *lm_dataset_create(uint32_t dim);

/* Free; NULL is allowed. */
extern void lm_dataset_free(lm_dataset *d);

/* Append a row; 0, or -1 when out of memory or past LM_TRAIN_MAX_ROWS. */
extern int	lm_dataset_add(lm_dataset *d, const lm_sparse *x, int32_t label);

/* Replace each row's class c by map[c]. */
extern void lm_dataset_relabel(lm_dataset *d, const int32_t *map);

/*
 * Fit idf (ngram_dim floats) on the given rows' raw n-gram counts, then
 * weight every row's n-grams with it (lm_tfidf_apply).  0, or -1 when out of
 * memory.
 */
extern int	lm_dataset_fit_tfidf(lm_dataset *d, const int32_t *rows, int32_t n_rows, uint32_t ngram_dim,
								 float *idf);

/* View of row r as a sparse vector (no copy). */
extern lm_sparse lm_dataset_row(const lm_dataset *d, int32_t r);

/* Row numbers of the three parts of a split. */
typedef struct lm_split
{
	int32_t    *train;			/* (n_train) rows the weights are fitted on */
	int32_t    *val;			/* (n_val) rows early stopping watches */
	int32_t    *test;			/* (n_test) rows held out for the final metrics */
	int32_t		n_train;
	int32_t		n_val;
	int32_t		n_test;
} lm_split;

/*
 * Stratified, seeded split of d's rows into train / validation / test: per
 * class, max(1, round(test_fraction * n)) rows go to test (none when
 * test_fraction is 0) and floor(val_fraction * rest) to validation, the
 * choice made by a shuffle seeded with seed.  Returns 0; -1 when out of
 * memory; -2 when a class would be left without a training row (its number
 * in *bad_class).
 */
extern int	lm_split_rows(const lm_dataset *d, int32_t n_classes, double test_fraction, double val_fraction,
						  uint64_t seed, lm_split *out, int32_t *bad_class);

/* Free a split's arrays. */
extern void lm_split_free(lm_split *s);

/* Training settings; lm_train_default_params() gives the defaults. */
typedef struct lm_train_params
{
	float		learning_rate;	/* Adam step size */
	float		l1;				/* L1 penalty (proximal soft-threshold per step) */
	float		l2;				/* L2 penalty (decoupled weight decay per step) */
	int32_t		epochs;			/* most passes over the training rows */
	int32_t		batch_size;		/* rows per mini-batch */
	int32_t		patience;		/* stop after this many epochs without a better validation score */
	bool		balanced;		/* weight classes by n / (K * n_class) */
	float		lr_decay;		/* each epoch's step size is the last one's times this (1: constant) */
	float		average;		/* weights used = running average of end-of-epoch weights, each
								 * epoch's share (1 - average); 0: the last epoch's weights */
	uint64_t	seed;			/* shuffle seed */
} lm_train_params;

/* What one epoch did. */
typedef struct lm_epoch_report
{
	int32_t		epoch;			/* 1-based */
	double		loss;			/* mean (weighted) cross-entropy over the epoch's mini-batches */
	double		val_accuracy;	/* on the validation rows after the epoch; NaN when there are none */
	double		val_loss;		/* log-loss on the validation rows; NaN when there are none */
	bool		best;			/* this epoch's weights are the best so far */
} lm_epoch_report;

/* lm_trainer_epoch results. */
#define LM_TRAIN_MORE 0			/* call again */
#define LM_TRAIN_DONE 1			/* all epochs run, or early stopping ended it */
#define LM_TRAIN_ABORTED (-2)	/* the abort check returned true */

/* An abort check: returns true to stop. */
typedef bool (*lm_train_abort_fn) (void *arg);

typedef struct lm_trainer lm_trainer;

/* The default settings. */
extern lm_train_params lm_train_default_params(void);

/*
 * A trainer that fits c (whose idf, if any, is already set) on d's rows
 * split->train, watching split->val.  NULL with a message for bad settings or
 * when memory is short.  d, split and c must outlive the trainer.
 */
extern lm_trainer *lm_trainer_create(const lm_dataset *d, const lm_split *split, lm_classifier *c,
									 const lm_train_params *p, char *err, size_t errlen);

/* Free; NULL is allowed. */
extern void lm_trainer_free(lm_trainer *t);

/* Run one epoch; abort (may be NULL) is checked before each mini-batch. */
extern int	lm_trainer_epoch(lm_trainer *t, lm_train_abort_fn abort, void *abort_arg, lm_epoch_report *rep);

/* Put the best epoch's weights into the classifier; returns that epoch (1-based). */
extern int32_t lm_trainer_finish(lm_trainer *t);

/*
 * After lm_trainer_finish: start again from zero weights on the training and
 * validation rows together, for as many epochs as the best epoch was (the
 * validation slice has chosen the epoch count; now it adds data).  Drive it
 * with lm_trainer_epoch (no validation scores) and lm_trainer_finish again.
 * false, changing nothing, when there was no validation slice or memory is
 * short (the best epoch's weights stay).
 */
extern bool lm_trainer_refit(lm_trainer *t);

/* Count the given rows of d in m, predicted by c. */
extern void lm_classifier_score(const lm_classifier *c, const lm_dataset *d, const int32_t *rows, int32_t n,
								lm_metrics *m);

#endif							/* LM_TRAIN_H */
