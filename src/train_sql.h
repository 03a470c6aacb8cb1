/*
 * train_sql.h — declarations shared by the glue of the trained classifiers:
 * reading labelled rows (train_rows.c), the classifier store and its
 * per-backend cache (train_store.c), progress (train_progress.c) and jsonb
 * output of metrics (train_rows.c).
 */
#ifndef LMGEN_TRAIN_SQL_H
#define LMGEN_TRAIN_SQL_H

#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/jsonb.h"

#include "train_metrics.h"
#include "train_model.h"

#define TRAIN_MAX_LABEL_BYTES 255	/* longest label (bytes, UTF-8) */
#define TRAIN_FETCH_ROWS 1000		/* rows fetched from the cursor at a time */

/* Labels seen so far: a name for each class number, and a hash to find it. */
typedef struct LabelSet
{
	HTAB	   *hash;			/* label -> class number */
	char	  **names;			/* (n) labels in class-number order, palloc'd */
	int			n;				/* classes */
	int			cap;			/* names allocated */
	int			max;			/* ERROR past this many classes */
} LabelSet;

/* An empty label set (in CurrentMemoryContext) that refuses more than max labels. */
extern void LabelSetInit(LabelSet *ls, int max);

/* The class number of a label, added when new. */
extern int	LabelSetId(LabelSet *ls, const char *label);

/* Called for each row with a non-NULL text and label: UTF-8 text and the label's class. */
typedef void (*LabelledRowFn) (void *arg, const char *text, size_t len, int label);

/* Called for each row with neither column NULL: the UTF-8 text and the second column's output form. */
typedef void (*TextPairFn) (void *arg, const char *text, size_t len, const char *second, size_t second_len);

/* Counts of one pass over a query's rows. */
typedef struct RowCounts
{
	int64		read;			/* rows the query returned */
	int64		skipped;		/* rows with a NULL text or label */
} RowCounts;

/*
 * Run a (text, label) query through SPI as the current user with a cursor
 * and call fn for each usable row; ERROR when the query is empty, not a
 * SELECT, or has the wrong columns.  `what` names the function for messages.
 */
extern void ForEachLabelledRow(const char *what, const char *query, LabelSet *labels, LabelledRowFn fn,
							   void *arg, RowCounts *counts);

/*
 * The same for any (text, second column) query: fn gets the second column
 * as its type's output function writes it (summarize()'s examples); shape
 * names the columns in its errors ("(text, summary)").
 */
extern void ForEachTextPair(const char *what, const char *shape, const char *query, TextPairFn fn, void *arg,
							RowCounts *counts);

/* Metrics as jsonb: accuracy, macro_f1, log_loss, rows, per_class, confusion. */
extern Jsonb *MetricsToJsonb(const lm_metrics *m, char **labels);

/* Append m's metrics as a JSON object to buf. */
extern void AppendMetricsJson(StringInfo buf, const lm_metrics *m, char **labels);

/* A trained classifier as this backend caches it. */
typedef struct CachedClassifier
{
	char		name[NAMEDATALEN];	/* hash key */
	char		version[64];	/* xmin and ctid of the stored row it was parsed from */
	lm_classifier *c;			/* parsed weights (engine, malloc) */
	char	  **labels;			/* (c->n_classes) labels (TopMemoryContext) */
	char		model[NAMEDATALEN];	/* model of the embedding features, "" when none */
} CachedClassifier;

/*
 * Features of one text for classifier c into x: its n-grams and, when c has
 * embedding features, the embedding of the text by `model`.
 */
extern void ClassifierFeatures(const lm_classifier *c, const char *model, const char *s, size_t len,
							   lm_sparse *x);

/* The stored classifier `name`, parsed once per backend (again when replaced); ERROR when unknown. */
extern CachedClassifier *ClassifierAcquire(const char *name);

/* ERROR unless name is a valid classifier name. */
extern void CheckClassifierName(const char *name);

/*
 * Before training: ERROR when `name` exists and replace is false, or the
 * current user may not replace it.
 */
extern void CheckClassifierWritable(const char *name, bool replace);

/* Store (or replace) a classifier as the extension's owner. */
extern void StoreClassifier(const char *name, bool replace, char **labels, int n_labels, const char *recipe_json,
							bytea *weights, Jsonb *metrics);

/* Progress of this backend's training, visible in lmgen.training_progress. */
extern void TrainProgressBegin(const char *name, int epochs);
extern void TrainProgressPhase(const char *phase);
extern void TrainProgressRows(int64 read, int64 skipped);
extern void TrainProgressEpoch(int epoch, double loss, double val_accuracy);
extern void TrainProgressEnd(void);

#endif							/* LMGEN_TRAIN_SQL_H */
