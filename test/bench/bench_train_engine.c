/*
 * bench_train_engine.c — the classifier trainer without a server, for tuning:
 * reads "text<TAB>label" lines (one row per line), trains on the first file
 * and prints the metrics on the second, with the training and prediction
 * times.  (test/bench/bench_train.sh runs the same through SQL.)  After
 * early stopping it refits on train + validation rows, as train_classifier
 * does; NO_REFIT=1 in the environment keeps the best epoch's weights instead.
 *
 *   bench_train_engine TRAIN.tsv TEST.tsv [dim lr l1 l2 epochs batch balanced seed test_fraction]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "train.h"

#define MAX_LABELS 1000

static char *labels[MAX_LABELS];
static int	n_labels;
static int	char_max = LM_NGRAM_DEFAULT_CHAR_MAX;	/* CHAR_MAX=n in the environment */


/* Class number of a label, added when new (add = 0: -1 when unknown). */
static int
label_id(const char *s, int add)
{
	for (int i = 0; i < n_labels; i++)
		if (strcmp(labels[i], s) == 0)
			return i;
	if (!add || n_labels == MAX_LABELS)
		return -1;
	labels[n_labels] = strdup(s);
	return n_labels++;
}

/* Read a TSV file: raw n-gram counts of each text into d with its label. */
static lm_dataset *
read_rows(const char *path, uint32_t dim, int add)
{
	FILE	   *f = fopen(path, "r");
	lm_dataset *d = lm_dataset_create(dim);
	lm_sparse	x = {0};
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;

	if (f == NULL || d == NULL)
	{
		perror(path);
		exit(1);
	}
	while ((len = getline(&line, &cap, f)) > 0)
	{
		char	   *tab = strrchr(line, '\t');
		int			y;

		if (tab == NULL)
			continue;
		*tab = 0;
		tab[strcspn(tab + 1, "\r\n") + 1] = 0;
		y = label_id(tab + 1, add);
		if (y < 0)
			y = 0;
		lm_ngram_counts(line, tab - line, dim, char_max, &x);
		lm_dataset_add(d, &x, y);
	}
	free(line);
	lm_sparse_free(&x);
	fclose(f);
	return d;
}

int
main(int argc, char **argv)
{
	lm_train_params p = lm_train_default_params();
	uint32_t	dim = LM_NGRAM_DEFAULT_DIM;
	double		test_fraction = 0.0;
	lm_dataset *tr,
			   *te;
	lm_split	s;
	lm_classifier *c;
	lm_trainer *t;
	lm_epoch_report rep;
	lm_metrics *m;
	int32_t		bad,
				best,
			   *all;
	char		err[256];
	double		t0,
				t1;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s TRAIN.tsv TEST.tsv [dim lr l1 l2 epochs batch balanced seed test_fraction]\n", argv[0]);
		return 2;
	}
	if (argc > 3) dim = atoi(argv[3]);
	if (argc > 4) p.learning_rate = atof(argv[4]);
	if (argc > 5) p.l1 = atof(argv[5]);
	if (argc > 6) p.l2 = atof(argv[6]);
	if (argc > 7) p.epochs = atoi(argv[7]);
	if (argc > 8) p.batch_size = atoi(argv[8]);
	if (argc > 9) p.balanced = atoi(argv[9]);
	if (argc > 10) p.seed = strtoull(argv[10], NULL, 10);
	if (argc > 11) test_fraction = atof(argv[11]);

	if (getenv("CHAR_MAX"))
		char_max = atoi(getenv("CHAR_MAX"));
	t0 = bench_wall_s();
	tr = read_rows(argv[1], dim, 1);
	if (lm_split_rows(tr, n_labels, test_fraction, LM_TRAIN_VALIDATION_FRACTION, p.seed, &s, &bad) != 0)
		return 1;
	c = lm_classifier_create(n_labels, dim, 0, err, sizeof(err));
	if (c != NULL)
		c->char_max = (uint32_t) char_max;
	if (c == NULL || lm_dataset_fit_tfidf(tr, s.train, s.n_train, dim, c->idf) != 0)
		return 1;
	t = lm_trainer_create(tr, &s, c, &p, err, sizeof(err));
	if (t == NULL)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	while (1)
	{
		int			rc = lm_trainer_epoch(t, NULL, NULL, &rep);

		printf("epoch %d loss %.4f val_acc %.4f val_loss %.4f%s\n", rep.epoch, rep.loss, rep.val_accuracy,
			   rep.val_loss, rep.best ? " *" : "");
		if (rc != LM_TRAIN_MORE)
			break;
	}
	best = lm_trainer_finish(t);
	if (getenv("NO_REFIT") == NULL && lm_trainer_refit(t))
	{
		while (lm_trainer_epoch(t, NULL, NULL, &rep) == LM_TRAIN_MORE)
			;
		lm_trainer_finish(t);
	}
	t1 = bench_wall_s();
	printf("rows %d classes %d best epoch %d train %.2f s\n", tr->n_rows, n_labels, best, t1 - t0);
	if (s.n_test > 0)
	{
		m = lm_metrics_create(n_labels, n_labels);
		lm_classifier_score(c, tr, s.test, s.n_test, m);
		lm_metrics_finish(m);
		printf("held-out part of TRAIN: accuracy %.4f macro_f1 %.4f log_loss %.4f (%d rows)\n",
			   m->accuracy, m->macro_f1, m->log_loss, s.n_test);
		lm_metrics_free(m);
	}
	else
	{
		/* predict the test file from its text, as SQL predict() does */
		FILE	   *f = fopen(argv[2], "r");
		char	   *line = NULL;
		size_t		cap = 0;
		ssize_t		len;
		lm_sparse	x = {0};
		float		probs[MAX_LABELS];

		(void) all;
		(void) te;
		m = lm_metrics_create(n_labels, n_labels);
		t0 = bench_wall_s();
		while ((len = getline(&line, &cap, f)) > 0)
		{
			char	   *tab = strrchr(line, '\t');

			*tab = 0;
			tab[strcspn(tab + 1, "\r\n") + 1] = 0;
			lm_classifier_features(c, line, tab - line, NULL, &x);
			lm_classifier_proba(c, &x, probs);
			lm_metrics_add(m, label_id(tab + 1, 0) < 0 ? 0 : label_id(tab + 1, 0), probs);
		}
		t1 = bench_wall_s();
		lm_metrics_finish(m);
		printf("TEST file: accuracy %.4f macro_f1 %.4f log_loss %.4f (%lld rows, predict %.3f s)\n",
			   m->accuracy, m->macro_f1, m->log_loss, (long long) m->n, t1 - t0);
		fclose(f);
	}
	return 0;
}
