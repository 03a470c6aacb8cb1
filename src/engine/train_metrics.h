/*
 * train_metrics.h — how well a classifier does on labelled rows: accuracy,
 * macro-F1, per-class precision / recall / F1, log-loss and the confusion
 * matrix.
 *
 * Truth labels may include classes the classifier does not know (an
 * evaluation query can hold labels the training rows lacked): they are
 * classes n_model .. n_classes-1, never predicted, and log-loss counts their
 * probability as LM_METRICS_MIN_PROB.  Macro-F1 averages over the classes
 * that occur in the truth or in the predictions (scikit-learn's rule);
 * precision is 0 for a class never predicted.
 */
#ifndef LM_TRAIN_METRICS_H
#define LM_TRAIN_METRICS_H

#include <stdint.h>

#define LM_METRICS_MIN_PROB 1e-15	/* probabilities are clipped here for log-loss */

/* Counts and results of one evaluation. */
typedef struct lm_metrics
{
	int32_t		n_classes;		/* truth classes (rows and columns of confusion) */
	int32_t		n_model;		/* classes the classifier predicts, <= n_classes */
	int64_t		n;				/* rows counted */
	int64_t    *confusion;		/* (n_classes, n_classes) [truth][predicted] counts */
	double		sum_log_loss;	/* sum of -ln p(truth) */
	/* filled by lm_metrics_finish */
	double		accuracy;		/* correct / n */
	double		macro_f1;		/* mean F1 over classes present */
	double		log_loss;		/* sum_log_loss / n */
	double	   *precision;		/* (n_classes) */
	double	   *recall;			/* (n_classes) */
	double	   *f1;				/* (n_classes) */
	int64_t    *support;		/* (n_classes) rows whose truth is the class */
} lm_metrics;

/* Zeroed counts for n_classes truth classes, n_model of them predicted; NULL when out of memory. */
extern lm_metrics *lm_metrics_create(int32_t n_classes, int32_t n_model);

/* Free; NULL is allowed. */
extern void lm_metrics_free(lm_metrics *m);

/* Count one row: its truth class and the n_model class probabilities. */
extern void lm_metrics_add(lm_metrics *m, int32_t truth, const float *probs);

/* Compute the results from the counts (may be called again after more rows). */
extern void lm_metrics_finish(lm_metrics *m);

#endif							/* LM_TRAIN_METRICS_H */
