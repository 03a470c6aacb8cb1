/*
 * test_train.c — the classifier trainer's numeric core: hashed n-gram
 * features and TF-IDF, the byte form, metrics, the stratified split, and
 * training (separable data learnt, same seed same weights, L1 sparsity,
 * early stopping keeps the best epoch, the abort check between mini-batches).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train.h"
#include "unit.h"

/* Index of bucket b in v, or -1. */
static int
find(const lm_sparse *v, uint32_t b)
{
	for (int i = 0; i < v->n; i++)
		if (v->idx[i] == b)
			return i;
	return -1;
}

/* A small dataset: three topics, each with its own words plus shared ones. */
static lm_dataset *
topics(int per_class)
{
	static const char *words[3][5] = {
		{"apple", "banana", "cherry", "mango", "pear"},
		{"car", "truck", "bicycle", "bus", "train"},
		{"blue", "green", "purple", "yellow", "orange"},
	};
	lm_dataset *d = lm_dataset_create(1024);
	lm_sparse	x = {0};
	char		text[256];

	for (int i = 0; i < per_class; i++)
		for (int c = 0; c < 3; c++)
		{
			snprintf(text, sizeof(text), "the %s and %s with some %s today", words[c][i % 5],
					 words[c][(i * 3 + 1) % 5], words[c][(i * 7 + 2) % 5]);
			lm_ngram_counts(text, strlen(text), 1024, 0, &x);
			lm_dataset_add(d, &x, c);
		}
	lm_sparse_free(&x);
	return d;
}

/* Abort check that says stop on its third call. */
static bool
stop_on_third(void *arg)
{
	return ++*(int *) arg >= 3;
}

/* Train a classifier on topics(); returns it (caller frees), best epoch in *best. */
static lm_classifier *
train_topics(const lm_train_params *p, int per_class, double test_fraction, int *best, double *best_acc)
{
	lm_dataset *d = topics(per_class);
	lm_split	s;
	int32_t		bad;
	char		err[128];
	lm_classifier *c = lm_classifier_create(3, 1024, 0, err, sizeof(err));
	lm_trainer *t;
	lm_epoch_report rep;

	lm_split_rows(d, 3, test_fraction, LM_TRAIN_VALIDATION_FRACTION, p->seed, &s, &bad);
	lm_dataset_fit_tfidf(d, s.train, s.n_train, 1024, c->idf);
	t = lm_trainer_create(d, &s, c, p, err, sizeof(err));
	*best_acc = -1;
	while (lm_trainer_epoch(t, NULL, NULL, &rep) == LM_TRAIN_MORE)
		if (rep.val_accuracy > *best_acc)
			*best_acc = rep.val_accuracy;
	if (rep.val_accuracy > *best_acc)
		*best_acc = rep.val_accuracy;
	*best = lm_trainer_finish(t);
	if (s.n_val > 0)
	{
		lm_metrics *m = lm_metrics_create(3, 3);

		lm_classifier_score(c, d, s.val, s.n_val, m);
		lm_metrics_finish(m);
		CHECK(fabs(m->accuracy - *best_acc) < 1e-12, "the kept weights score the best validation accuracy (%.4f = %.4f)",
			  m->accuracy, *best_acc);
		lm_metrics_free(m);
	}
	lm_trainer_free(t);
	lm_split_free(&s);
	lm_dataset_free(d);
	return c;
}

/*
 * Train on topics(60) (validation slice 10%), then refit on train + validation;
 * returns the weights (caller frees), the refit's epochs and rows seen.
 */
static float *
train_and_refit(uint64_t seed, bool refit, int *best, int *refit_epochs, bool *val_nan, bool *refit_again)
{
	lm_dataset *d = topics(60);
	lm_split	s;
	int32_t		bad;
	char		err[128];
	lm_classifier *c = lm_classifier_create(3, 1024, 0, err, sizeof(err));
	lm_train_params p = lm_train_default_params();
	lm_trainer *t;
	lm_epoch_report rep;
	float	   *w = malloc(sizeof(float) * (1024 * 3 + 3));

	p.seed = seed;
	p.epochs = 5;
	p.learning_rate = 0.05f;
	lm_split_rows(d, 3, 0.2, LM_TRAIN_VALIDATION_FRACTION, seed, &s, &bad);
	lm_dataset_fit_tfidf(d, s.train, s.n_train, 1024, c->idf);
	t = lm_trainer_create(d, &s, c, &p, err, sizeof(err));
	while (lm_trainer_epoch(t, NULL, NULL, &rep) == LM_TRAIN_MORE)
		;
	*best = lm_trainer_finish(t);
	*refit_epochs = 0;
	*val_nan = true;
	if (refit && lm_trainer_refit(t))
	{
		int			rc;

		do
		{
			rc = lm_trainer_epoch(t, NULL, NULL, &rep);
			(*refit_epochs)++;
			*val_nan = *val_nan && isnan(rep.val_accuracy);
		} while (rc == LM_TRAIN_MORE);
		lm_trainer_finish(t);
		*refit_again = lm_trainer_refit(t);
	}
	memcpy(w, c->W, sizeof(float) * 1024 * 3);
	memcpy(w + 1024 * 3, c->b, sizeof(float) * 3);
	lm_trainer_free(t);
	lm_classifier_free(c);
	lm_split_free(&s);
	lm_dataset_free(d);
	return w;
}

/*
 * Train on topics(30), every row a training row (no validation, no test),
 * for `epochs` epochs; copies the weights after each epoch into
 * w[e] (1024 x 3 floats each), and the final (lm_trainer_finish) ones into
 * w[epochs].
 */
static void
train_epochs(const lm_train_params *p0, int epochs, float **w)
{
	lm_dataset *d = topics(30);
	lm_split	s;
	int32_t		bad;
	char		err[128];
	lm_classifier *c = lm_classifier_create(3, 1024, 0, err, sizeof(err));
	lm_train_params p = *p0;
	lm_trainer *t;
	lm_epoch_report rep;

	p.epochs = epochs;
	lm_split_rows(d, 3, 0.0, 0.0, p.seed, &s, &bad);
	lm_dataset_fit_tfidf(d, s.train, s.n_train, 1024, c->idf);
	t = lm_trainer_create(d, &s, c, &p, err, sizeof(err));
	for (int e = 0; e < epochs; e++)
	{
		lm_trainer_epoch(t, NULL, NULL, &rep);
		memcpy(w[e], c->W, sizeof(float) * 1024 * 3);
	}
	lm_trainer_finish(t);
	memcpy(w[epochs], c->W, sizeof(float) * 1024 * 3);
	lm_trainer_free(t);
	lm_classifier_free(c);
	lm_split_free(&s);
	lm_dataset_free(d);
}

int
main(void)
{
	lm_sparse	a = {0},
				b = {0};
	float		idf[1024];
	uint32_t	df[1024];
	double		norm = 0;
	char		err[256];

	/* n-gram counts */
	lm_ngram_counts("Hello world, hello!", 19, 1 << 18, 0, &a);
	{
		float		total = 0;
		int			sorted = 1;

		for (int i = 0; i < a.n; i++)
		{
			total += a.val[i];
			if (i > 0 && a.idx[i] <= a.idx[i - 1])
				sorted = 0;
		}
		CHECK(total == 5.0f, "3 words give 3 unigrams and 2 bigrams (%g)", total);
		CHECK(sorted, "buckets are strictly increasing");
	}
	lm_ngram_counts("HELLO WORLD", 11, 1 << 18, 0, &b);
	CHECK(b.n == 3 && find(&a, b.idx[0]) >= 0 && find(&a, b.idx[1]) >= 0 && find(&a, b.idx[2]) >= 0,
		  "case does not matter, punctuation separates words");
	lm_ngram_counts("hello", 5, 1 << 18, 0, &b);
	CHECK(b.n == 1 && b.idx[0] == 39396, "the hash is fixed: \"hello\" is bucket %u of 2^18 in every process",
		  b.n ? b.idx[0] : 0);
	CHECK(find(&a, b.idx[0]) >= 0 && a.val[find(&a, b.idx[0])] == 2.0f, "a repeated word is counted twice");
	lm_ngram_counts("a b c ! ?", 9, 1 << 18, 0, &b);
	CHECK(b.n == 0, "one-letter words and punctuation give no features");
	lm_ngram_counts("caf\xc3\xa9 na\xc3\xafve", 12, 1 << 18, 0, &b);
	CHECK(b.n == 3, "UTF-8 letters stay inside words (2 words, 1 bigram)");

	/* TF-IDF */
	lm_ngram_counts("unix", 4, 1 << 18, 4, &b);
	CHECK(b.n == 8, "character n-grams: \" unix \" gives 4 trigrams, 3 four-grams and the word (%d)", b.n);
	lm_ngram_counts("UNIX", 4, 1 << 18, 4, &a);
	CHECK(a.n == b.n && memcmp(a.idx, b.idx, sizeof(uint32_t) * a.n) == 0,
		  "character n-grams are lower-cased like words");
	lm_ngram_counts("unix", 4, 1 << 18, 0, &a);
	CHECK(a.n == 1, "char_max 0 counts words only");
	lm_ngram_counts("alpha beta alpha gamma", 22, 1024, 0, &a);
	memset(df, 0, sizeof(df));
	df[a.idx[0]] = 1;
	for (int i = 1; i < a.n; i++)
		df[a.idx[i]] = 3;
	lm_idf_from_df(df, 1024, 4, idf);
	CHECK(idf[5] == 0.0f || df[5] != 0, "a bucket never seen gets idf 0");
	CHECK(fabsf(idf[a.idx[0]] - (float) (log(5.0 / 2.0) + 1)) < 1e-6, "idf = ln((1+n)/(1+df)) + 1");
	df[a.idx[a.n - 1]] = 0;
	lm_idf_from_df(df, 1024, 4, idf);
	{
		int			before = a.n;

		lm_tfidf_apply(idf, 1024, &a);
		for (int i = 0; i < a.n; i++)
			norm += (double) a.val[i] * a.val[i];
		CHECK(a.n == before - 1, "features whose idf is 0 are dropped");
		CHECK(fabs(norm - 1.0) < 1e-6, "TF-IDF rows have unit L2 norm (%g)", norm);
	}

	/* metrics: truth/pred pairs (0,0) (0,1) (1,1) (1,1) (2,1) and one unknown class 3 */
	{
		lm_metrics *m = lm_metrics_create(4, 3);
		float		p0[3] = {0.8f, 0.1f, 0.1f},
					p1[3] = {0.2f, 0.7f, 0.1f};

		lm_metrics_add(m, 0, p0);
		lm_metrics_add(m, 0, p1);
		lm_metrics_add(m, 1, p1);
		lm_metrics_add(m, 1, p1);
		lm_metrics_add(m, 2, p1);
		lm_metrics_add(m, 3, p0);
		lm_metrics_finish(m);
		CHECK(fabs(m->accuracy - 3.0 / 6) < 1e-12, "accuracy 3/6 (%g)", m->accuracy);
		/* class 0: P 1/2 R 1/2 F 1/2; class 1: P 2/4 R 1 F 2/3; class 2: 0; class 3: 0 */
		CHECK(fabs(m->macro_f1 - (0.5 + 2.0 / 3) / 4) < 1e-12, "macro-F1 averages all classes present (%g)",
			  m->macro_f1);
		CHECK(m->confusion[0 * 4 + 1] == 1 && m->confusion[3 * 4 + 0] == 1 && m->support[1] == 2,
			  "confusion matrix counts [truth][predicted]");
		CHECK(fabs(m->log_loss - (-log(0.8) - log(0.2) - 2 * log(0.7) - log(0.1) - log(1e-15)) / 6) < 1e-6,
			  "log-loss clips an unknown class at 1e-15 (%g)", m->log_loss);
		lm_metrics_free(m);
	}

	/* byte form */
	{
		lm_classifier *c = lm_classifier_create(3, 64, 0, err, sizeof(err));
		lm_classifier *r;
		size_t		n;
		uint8_t    *buf;

		for (int i = 0; i < 64; i++)
			c->idf[i] = (float) i / 7;
		c->W[5 * 3 + 1] = 1.5f;
		c->W[40 * 3 + 2] = -2.25f;
		c->b[0] = 0.5f;
		n = lm_classifier_serialized_size(c);
		buf = malloc(n + 1);
		lm_classifier_serialize(c, buf);
		free(buf);
		c->char_max = 4;
		n = lm_classifier_serialized_size(c);
		buf = malloc(n + 1);
		lm_classifier_serialize(c, buf);
		CHECK(n == 24 + 64 * 4 + 8 + 3 * 4 * 3, "only nonzero weight rows are stored (%zu bytes)", n);
		r = lm_classifier_parse(buf, n, err, sizeof(err));
		CHECK(r && r->char_max == 4, "the byte form keeps the character n-gram length");
		lm_classifier_free(r);
		{
			/* the version-1 form (no char_max field) still reads, as words only */
			uint8_t    *v1 = malloc(n - 4);
			uint32_t	one = 1;

			memcpy(v1, buf, 20);
			memcpy(v1 + 4, &one, 4);
			memcpy(v1 + 20, buf + 24, n - 24);
			r = lm_classifier_parse(v1, n - 4, err, sizeof(err));
			CHECK(r && r->char_max == 0 && memcmp(r->W, c->W, sizeof(float) * 64 * 3) == 0,
				  "a version-1 byte form reads back, without character n-grams");
			lm_classifier_free(r);
			free(v1);
		}
		memset(buf + 20, 0x7f, 4);
		r = lm_classifier_parse(buf, n, err, sizeof(err));
		CHECK(r == NULL && strstr(err, "character"), "an absurd character n-gram length is refused: %s", err);
		c->char_max = 0;
		free(buf);
		buf = malloc(n + 1);
		lm_classifier_serialize(c, buf);
		r = lm_classifier_parse(buf, n, err, sizeof(err));
		CHECK(r && memcmp(r->W, c->W, sizeof(float) * 64 * 3) == 0 && memcmp(r->idf, c->idf, 64 * 4) == 0 &&
			  r->b[0] == 0.5f, "the byte form reads back identical");
		lm_classifier_free(r);
		r = lm_classifier_parse(buf, n - 1, err, sizeof(err));
		CHECK(r == NULL && strstr(err, "bytes"), "a truncated byte form is refused: %s", err);
		r = lm_classifier_parse(buf, 10, err, sizeof(err));
		CHECK(r == NULL, "a short header is refused: %s", err);
		memcpy(buf + 24 + 64 * 4 + 8, &(float) {NAN}, 4);
		r = lm_classifier_parse(buf, n, err, sizeof(err));
		CHECK(r == NULL && strstr(err, "finite"), "a NaN weight is refused: %s", err);
		memset(buf + 8, 0xff, 4);
		r = lm_classifier_parse(buf, n, err, sizeof(err));
		CHECK(r == NULL, "an absurd class count is refused: %s", err);
		free(buf);
		lm_classifier_free(c);
	}

	/* refit on train + validation for the best epoch's count */
	{
		int			best,
					best2,
					n_refit,
					n_refit2,
					n_plain;
		bool		val_nan,
					again = true;
		float	   *w1 = train_and_refit(7, true, &best, &n_refit, &val_nan, &again);
		float	   *w2 = train_and_refit(7, true, &best2, &n_refit2, &val_nan, &again);
		float	   *w0 = train_and_refit(7, false, &best2, &n_plain, &val_nan, &again);

		CHECK(best >= 1 && n_refit == best, "the refit runs as many epochs as the best epoch (%d = %d)", n_refit, best);
		CHECK(val_nan, "the refit reports no validation scores (its validation rows are training rows)");
		CHECK(!again, "a second refit is refused");
		CHECK(memcmp(w1, w2, sizeof(float) * (1024 * 3 + 3)) == 0, "the refit is deterministic");
		CHECK(memcmp(w1, w0, sizeof(float) * (1024 * 3 + 3)) != 0, "the refit changes the weights");
		free(w0);
		free(w1);
		free(w2);
	}

	/* split */
	{
		lm_dataset *d = topics(10);
		lm_split	s,
					s2;
		int32_t		bad = -1;
		int			counts[3] = {0};

		int			rc = lm_split_rows(d, 3, 0.2, 0.1, 42, &s, &bad);

		CHECK(rc == 0 && s.n_test == 6 && s.n_val == 0 && s.n_train == 24,
			  "stratified split: 2 test rows per class of 10 (%d/%d/%d)", s.n_train, s.n_val, s.n_test);
		for (int i = 0; i < s.n_test; i++)
			counts[d->label[s.test[i]]]++;
		CHECK(counts[0] == 2 && counts[1] == 2 && counts[2] == 2, "each class gives its share to the test part");
		lm_split_rows(d, 3, 0.2, 0.1, 42, &s2, &bad);
		CHECK(memcmp(s.test, s2.test, sizeof(int32_t) * s.n_test) == 0, "the same seed gives the same split");
		lm_split_free(&s2);
		lm_split_free(&s);
		d->n_rows = 4;			/* rows 0,1,2 (one per class) and 3 (class 0) */
		rc = lm_split_rows(d, 3, 0.2, 0.1, 1, &s, &bad);
		CHECK(rc == -2 && bad == 1,
			  "a class with one row cannot give a test row and keep a training row (class %d)", bad);
		lm_dataset_free(d);
	}

	/* training */
	{
		lm_train_params p = lm_train_default_params();
		lm_classifier *c1,
				   *c2,
				   *c3;
		int			best;
		double		best_acc;
		lm_sparse	x = {0};
		float		probs[3];
		int			zeros_plain = 0,
					zeros_l1 = 0;

		p.epochs = 30;
		p.batch_size = 8;
		p.seed = 11;
		c1 = train_topics(&p, 40, 0.2, &best, &best_acc);
		CHECK(best >= 1 && best <= 30, "early stopping reports the epoch it kept (%d)", best);
		lm_classifier_features(c1, "a ripe mango and a pear", 23, NULL, &x);
		lm_classifier_proba(c1, &x, probs);
		CHECK(probs[0] > 0.5f && fabsf(probs[0] + probs[1] + probs[2] - 1.0f) < 1e-5,
			  "a fruit text is predicted fruit (p = %.3f), probabilities sum to 1", probs[0]);
		c2 = train_topics(&p, 40, 0.2, &best, &best_acc);
		CHECK(memcmp(c1->W, c2->W, sizeof(float) * 1024 * 3) == 0 && memcmp(c1->b, c2->b, sizeof(float) * 3) == 0,
			  "the same data and seed give bit-identical weights");
		p.seed = 12;
		c3 = train_topics(&p, 40, 0.2, &best, &best_acc);
		CHECK(memcmp(c1->W, c3->W, sizeof(float) * 1024 * 3) != 0, "another seed gives other weights");
		lm_classifier_free(c2);
		lm_classifier_free(c3);

		p.seed = 11;
		p.l1 = 0.05f;
		c2 = train_topics(&p, 40, 0.2, &best, &best_acc);
		for (int i = 0; i < 1024 * 3; i++)
		{
			zeros_plain += c1->W[i] == 0.0f;
			zeros_l1 += c2->W[i] == 0.0f;
		}
		CHECK(zeros_l1 > zeros_plain, "L1 zeroes weights (%d zero weights against %d)", zeros_l1, zeros_plain);
		lm_classifier_free(c2);

		p.l1 = 0;
		p.l2 = 1.0f;
		c2 = train_topics(&p, 40, 0.2, &best, &best_acc);
		{
			double		n1 = 0,
						n2 = 0;

			for (int i = 0; i < 1024 * 3; i++)
			{
				n1 += (double) c1->W[i] * c1->W[i];
				n2 += (double) c2->W[i] * c2->W[i];
			}
			CHECK(n2 < n1, "L2 shrinks the weights (|W|^2 %.3f against %.3f)", n2, n1);
		}
		lm_classifier_free(c2);
		lm_classifier_free(c1);
		lm_sparse_free(&x);
	}

	/* the abort check runs before each mini-batch */
	{
		lm_dataset *d = topics(40);
		lm_split	s;
		int32_t		bad;
		lm_classifier *c = lm_classifier_create(3, 1024, 0, err, sizeof(err));
		lm_train_params p = lm_train_default_params();
		lm_trainer *t;
		lm_epoch_report rep;
		int			calls = 0;

		p.batch_size = 4;
		lm_split_rows(d, 3, 0.2, 0.1, 0, &s, &bad);
		lm_dataset_fit_tfidf(d, s.train, s.n_train, 1024, c->idf);
		t = lm_trainer_create(d, &s, c, &p, err, sizeof(err));
		CHECK(lm_trainer_epoch(t, stop_on_third, &calls, &rep) == LM_TRAIN_ABORTED && calls == 3,
			  "training stops at the first mini-batch boundary after the abort check says so");
		lm_trainer_free(t);
		p.batch_size = 0;
		t = lm_trainer_create(d, &s, c, &p, err, sizeof(err));
		CHECK(t == NULL && strstr(err, "batch_size"), "a batch size of 0 is refused: %s", err);
		p.batch_size = 4;
		p.learning_rate = 0.5f;
		p.l2 = 2.0f;
		t = lm_trainer_create(d, &s, c, &p, err, sizeof(err));
		CHECK(t == NULL, "learning_rate * l2 >= 1 is refused: %s", err);
		lm_split_free(&s);
		lm_classifier_free(c);
		lm_dataset_free(d);
	}

	/* lr_decay scales the step size from the second epoch on; average keeps a running mean */
	{
		lm_train_params p = lm_train_default_params();
		float	   *plain[3],
				   *decayed[3],
				   *averaged[3];
		bool		same_first = true,
					same_second = true,
					is_mean = true,
					differs = false;

		for (int e = 0; e < 3; e++)
		{
			plain[e] = malloc(sizeof(float) * 1024 * 3);
			decayed[e] = malloc(sizeof(float) * 1024 * 3);
			averaged[e] = malloc(sizeof(float) * 1024 * 3);
		}
		p.learning_rate = 0.1f;
		p.l2 = 0.001f;
		train_epochs(&p, 2, plain);
		p.lr_decay = 0.5f;
		train_epochs(&p, 2, decayed);
		for (int i = 0; i < 1024 * 3; i++)
		{
			same_first = same_first && plain[0][i] == decayed[0][i];
			same_second = same_second && plain[1][i] == decayed[1][i];
		}
		CHECK(same_first && !same_second,
			  "lr_decay 0.5: the first epoch is as without it, the second differs");
		p.lr_decay = 1.0f;
		p.average = 0.25f;
		train_epochs(&p, 2, averaged);
		for (int i = 0; i < 1024 * 3; i++)
		{
			float		mean = 0.25f * plain[0][i] + 0.75f * plain[1][i];

			is_mean = is_mean && averaged[2][i] == mean;
			differs = differs || averaged[2][i] != plain[2][i];
		}
		CHECK(is_mean && differs,
			  "average 0.25 over 2 epochs keeps 0.25 x epoch 1's weights + 0.75 x epoch 2's (the training itself unchanged)");
		{
			lm_dataset *d = topics(10);
			lm_split	s;
			int32_t		bad;
			lm_classifier *c = lm_classifier_create(3, 1024, 0, err, sizeof(err));

			lm_split_rows(d, 3, 0.0, 0.0, 0, &s, &bad);
			p.average = 1.0f;
			CHECK(lm_trainer_create(d, &s, c, &p, err, sizeof(err)) == NULL && strstr(err, "average"),
				  "average 1 is refused: %s", err);
			p.average = 0.0f;
			p.lr_decay = 0.0f;
			CHECK(lm_trainer_create(d, &s, c, &p, err, sizeof(err)) == NULL && strstr(err, "lr_decay"),
				  "lr_decay 0 is refused: %s", err);
			lm_split_free(&s);
			lm_classifier_free(c);
			lm_dataset_free(d);
		}
		for (int e = 0; e < 3; e++)
		{
			free(plain[e]);
			free(decayed[e]);
			free(averaged[e]);
		}
	}

	lm_sparse_free(&a);
	lm_sparse_free(&b);
	return unit_done();
}
