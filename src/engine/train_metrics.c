/*
 * train_metrics.c — accuracy, F1, log-loss and the confusion matrix.
 */
#include "train_metrics.h"

#include <math.h>
#include <stdlib.h>

/* Zeroed counts. */
lm_metrics *
lm_metrics_create(int32_t n_classes, int32_t n_model)
{
	lm_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->n_classes = n_classes;
	m->n_model = n_model;
	m->confusion = calloc((size_t) n_classes * n_classes, sizeof(int64_t));
	m->precision = calloc(n_classes, sizeof(double));
	m->recall = calloc(n_classes, sizeof(double));
	m->f1 = calloc(n_classes, sizeof(double));
	m->support = calloc(n_classes, sizeof(int64_t));
	if (!m->confusion || !m->precision || !m->recall || !m->f1 || !m->support)
	{
		lm_metrics_free(m);
		return NULL;
	}
	return m;
}

/* Free the counts. */
void
lm_metrics_free(lm_metrics *m)
{
	if (m == NULL)
		return;
	free(m->confusion);
	free(m->precision);
	free(m->recall);
	free(m->f1);
	free(m->support);
	free(m);
}

/* Count one row. */
void
lm_metrics_add(lm_metrics *m, int32_t truth, const float *probs)
{
	int32_t		best = 0;
	double		p;

	for (int32_t k = 1; k < m->n_model; k++)
		if (probs[k] > probs[best])
			best = k;
	m->confusion[(size_t) truth * m->n_classes + best]++;
	p = truth < m->n_model ? probs[truth] : 0.0;
	m->sum_log_loss -= log(p > LM_METRICS_MIN_PROB ? p : LM_METRICS_MIN_PROB);
	m->n++;
}

/* Results from the counts. */
void
lm_metrics_finish(lm_metrics *m)
{
	int32_t		K = m->n_classes;
	int64_t		correct = 0;
	double		f1_sum = 0.0;
	int			present = 0;

	for (int32_t c = 0; c < K; c++)
	{
		int64_t		tp = m->confusion[(size_t) c * K + c];
		int64_t		truth = 0,
					pred = 0;

		for (int32_t o = 0; o < K; o++)
		{
			truth += m->confusion[(size_t) c * K + o];
			pred += m->confusion[(size_t) o * K + c];
		}
		correct += tp;
		m->support[c] = truth;
		m->precision[c] = pred ? (double) tp / pred : 0.0;
		m->recall[c] = truth ? (double) tp / truth : 0.0;
		m->f1[c] = (m->precision[c] + m->recall[c]) > 0 ?
			2.0 * m->precision[c] * m->recall[c] / (m->precision[c] + m->recall[c]) : 0.0;
		if (truth > 0 || pred > 0)
		{
			f1_sum += m->f1[c];
			present++;
		}
	}
	m->accuracy = m->n ? (double) correct / m->n : 0.0;
	m->macro_f1 = present ? f1_sum / present : 0.0;
	m->log_loss = m->n ? m->sum_log_loss / m->n : 0.0;
}
