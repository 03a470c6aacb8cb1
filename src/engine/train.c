/*
 * train.c — fitting softmax regression on sparse rows.
 *
 * Design.  The model is z = W^T x + b, p = softmax(z), loss = the mean over a
 * mini-batch of w_y * -ln p_y (w_y a class weight, 1 unless 'balanced').  The
 * gradient of one row is (p - onehot(y)) x^T, so with TF-IDF features only
 * the ~100-300 feature rows of W a text touches get a gradient.  Updating all
 * of W (2^18 x K numbers) after every mini-batch would cost far more than the
 * gradient, so the optimizer is "lazy": Adam's moments and weights move only
 * for the rows the mini-batch touched (as TensorFlow's LazyAdam does; the
 * bias is dense and always updated).
 *
 * The penalties are exact under laziness.  Each step applies, to every
 * weight, decoupled L2 decay w <- (1 - lr*l2) w (AdamW) and then the L1
 * proximal step w <- sign(w) max(|w| - lr*l1, 0).  For a row that had no
 * gradient for n steps those n steps compose in closed form:
 * |w| <- max(a^n |w| - c (1 - a^n) / (1 - a), 0) with a = 1 - lr*l2,
 * c = lr*l1, because |w| only shrinks and stays 0 once it gets there.  So a
 * row is brought up to date ("caught up") just before its next gradient step,
 * and all rows are caught up before the weights are read (validation, end).
 *
 * Determinism: one thread, rows visited in an order fixed by the seed
 * (a splitmix64 generator driving Fisher-Yates shuffles), gradients summed in
 * that order.  Early stopping scores the validation rows after each epoch and
 * keeps a copy of the best weights (accuracy first, then log-loss).
 *
 * Refit.  Once early stopping has chosen the best epoch, lm_trainer_refit
 * resets the weights, Adam's state, the step count and the generator, and
 * the same epochs run again over train + validation rows for best_epoch
 * epochs without scoring: the epoch count is the validation slice's choice,
 * the final weights use its rows too (on the Debian split, +0.6 points).
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
/*
 * Adam's epsilon is far above the usual 1e-8.  With sparse TF-IDF features
 * most n-grams are rare, their gradients small; a tiny epsilon divides them
 * by their own small RMS and gives a rare n-gram as large a step as a common
 * one, which overfits.  1e-3 damps those steps (tuned on a validation split
 * of the Debian train file: accuracy 0.80 -> 0.85).
 */
#define ADAM_EPS 1e-3
#define PREFETCH_ROWS_AHEAD 8		/* rows' weights and moments are fetched this many rows ahead */
#define GAP_TABLE_MAX 65536		/* longest gap (in steps) whose penalty factors are tabled */

struct lm_trainer
{
	const lm_dataset *d;		/* the rows */
	const lm_split *split;		/* which rows train and which validate */
	lm_classifier *c;			/* the weights being fitted */
	lm_train_params p;			/* settings */
	int32_t		K;				/* classes */
	int32_t    *order;			/* (n_train + n_val) this epoch's visiting order */
	float	   *m_W;			/* (dim, K) Adam first moment */
	float	   *v_W;			/* (dim, K) Adam second moment */
	float	   *m_b;			/* (K) */
	float	   *v_b;			/* (K) */
	int64_t    *last;			/* (dim) step each row was last brought up to date */
	float	   *grad;			/* (dim, K) mini-batch gradient, valid for touched rows */
	int64_t    *stamp;			/* (dim) step that last touched each row */
	uint32_t   *touched;		/* (dim) rows touched by this mini-batch, first-touch order */
	float	   *grad_b;			/* (K) */
	float	   *probs;			/* (K) scratch */
	float	   *class_w;		/* (K) class weights */
	float	   *best_W;			/* (dim, K) best epoch's weights, when validating */
	float	   *best_b;			/* (K) */
	float	   *avg_W;			/* (dim, K) running average of end-of-epoch weights, when averaging */
	float	   *avg_b;			/* (K) */
	float		lr;				/* this epoch's step size */
	double	   *gap_scale;		/* (gap_n) a^n for a gap of n steps, this epoch (see catch_up) */
	double	   *gap_shrink;		/* (gap_n) the L1 shrink of a gap of n steps, this epoch */
	int64_t		gap_n;			/* entries of the gap tables */
	int64_t		step;			/* Adam steps taken */
	uint64_t	rng;			/* splitmix64 state */
	int32_t		epoch;			/* epochs run */
	int32_t		best_epoch;		/* epoch of best_W */
	double		best_acc;		/* its validation accuracy */
	double		best_loss;		/* its validation log-loss */
	int32_t		since_best;		/* epochs since the best */
	int32_t    *rows;			/* (n_rows) rows the weights are fitted on */
	int32_t		n_rows;
	int32_t    *refit_rows;		/* (n_rows) train + validation rows, once refitting */
	bool		refitting;		/* lm_trainer_refit ran: no validation, fixed epochs */
};

/* Next 64 random bits (splitmix64). */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Shuffle n row numbers in place (Fisher-Yates). */
static void
shuffle(int32_t *a, int32_t n, uint64_t *s)
{
	for (int32_t i = n - 1; i > 0; i--)
	{
		int32_t		j = (int32_t) (((unsigned __int128) rng_next(s) * (uint64_t) (i + 1)) >> 64);
		int32_t		tmp = a[i];

		a[i] = a[j];
		a[j] = tmp;
	}
}

/* An empty row store. */
lm_dataset *
lm_dataset_create(uint32_t dim)
{
	lm_dataset *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->dim = dim;
	d->row_ptr = calloc(1, sizeof(int64_t));
	if (d->row_ptr == NULL)
	{
		free(d);
		return NULL;
	}
	return d;
}

/* Free a row store. */
void
lm_dataset_free(lm_dataset *d)
{
	if (d == NULL)
		return;
	free(d->row_ptr);
	free(d->idx);
	free(d->val);
	free(d->label);
	free(d);
}

/* Append a row. */
int
lm_dataset_add(lm_dataset *d, const lm_sparse *x, int32_t label)
{
	if (d->n_rows >= LM_TRAIN_MAX_ROWS)
		return -1;
	if (d->n_rows == d->cap_rows)
	{
		int32_t		cap = d->cap_rows ? 2 * d->cap_rows : 1024;
		int64_t    *rp = realloc(d->row_ptr, sizeof(int64_t) * ((size_t) cap + 1));
		int32_t    *lab;

		if (rp == NULL)
			return -1;
		d->row_ptr = rp;
		lab = realloc(d->label, sizeof(int32_t) * (size_t) cap);
		if (lab == NULL)
			return -1;
		d->label = lab;
		d->cap_rows = cap;
	}
	if (d->nnz + x->n > d->cap_nnz)
	{
		int64_t		cap = d->cap_nnz ? 2 * d->cap_nnz : 65536;
		uint32_t   *idx;
		float	   *val;

		while (cap < d->nnz + x->n)
			cap *= 2;
		idx = realloc(d->idx, sizeof(uint32_t) * (size_t) cap);
		if (idx == NULL)
			return -1;
		d->idx = idx;
		val = realloc(d->val, sizeof(float) * (size_t) cap);
		if (val == NULL)
			return -1;
		d->val = val;
		d->cap_nnz = cap;
	}
	memcpy(d->idx + d->nnz, x->idx, sizeof(uint32_t) * x->n);
	memcpy(d->val + d->nnz, x->val, sizeof(float) * x->n);
	d->nnz += x->n;
	d->label[d->n_rows++] = label;
	d->row_ptr[d->n_rows] = d->nnz;
	return 0;
}

/* Replace each row's class c by map[c]. */
void
lm_dataset_relabel(lm_dataset *d, const int32_t *map)
{
	for (int32_t r = 0; r < d->n_rows; r++)
		d->label[r] = map[d->label[r]];
}

/* View of row r. */
lm_sparse
lm_dataset_row(const lm_dataset *d, int32_t r)
{
	lm_sparse	v;

	v.n = v.cap = (int) (d->row_ptr[r + 1] - d->row_ptr[r]);
	v.idx = d->idx + d->row_ptr[r];
	v.val = d->val + d->row_ptr[r];
	return v;
}

/* Fit idf on the given rows, then weight every row with it. */
int
lm_dataset_fit_tfidf(lm_dataset *d, const int32_t *rows, int32_t n_rows, uint32_t ngram_dim, float *idf)
{
	uint32_t   *df;
	int64_t		out = 0;

	if (ngram_dim == 0)
		return 0;				/* embeddings only: nothing to weight */
	df = calloc(ngram_dim, sizeof(uint32_t));
	if (df == NULL)
		return -1;
	for (int32_t i = 0; i < n_rows; i++)
	{
		lm_sparse	v = lm_dataset_row(d, rows[i]);

		for (int k = 0; k < v.n && v.idx[k] < ngram_dim; k++)
			df[v.idx[k]]++;
	}
	lm_idf_from_df(df, ngram_dim, n_rows, idf);
	free(df);

	/* weight each row in place, closing the gaps dropped entries leave */
	for (int32_t r = 0; r < d->n_rows; r++)
	{
		lm_sparse	v = lm_dataset_row(d, r);

		lm_tfidf_apply(idf, ngram_dim, &v);
		memmove(d->idx + out, v.idx, sizeof(uint32_t) * v.n);
		memmove(d->val + out, v.val, sizeof(float) * v.n);
		d->row_ptr[r] = out;
		out += v.n;
	}
	d->row_ptr[d->n_rows] = out;
	d->nnz = out;
	return 0;
}

/* Stratified, seeded split. */
int
lm_split_rows(const lm_dataset *d, int32_t n_classes, double test_fraction, double val_fraction,
			  uint64_t seed, lm_split *out, int32_t *bad_class)
{
	int32_t    *count = calloc(n_classes, sizeof(int32_t));
	int32_t    *start = calloc((size_t) n_classes + 1, sizeof(int32_t));
	int32_t    *by_class = malloc(sizeof(int32_t) * ((size_t) d->n_rows + 1));
	int32_t    *fill = calloc(n_classes, sizeof(int32_t));
	uint64_t	rng = seed;
	int			rc = -1;

	memset(out, 0, sizeof(*out));
	out->train = malloc(sizeof(int32_t) * ((size_t) d->n_rows + 1));
	out->val = malloc(sizeof(int32_t) * ((size_t) d->n_rows + 1));
	out->test = malloc(sizeof(int32_t) * ((size_t) d->n_rows + 1));
	if (!count || !start || !by_class || !fill || !out->train || !out->val || !out->test)
		goto done;

	/* rows grouped by class, in row order */
	for (int32_t r = 0; r < d->n_rows; r++)
		count[d->label[r]]++;
	for (int32_t c = 0; c < n_classes; c++)
		start[c + 1] = start[c] + count[c];
	for (int32_t r = 0; r < d->n_rows; r++)
	{
		int32_t		c = d->label[r];

		by_class[start[c] + fill[c]++] = r;
	}

	for (int32_t c = 0; c < n_classes; c++)
	{
		int32_t    *rows = by_class + start[c];
		int32_t		n = count[c];
		int32_t		n_test = 0,
					n_val;

		if (test_fraction > 0)
		{
			n_test = (int32_t) floor(test_fraction * n + 0.5);
			if (n_test < 1)
				n_test = 1;
		}
		if (n - n_test < 1)
		{
			*bad_class = c;
			rc = -2;
			goto done;
		}
		n_val = (int32_t) floor(val_fraction * (n - n_test));
		if (n_val > n - n_test - 1)
			n_val = n - n_test - 1;
		shuffle(rows, n, &rng);
		for (int32_t i = 0; i < n; i++)
		{
			if (i < n_test)
				out->test[out->n_test++] = rows[i];
			else if (i < n_test + n_val)
				out->val[out->n_val++] = rows[i];
			else
				out->train[out->n_train++] = rows[i];
		}
	}
	rc = 0;
done:
	free(count);
	free(start);
	free(by_class);
	free(fill);
	if (rc != 0)
		lm_split_free(out);
	return rc;
}

/* Free a split's arrays. */
void
lm_split_free(lm_split *s)
{
	free(s->train);
	free(s->val);
	free(s->test);
	memset(s, 0, sizeof(*s));
}

/* The default settings (tuned on a validation split of the Debian train file). */
lm_train_params
lm_train_default_params(void)
{
	lm_train_params p;

	p.learning_rate = 0.1f;
	p.l1 = 0.0f;
	p.l2 = 1e-4f;
	p.epochs = 30;
	p.batch_size = 32;
	p.patience = 3;
	p.balanced = false;
	p.lr_decay = 1.0f;
	p.average = 0.0f;
	p.seed = 0;
	return p;
}

/* A trainer for c on d. */
lm_trainer *
lm_trainer_create(const lm_dataset *d, const lm_split *split, lm_classifier *c, const lm_train_params *p,
				  char *err, size_t errlen)
{
	lm_trainer *t;
	size_t		dim = c->dim,
				K = c->n_classes;
	int64_t    *per_class;

	if (!(p->learning_rate > 0) || !isfinite(p->learning_rate) || !(p->l1 >= 0) || !isfinite(p->l1) ||
		!(p->l2 >= 0) || !isfinite(p->l2) || p->learning_rate * p->l2 >= 1.0f)
	{
		lm_set_err(err, errlen, "learning_rate must be > 0, l1 and l2 >= 0, and learning_rate * l2 < 1");
		return NULL;
	}
	if (!(p->lr_decay > 0 && p->lr_decay <= 1) || !(p->average >= 0 && p->average < 1))
	{
		lm_set_err(err, errlen, "lr_decay must be in (0, 1] and average in [0, 1)");
		return NULL;
	}
	if (p->epochs < 1 || p->batch_size < 1 || p->patience < 1)
	{
		lm_set_err(err, errlen, "epochs, batch_size and patience must be at least 1");
		return NULL;
	}
	if (d->dim != c->dim || split->n_train < 1)
	{
		lm_set_err(err, errlen, "no training rows, or rows of %u features for a classifier of %u",
				   d->dim, c->dim);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto oom;
	t->d = d;
	t->split = split;
	t->c = c;
	t->p = *p;
	t->K = (int32_t) K;
	t->lr = p->learning_rate;
	t->rng = p->seed ^ 0x5851f42d4c957f2dULL;
	t->rows = split->train;
	t->n_rows = split->n_train;
	t->order = malloc(sizeof(int32_t) * ((size_t) split->n_train + split->n_val));
	t->m_W = calloc(dim * K, sizeof(float));
	t->v_W = calloc(dim * K, sizeof(float));
	t->m_b = calloc(K, sizeof(float));
	t->v_b = calloc(K, sizeof(float));
	t->last = calloc(dim, sizeof(int64_t));
	t->grad = malloc(sizeof(float) * dim * K);
	t->stamp = calloc(dim, sizeof(int64_t));
	t->touched = malloc(sizeof(uint32_t) * dim);
	t->grad_b = malloc(sizeof(float) * K);
	t->probs = malloc(sizeof(float) * K);
	t->class_w = malloc(sizeof(float) * K);
	if (!t->order || !t->m_W || !t->v_W || !t->m_b || !t->v_b || !t->last || !t->grad || !t->stamp ||
		!t->touched || !t->grad_b || !t->probs || !t->class_w)
		goto oom;
	if (split->n_val > 0)
	{
		t->best_W = malloc(sizeof(float) * dim * K);
		t->best_b = malloc(sizeof(float) * K);
		if (!t->best_W || !t->best_b)
			goto oom;
	}
	if (p->average > 0)
	{
		t->avg_W = malloc(sizeof(float) * dim * K);
		t->avg_b = malloc(sizeof(float) * K);
		if (!t->avg_W || !t->avg_b)
			goto oom;
	}
	memcpy(t->order, split->train, sizeof(int32_t) * split->n_train);

	/* class weights: 1, or n / (K * n_class) over the training rows */
	per_class = calloc(K, sizeof(int64_t));
	if (per_class == NULL)
		goto oom;
	for (int32_t i = 0; i < split->n_train; i++)
		per_class[d->label[split->train[i]]]++;
	for (size_t k = 0; k < K; k++)
		t->class_w[k] = (p->balanced && per_class[k] > 0) ?
			(float) ((double) split->n_train / ((double) K * per_class[k])) : 1.0f;
	free(per_class);
	t->best_acc = -1.0;
	t->best_loss = INFINITY;
	return t;
oom:
	lm_trainer_free(t);
	lm_set_err(err, errlen, "out of memory for the optimizer state of %zu x %zu weights", dim, K);
	return NULL;
}

/* Free a trainer. */
void
lm_trainer_free(lm_trainer *t)
{
	if (t == NULL)
		return;
	free(t->order);
	free(t->m_W);
	free(t->v_W);
	free(t->m_b);
	free(t->v_b);
	free(t->last);
	free(t->grad);
	free(t->stamp);
	free(t->touched);
	free(t->grad_b);
	free(t->probs);
	free(t->class_w);
	free(t->best_W);
	free(t->best_b);
	free(t->avg_W);
	free(t->avg_b);
	free(t->gap_scale);
	free(t->gap_shrink);
	free(t->refit_rows);
	free(t);
}

/*
 * The penalty of n missed steps at this epoch's step size: |w| becomes
 * max(|w| * scale - shrink, 0).
 */
static void
gap_factors(const lm_trainer *t, int64_t n, double *scale, double *shrink)
{
	double		lr = t->lr;
	double		a = 1.0 - lr * t->p.l2;
	double		c = lr * t->p.l1;

	*scale = pow(a, (double) n);
	*shrink = (a == 1.0) ? c * (double) n : c * (1.0 - *scale) / (1.0 - a);
}

/*
 * At the start of an epoch: table gap_factors for the gaps this epoch can
 * have (every row is caught up at the end of each epoch, so a gap is at most
 * the epoch's mini-batch count), so catch_up does not call pow per row.
 * The table holds the very numbers gap_factors gives; false when memory is
 * short (catch_up then computes them each time).
 */
static bool
fill_gap_tables(lm_trainer *t)
{
	int64_t		batches = ((int64_t) t->n_rows + t->p.batch_size - 1) / t->p.batch_size;
	int64_t		n = (batches < GAP_TABLE_MAX ? batches : GAP_TABLE_MAX) + 1;

	if (n > t->gap_n)
	{
		free(t->gap_scale);
		free(t->gap_shrink);
		t->gap_scale = malloc(sizeof(double) * (size_t) n);
		t->gap_shrink = malloc(sizeof(double) * (size_t) n);
		t->gap_n = 0;
		if (t->gap_scale == NULL || t->gap_shrink == NULL)
			return false;
	}
	for (int64_t i = 0; i < n; i++)
		gap_factors(t, i, &t->gap_scale[i], &t->gap_shrink[i]);
	t->gap_n = n;
	return true;
}

/* Apply the penalty steps row j missed, up to and including step `upto`. */
static void
catch_up(lm_trainer *t, uint32_t j, int64_t upto)
{
	int64_t		n = upto - t->last[j];
	double		an,
				shrink;
	float	   *w;

	if (n <= 0)
		return;
	t->last[j] = upto;
	if (t->p.l2 == 0.0f && t->p.l1 == 0.0f)
		return;
	if (n < t->gap_n)
	{
		an = t->gap_scale[n];
		shrink = t->gap_shrink[n];
	}
	else
		gap_factors(t, n, &an, &shrink);
	w = t->c->W + (size_t) j * t->K;
	for (int32_t k = 0; k < t->K; k++)
	{
		double		x;

		if (w[k] == 0.0f)
			continue;
		x = fabs((double) w[k]) * an - shrink;
		w[k] = x > 0 ? (float) copysign(x, (double) w[k]) : 0.0f;
	}
}

/* Bring every row up to date with the current step. */
static void
catch_up_all(lm_trainer *t)
{
	for (uint32_t j = 0; j < t->c->dim; j++)
		catch_up(t, j, t->step);
}

/* One Adam step on a row of n weights with gradient g, then the penalty step. */
static inline void
adam_row(float *w, float *m, float *v, const float *g, int32_t n, float lr_t, float eps_t, float decay,
		 float l1_step)
{
	for (int32_t k = 0; k < n; k++)
	{
		float		x;

		m[k] = (float) ADAM_BETA1 * m[k] + (float) (1.0 - ADAM_BETA1) * g[k];
		v[k] = (float) ADAM_BETA2 * v[k] + (float) (1.0 - ADAM_BETA2) * g[k] * g[k];
		x = w[k] * decay - lr_t * m[k] / (sqrtf(v[k]) + eps_t);
		if (l1_step > 0)
			x = x > l1_step ? x - l1_step : (x < -l1_step ? x + l1_step : 0.0f);
		w[k] = x;
	}
}

/* One mini-batch of rows; returns the sum of their weighted losses. */
static double
train_batch(lm_trainer *t, const int32_t *rows, int32_t n)
{
	const lm_dataset *d = t->d;
	lm_classifier *c = t->c;
	int32_t		K = t->K;
	int32_t		n_touched = 0;
	double		loss = 0.0;
	double		bc1,
				bc2;
	float		lr_t,
				eps_t;
	float		inv_n = 1.0f / (float) n;

	t->step++;
	memset(t->grad_b, 0, sizeof(float) * K);
	for (int32_t i = 0; i < n; i++)
	{
		lm_sparse	x = lm_dataset_row(d, rows[i]);
		int32_t		y = d->label[rows[i]];
		float		cw = t->class_w[y];
		float	   *p = t->probs;

		/* rows touched for the first time in this batch start a fresh gradient and catch up */
		for (int e = 0; e < x.n; e++)
		{
			uint32_t	j = x.idx[e];

			if (e + PREFETCH_ROWS_AHEAD < x.n)
			{
				uint32_t	ahead = x.idx[e + PREFETCH_ROWS_AHEAD];

				__builtin_prefetch(t->stamp + ahead, 1);
				__builtin_prefetch(t->last + ahead, 1);
				__builtin_prefetch(c->W + (size_t) ahead * K, 1);
				__builtin_prefetch(c->W + (size_t) ahead * K + K - 1, 1);
			}
			if (t->stamp[j] != t->step)
			{
				t->stamp[j] = t->step;
				t->touched[n_touched++] = j;
				memset(t->grad + (size_t) j * K, 0, sizeof(float) * K);
				catch_up(t, j, t->step - 1);
			}
		}
		lm_classifier_proba(c, &x, p);
		loss += cw * -log(p[y] > LM_METRICS_MIN_PROB ? p[y] : LM_METRICS_MIN_PROB);

		/* p becomes dLoss/dz = w_y (p - onehot(y)) / n */
		p[y] -= 1.0f;
		for (int32_t k = 0; k < K; k++)
		{
			p[k] *= cw * inv_n;
			t->grad_b[k] += p[k];
		}
		for (int e = 0; e < x.n; e++)
		{
			float	   *g = t->grad + (size_t) x.idx[e] * K;
			float		v = x.val[e];

			for (int32_t k = 0; k < K; k++)
				g[k] += v * p[k];
		}
	}

	/* Adam with bias correction folded into the step size and epsilon */
	bc1 = 1.0 - pow(ADAM_BETA1, (double) t->step);
	bc2 = 1.0 - pow(ADAM_BETA2, (double) t->step);
	lr_t = (float) (t->lr * sqrt(bc2) / bc1);
	eps_t = (float) (ADAM_EPS * sqrt(bc2));
	for (int32_t i = 0; i < n_touched; i++)
	{
		size_t		off = (size_t) t->touched[i] * K;

		/* the moments of a row a few ahead are not in cache yet: ask for them now */
		if (i + PREFETCH_ROWS_AHEAD < n_touched)
		{
			size_t		ahead = (size_t) t->touched[i + PREFETCH_ROWS_AHEAD] * K;

			__builtin_prefetch(t->m_W + ahead, 1);
			__builtin_prefetch(t->m_W + ahead + K - 1, 1);
			__builtin_prefetch(t->v_W + ahead, 1);
			__builtin_prefetch(t->v_W + ahead + K - 1, 1);
		}
		adam_row(c->W + off, t->m_W + off, t->v_W + off, t->grad + off, K, lr_t, eps_t,
				 1.0f - t->lr * t->p.l2, t->lr * t->p.l1);
		t->last[t->touched[i]] = t->step;
	}
	adam_row(c->b, t->m_b, t->v_b, t->grad_b, K, lr_t, eps_t, 1.0f, 0.0f);
	return loss;
}

/*
 * After an epoch (weights caught up): fold the weights into the running
 * average, avg <- average * avg + (1 - average) * W, starting from the first
 * epoch's weights.
 */
static void
update_average(lm_trainer *t)
{
	size_t		n = (size_t) t->c->dim * t->K;
	float		a = t->p.average,
				w = 1.0f - t->p.average;

	if (t->avg_W == NULL)
		return;
	if (t->epoch == 1)
	{
		memcpy(t->avg_W, t->c->W, sizeof(float) * n);
		memcpy(t->avg_b, t->c->b, sizeof(float) * t->K);
		return;
	}
	for (size_t i = 0; i < n; i++)
		t->avg_W[i] = a * t->avg_W[i] + w * t->c->W[i];
	for (int32_t k = 0; k < t->K; k++)
		t->avg_b[k] = a * t->avg_b[k] + w * t->c->b[k];
}

/* Count the given rows of d in m, predicted by c. */
void
lm_classifier_score(const lm_classifier *c, const lm_dataset *d, const int32_t *rows, int32_t n, lm_metrics *m)
{
	float	   *p = malloc(sizeof(float) * c->n_classes);

	if (p == NULL)
		return;
	for (int32_t i = 0; i < n; i++)
	{
		lm_sparse	x = lm_dataset_row(d, rows[i]);

		lm_classifier_proba(c, &x, p);
		lm_metrics_add(m, d->label[rows[i]], p);
	}
	free(p);
}

/* Run one epoch. */
int
lm_trainer_epoch(lm_trainer *t, lm_train_abort_fn abort, void *abort_arg, lm_epoch_report *rep)
{
	const lm_split *s = t->split;
	double		loss = 0.0;
	bool		better;

	t->lr = (float) (t->p.learning_rate * pow(t->p.lr_decay, (double) t->epoch));
	if (!fill_gap_tables(t))
		t->gap_n = 0;
	shuffle(t->order, t->n_rows, &t->rng);
	for (int32_t i0 = 0; i0 < t->n_rows; i0 += t->p.batch_size)
	{
		int32_t		n = t->n_rows - i0 < t->p.batch_size ? t->n_rows - i0 : t->p.batch_size;

		if (abort && abort(abort_arg))
			return LM_TRAIN_ABORTED;
		loss += train_batch(t, t->order + i0, n);
	}
	catch_up_all(t);
	t->epoch++;
	update_average(t);
	rep->epoch = t->epoch;
	rep->loss = loss / t->n_rows;
	rep->val_accuracy = rep->val_loss = NAN;
	rep->best = true;
	if (t->refitting)
		return t->epoch >= t->best_epoch ? LM_TRAIN_DONE : LM_TRAIN_MORE;
	if (s->n_val > 0)
	{
		lm_metrics *m = lm_metrics_create(t->K, t->K);

		if (m == NULL)
			return LM_TRAIN_ABORTED;
		lm_classifier eval = *t->c;

		if (t->avg_W != NULL)
		{
			eval.W = t->avg_W;
			eval.b = t->avg_b;
		}
		lm_classifier_score(&eval, t->d, s->val, s->n_val, m);
		lm_metrics_finish(m);
		rep->val_accuracy = m->accuracy;
		rep->val_loss = m->log_loss;
		lm_metrics_free(m);
		better = rep->val_accuracy > t->best_acc ||
			(rep->val_accuracy == t->best_acc && rep->val_loss < t->best_loss);
		rep->best = better;
		if (better)
		{
			t->best_acc = rep->val_accuracy;
			t->best_loss = rep->val_loss;
			t->best_epoch = t->epoch;
			t->since_best = 0;
			memcpy(t->best_W, eval.W, sizeof(float) * (size_t) t->c->dim * t->K);
			memcpy(t->best_b, eval.b, sizeof(float) * t->K);
		}
		else if (++t->since_best >= t->p.patience)
			return LM_TRAIN_DONE;
	}
	else
		t->best_epoch = t->epoch;
	return t->epoch >= t->p.epochs ? LM_TRAIN_DONE : LM_TRAIN_MORE;
}

/* Put the best epoch's weights into the classifier. */
int32_t
lm_trainer_finish(lm_trainer *t)
{
	catch_up_all(t);
	if (!t->refitting && t->best_W != NULL && t->best_epoch > 0 &&
		(t->best_epoch != t->epoch || t->avg_W != NULL))
	{
		memcpy(t->c->W, t->best_W, sizeof(float) * (size_t) t->c->dim * t->K);
		memcpy(t->c->b, t->best_b, sizeof(float) * t->K);
	}
	else if (t->avg_W != NULL && t->epoch > 0)
	{
		memcpy(t->c->W, t->avg_W, sizeof(float) * (size_t) t->c->dim * t->K);
		memcpy(t->c->b, t->avg_b, sizeof(float) * t->K);
	}
	return t->best_epoch;
}

/* Start over on the training and validation rows together, for the best epoch's count. */
bool
lm_trainer_refit(lm_trainer *t)
{
	const lm_split *s = t->split;
	size_t		dim = t->c->dim,
				K = t->K;

	if (t->refitting || s->n_val == 0 || t->best_epoch < 1)
		return false;
	t->refit_rows = malloc(sizeof(int32_t) * ((size_t) s->n_train + s->n_val));
	if (t->refit_rows == NULL)
		return false;
	memcpy(t->refit_rows, s->train, sizeof(int32_t) * s->n_train);
	memcpy(t->refit_rows + s->n_train, s->val, sizeof(int32_t) * s->n_val);
	t->rows = t->refit_rows;
	t->n_rows = s->n_train + s->n_val;
	memcpy(t->order, t->rows, sizeof(int32_t) * t->n_rows);
	memset(t->c->W, 0, sizeof(float) * dim * K);
	memset(t->c->b, 0, sizeof(float) * K);
	memset(t->m_W, 0, sizeof(float) * dim * K);
	memset(t->v_W, 0, sizeof(float) * dim * K);
	memset(t->m_b, 0, sizeof(float) * K);
	memset(t->v_b, 0, sizeof(float) * K);
	memset(t->last, 0, sizeof(int64_t) * dim);
	memset(t->stamp, 0, sizeof(int64_t) * dim);
	t->step = 0;
	t->epoch = 0;
	t->lr = t->p.learning_rate;
	t->rng = t->p.seed ^ 0x5851f42d4c957f2dULL;
	t->refitting = true;
	return true;
}
