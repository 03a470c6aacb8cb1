/*
 * cv_train_engine.c — k-fold cross-validation of the classifier trainer on
 * one labelled file, to choose training defaults without looking at a test
 * file.  Reads "text<TAB>label" lines, deals the rows into k stratified folds
 * (a shuffle per class seeded by fold_seed; row i of a class's shuffled list
 * goes to fold i mod k), and for each fold trains on the other folds exactly
 * as lmgen.train_classifier does with test_fraction => 0 (a tenth of each
 * class as the validation slice, early stopping, refit on training +
 * validation rows for the best epoch count), then predicts the fold's texts
 * as predict() does.  Prints each fold's and the mean accuracy, macro-F1 and
 * log-loss, with the training seconds.
 *
 *   cv_train_engine TRAIN.tsv [key=value ...]
 *     keys: folds (5), fold_seed (1), dim, char_max, lr, l1, l2, epochs, batch,
 *           balanced (0/1), lr_decay, average, seed (training seed, 0),
 *           rows (only the first rows of the file), checksum (1: print a hash of
 *           each fold's weights, to check that a faster build trains the same),
 *           test=FILE (no folds: train on every row of TRAIN, as
 *           train_classifier(..., test_fraction => 0) does from the same rows in
 *           the same order, and score FILE as evaluate() does; for the one
 *           final look at a test file, after the choice)
 *
 * Build (from the repository root, after make):
 *   gcc -std=gnu11 -O2 -ffp-contract=off -Isrc/engine -Itest/bench -o /tmp/cv_train_engine \
 *       test/bench/cv_train_engine.c src/engine/train.o src/engine/train_model.o \
 *       src/engine/train_metrics.o src/engine/features_ngram.o src/engine/errmsg.o -lm
 * test/bench/select_train_defaults.sh builds it and runs the candidate grid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "train.h"

#define MAX_LABELS 1000
#define MAX_FOLDS 20

/* The labelled rows of the file. */
typedef struct Rows
{
	char	  **text;			/* (n) texts */
	size_t	   *len;			/* (n) their lengths */
	int32_t    *label;			/* (n) class numbers (labels in byte order) */
	int32_t		n;
	char	   *labels[MAX_LABELS];	/* class names */
	int32_t		n_labels;
} Rows;

/* Settings of one cross-validation run. */
typedef struct Settings
{
	int			folds;			/* k */
	uint64_t	fold_seed;		/* seeds the deal into folds */
	uint32_t	dim;			/* n-gram buckets */
	int			char_max;		/* longest character n-gram (0: words only) */
	lm_train_params p;			/* trainer settings */
	int			rows;			/* use only the first rows of the file (0: all) */
	const char *test;			/* a test file: train on every row, score it, no folds */
	bool		checksum;		/* print a hash of each fold's weights */
} Settings;

/* Read the TSV file into r; labels numbered in byte order as train_classifier numbers them. */
static void
read_rows(const char *path, Rows *r)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0,
				rcap = 0;
	ssize_t		len;
	char	  **raw_label = NULL;

	if (f == NULL)
	{
		perror(path);
		exit(1);
	}
	memset(r, 0, sizeof(*r));
	while ((len = getline(&line, &cap, f)) > 0)
	{
		char	   *tab = strrchr(line, '\t');

		if (tab == NULL)
			continue;
		*tab = 0;
		tab[strcspn(tab + 1, "\r\n") + 1] = 0;
		if ((size_t) r->n == rcap)
		{
			rcap = rcap ? 2 * rcap : 1024;
			r->text = realloc(r->text, sizeof(char *) * rcap);
			r->len = realloc(r->len, sizeof(size_t) * rcap);
			raw_label = realloc(raw_label, sizeof(char *) * rcap);
		}
		r->text[r->n] = strdup(line);
		r->len[r->n] = (size_t) (tab - line);
		raw_label[r->n] = strdup(tab + 1);
		r->n++;
	}
	free(line);
	fclose(f);

	/* distinct labels, sorted, then each row's number */
	r->label = malloc(sizeof(int32_t) * r->n);
	for (int32_t i = 0; i < r->n; i++)
	{
		int			k;

		for (k = 0; k < r->n_labels && strcmp(r->labels[k], raw_label[i]) != 0; k++)
			;
		if (k == r->n_labels)
		{
			if (r->n_labels == MAX_LABELS)
			{
				fprintf(stderr, "more than %d labels\n", MAX_LABELS);
				exit(1);
			}
			r->labels[r->n_labels++] = raw_label[i];
		}
	}
	for (int i = 1; i < r->n_labels; i++)
		for (int j = i; j > 0 && strcmp(r->labels[j - 1], r->labels[j]) > 0; j--)
		{
			char	   *tmp = r->labels[j];

			r->labels[j] = r->labels[j - 1];
			r->labels[j - 1] = tmp;
		}
	for (int32_t i = 0; i < r->n; i++)
		for (int k = 0; k < r->n_labels; k++)
			if (strcmp(r->labels[k], raw_label[i]) == 0)
				r->label[i] = k;
}

/* Next 64 random bits (splitmix64). */
static uint64_t
next_rand(uint64_t *s)
{
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Fold of each row: per class, a seeded shuffle dealt round the k folds. */
static int *
deal_folds(const Rows *r, int k, uint64_t seed)
{
	int		   *fold = malloc(sizeof(int) * r->n);
	int32_t    *members = malloc(sizeof(int32_t) * r->n);
	uint64_t	s = seed;

	for (int c = 0; c < r->n_labels; c++)
	{
		int32_t		m = 0;

		for (int32_t i = 0; i < r->n; i++)
			if (r->label[i] == c)
				members[m++] = i;
		for (int32_t i = m - 1; i > 0; i--)
		{
			int32_t		j = (int32_t) (next_rand(&s) % (uint64_t) (i + 1));
			int32_t		tmp = members[i];

			members[i] = members[j];
			members[j] = tmp;
		}
		for (int32_t i = 0; i < m; i++)
			fold[members[i]] = i % k;
	}
	free(members);
	return fold;
}

/* FNV-1a hash of a classifier's weights and biases, to show two builds train bit-identically. */
static uint64_t
weights_hash(const lm_classifier *c)
{
	uint64_t	h = 0xcbf29ce484222325ULL;
	const unsigned char *w = (const unsigned char *) c->W;
	const unsigned char *b = (const unsigned char *) c->b;

	for (size_t i = 0; i < sizeof(float) * (size_t) c->dim * c->n_classes; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	for (size_t i = 0; i < sizeof(float) * (size_t) c->n_classes; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Train on every row outside fold f as train_classifier does; score fold f into m. Returns seconds. */
static double
run_fold(const Rows *r, const int *fold, int f, const Settings *st, lm_metrics *m)
{
	lm_dataset *d = lm_dataset_create(st->dim);
	lm_sparse	x = {0};
	lm_split	s;
	lm_classifier *c;
	lm_trainer *t;
	lm_epoch_report rep;
	int32_t		bad;
	char		err[256];
	float		probs[MAX_LABELS];
	double		t0 = bench_wall_s(),
				t1;

	for (int32_t i = 0; i < r->n; i++)
		if (fold[i] != f)
		{
			lm_ngram_counts(r->text[i], r->len[i], st->dim, st->char_max, &x);
			if (lm_dataset_add(d, &x, r->label[i]) != 0)
				exit(1);
		}
	if (lm_split_rows(d, r->n_labels, 0.0, LM_TRAIN_VALIDATION_FRACTION, st->p.seed, &s, &bad) != 0)
		exit(1);
	c = lm_classifier_create(r->n_labels, st->dim, 0, err, sizeof(err));
	if (c == NULL)
	{
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	c->char_max = (uint32_t) st->char_max;
	if (lm_dataset_fit_tfidf(d, s.train, s.n_train, st->dim, c->idf) != 0)
		exit(1);
	t = lm_trainer_create(d, &s, c, &st->p, err, sizeof(err));
	if (t == NULL)
	{
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	while (lm_trainer_epoch(t, NULL, NULL, &rep) == LM_TRAIN_MORE)
		;
	lm_trainer_finish(t);
	if (lm_trainer_refit(t))
	{
		while (lm_trainer_epoch(t, NULL, NULL, &rep) == LM_TRAIN_MORE)
			;
		lm_trainer_finish(t);
	}
	t1 = bench_wall_s();
	if (st->checksum)
		printf("fold %d: weights hash %016llx\n", f, (unsigned long long) weights_hash(c));

	for (int32_t i = 0; i < r->n; i++)
		if (fold[i] == f)
		{
			lm_classifier_features(c, r->text[i], r->len[i], NULL, &x);
			lm_classifier_proba(c, &x, probs);
			lm_metrics_add(m, r->label[i], probs);
		}
	lm_trainer_free(t);
	lm_classifier_free(c);
	lm_split_free(&s);
	lm_dataset_free(d);
	lm_sparse_free(&x);
	return t1 - t0;
}

/* Set one key=value; false when the key is unknown. */
static bool
set_option(Settings *st, const char *kv)
{
	const char *eq = strchr(kv, '=');
	const char *v;

	if (eq == NULL)
		return false;
	v = eq + 1;
#define KEY(k) (strncmp(kv, k, (size_t) (eq - kv)) == 0 && strlen(k) == (size_t) (eq - kv))
	if (KEY("folds")) st->folds = atoi(v);
	else if (KEY("fold_seed")) st->fold_seed = strtoull(v, NULL, 10);
	else if (KEY("dim")) st->dim = (uint32_t) atol(v);
	else if (KEY("char_max")) st->char_max = atoi(v);
	else if (KEY("lr")) st->p.learning_rate = strtof(v, NULL);
	else if (KEY("l1")) st->p.l1 = strtof(v, NULL);
	else if (KEY("l2")) st->p.l2 = strtof(v, NULL);
	else if (KEY("epochs")) st->p.epochs = atoi(v);
	else if (KEY("batch")) st->p.batch_size = atoi(v);
	else if (KEY("balanced")) st->p.balanced = atoi(v) != 0;
	else if (KEY("lr_decay")) st->p.lr_decay = strtof(v, NULL);
	else if (KEY("average")) st->p.average = strtof(v, NULL);
	else if (KEY("seed")) st->p.seed = strtoull(v, NULL, 10);
	else if (KEY("rows")) st->rows = atoi(v);
	else if (KEY("checksum")) st->checksum = atoi(v) != 0;
	else if (KEY("test")) st->test = v;
	else
		return false;
#undef KEY
	return true;
}

int
main(int argc, char **argv)
{
	Settings	st;
	Rows		r;
	int		   *fold;
	double		acc = 0,
				f1 = 0,
				ll = 0,
				secs = 0;
	lm_metrics *all;

	st.folds = 5;
	st.fold_seed = 1;
	st.dim = LM_NGRAM_DEFAULT_DIM;
	st.char_max = LM_NGRAM_DEFAULT_CHAR_MAX;
	st.p = lm_train_default_params();
	st.rows = 0;
	st.checksum = false;
	st.test = NULL;
	if (argc < 2)
	{
		fprintf(stderr, "usage: %s TRAIN.tsv [key=value ...]\n", argv[0]);
		return 2;
	}
	for (int i = 2; i < argc; i++)
		if (!set_option(&st, argv[i]))
		{
			fprintf(stderr, "unknown option \"%s\"\n", argv[i]);
			return 2;
		}
	if (st.folds < 2 || st.folds > MAX_FOLDS)
	{
		fprintf(stderr, "folds must be 2 to %d\n", MAX_FOLDS);
		return 2;
	}
	read_rows(argv[1], &r);
	if (st.rows > 0 && st.rows < r.n)
		r.n = st.rows;
	if (st.test != NULL)
	{
		Rows		te;
		int		   *which;
		int32_t    *map = malloc(sizeof(int32_t) * MAX_LABELS);
		lm_metrics *m = lm_metrics_create(r.n_labels, r.n_labels);
		double		s;

		/* the test rows go last, as fold 1; the training rows are fold 0 */
		read_rows(st.test, &te);
		for (int k = 0; k < te.n_labels; k++)
		{
			map[k] = -1;
			for (int j = 0; j < r.n_labels; j++)
				if (strcmp(te.labels[k], r.labels[j]) == 0)
					map[k] = j;
			if (map[k] < 0)
			{
				fprintf(stderr, "test label \"%s\" is not in the training file\n", te.labels[k]);
				return 1;
			}
		}
		which = malloc(sizeof(int) * ((size_t) r.n + te.n));
		r.text = realloc(r.text, sizeof(char *) * ((size_t) r.n + te.n));
		r.len = realloc(r.len, sizeof(size_t) * ((size_t) r.n + te.n));
		r.label = realloc(r.label, sizeof(int32_t) * ((size_t) r.n + te.n));
		for (int32_t i = 0; i < r.n; i++)
			which[i] = 0;
		for (int32_t i = 0; i < te.n; i++)
		{
			r.text[r.n + i] = te.text[i];
			r.len[r.n + i] = te.len[i];
			r.label[r.n + i] = map[te.label[i]];
			which[r.n + i] = 1;
		}
		r.n += te.n;
		s = run_fold(&r, which, 1, &st, m);
		lm_metrics_finish(m);
		printf("test file %s: accuracy %.4f macro_f1 %.4f log_loss %.4f rows %lld, trained on %d rows in %.2f s\n",
			   st.test, m->accuracy, m->macro_f1, m->log_loss, (long long) m->n, r.n - te.n, s);
		return 0;
	}
	fold = deal_folds(&r, st.folds, st.fold_seed);
	all = lm_metrics_create(r.n_labels, r.n_labels);
	for (int f = 0; f < st.folds; f++)
	{
		lm_metrics *m = lm_metrics_create(r.n_labels, r.n_labels);
		double		s = run_fold(&r, fold, f, &st, m);

		/* the pooled confusion counts of every fold, for the overall figures */
		for (int64_t i = 0; i < (int64_t) r.n_labels * r.n_labels; i++)
			all->confusion[i] += m->confusion[i];
		all->n += m->n;
		all->sum_log_loss += m->sum_log_loss;
		lm_metrics_finish(m);
		printf("fold %d: accuracy %.4f macro_f1 %.4f log_loss %.4f rows %lld train %.2f s\n", f, m->accuracy,
			   m->macro_f1, m->log_loss, (long long) m->n, s);
		acc += m->accuracy;
		f1 += m->macro_f1;
		ll += m->log_loss;
		secs += s;
		lm_metrics_free(m);
		fflush(stdout);
	}
	lm_metrics_finish(all);
	printf("mean of %d folds: accuracy %.4f macro_f1 %.4f log_loss %.4f train %.2f s/fold (pooled accuracy %.4f over %lld rows)\n",
		   st.folds, acc / st.folds, f1 / st.folds, ll / st.folds, secs / st.folds, all->accuracy,
		   (long long) all->n);
	return 0;
}
