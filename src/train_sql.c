/*
 * train_sql.c — lmgen.train_classifier(): read labelled rows, build
 * features, fit softmax regression, score the held-out rows, store.
 *
 * Order of work: check the arguments and that the name may be written
 * (before any row is read), read the rows (train_rows.c) into the engine's
 * row store as raw n-gram counts followed, for the features "embedding" and
 * "both", by the model's embed() of the text; sort the labels (so class numbers do not
 * depend on row order), split them (stratified, seeded), fit the idf on the
 * training part only, train epoch by epoch (a NOTICE and a progress update
 * after each; the engine checks for cancellation between mini-batches),
 * score the test part, then store the classifier.  Everything the engine
 * allocated is freed by a reset callback on this call's memory context, so
 * an ERROR or a cancel leaks nothing.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "sqlfuncs_common.h"
#include "train.h"
#include "train_sql.h"

PG_FUNCTION_INFO_V1(lmgen_train_classifier);

/* Engine objects of one training, freed together. */
typedef struct TrainState
{
	lm_dataset *data;			/* rows as sparse features */
	lm_split	split;			/* train / validation / test row numbers */
	lm_classifier *c;			/* the weights */
	lm_trainer *trainer;		/* optimizer state */
	lm_sparse	scratch;		/* one row's features */
	lm_metrics *metrics;		/* test scores */
	LmgenModel *model;			/* embedding model, NULL for n-grams only */
	uint32		ngram_dim;		/* n-gram buckets, 0 for embeddings only */
	float	   *embedding;		/* (embed_dim) one row's embedding */
	uint32		embed_dim;		/* embedding width, 0 for n-grams only */
} TrainState;

/* Reset callback: free the engine objects and end the progress entry. */
static void
FreeTrainState(void *arg)
{
	TrainState *s = arg;

	lm_trainer_free(s->trainer);
	lm_classifier_free(s->c);
	lm_split_free(&s->split);
	lm_dataset_free(s->data);
	lm_sparse_free(&s->scratch);
	lm_metrics_free(s->metrics);
	free(s->embedding);
	memset(s, 0, sizeof(*s));
	TrainProgressEnd();
}

/* Feature recipe parsed from the `features` argument. */
typedef struct Recipe
{
	const char *kind;			/* "ngrams", "embedding" or "both" */
	uint32		ngram_dim;		/* n-gram buckets, 0 for embeddings only */
	bool		embedding;		/* the model's embeddings are features */
} Recipe;

/* Parse 'ngrams', 'embedding', 'both', 'ngrams:<dim>' or 'both:<dim>'. */
static Recipe
ParseFeatures(const char *f)
{
	Recipe		r;
	const char *dim = NULL;

	r.ngram_dim = LM_NGRAM_DEFAULT_DIM;
	r.embedding = false;
	if (strcmp(f, "embedding") == 0)
	{
		r.kind = "embedding";
		r.ngram_dim = 0;
		r.embedding = true;
		return r;
	}
	if (strcmp(f, "ngrams") == 0 || strcmp(f, "both") == 0)
	{
		r.kind = f[0] == 'n' ? "ngrams" : "both";
		r.embedding = f[0] == 'b';
		return r;
	}
	if (strncmp(f, "ngrams:", 7) == 0)
		dim = f + 7, r.kind = "ngrams";
	else if (strncmp(f, "both:", 5) == 0)
		dim = f + 5, r.kind = "both", r.embedding = true;
	if (dim != NULL)
	{
		char	   *end;
		long		d = strtol(dim, &end, 10);

		if (*end != '\0' || end == dim || d < LM_NGRAM_MIN_DIM || d > LM_NGRAM_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid n-gram dimension in features \"%s\"", f),
					 errdetail("The dimension must be an integer from %d to %d.", LM_NGRAM_MIN_DIM, LM_NGRAM_MAX_DIM)));
		r.ngram_dim = (uint32) d;
		return r;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown features \"%s\"", f),
			 errhint("Use 'ngrams', 'embedding' or 'both', optionally 'ngrams:<dimension>' or 'both:<dimension>'.")));
	return r;					/* not reached */
}

/* Row callback: raw n-gram counts and the embedding of the text into the row store. */
static void
AddTrainingRow(void *arg, const char *text, size_t len, int label)
{
	TrainState *s = arg;

	s->scratch.n = 0;
	if (s->ngram_dim > 0 &&
		lm_ngram_counts(text, len, s->ngram_dim, LM_NGRAM_DEFAULT_CHAR_MAX, &s->scratch) != 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (s->embed_dim > 0)
	{
		EmbedUtf8(s->model, text, len, s->embedding);
		if (lm_sparse_reserve(&s->scratch, s->scratch.n + (int) s->embed_dim) != 0)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		for (uint32 e = 0; e < s->embed_dim; e++)
		{
			s->scratch.idx[s->scratch.n] = s->ngram_dim + e;
			s->scratch.val[s->scratch.n++] = s->embedding[e];
		}
	}
	if (lm_dataset_add(s->data, &s->scratch, label) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory reading training rows (%d read)", s->data->n_rows)));
}

/* Sort order of label numbers by label text. */
static char **sort_names;

/* qsort comparator over class numbers, by their labels (byte order). */
static int
CompareLabels(const void *a, const void *b)
{
	return strcmp(sort_names[*(const int *) a], sort_names[*(const int *) b]);
}

/* Float argument argno with a default when NULL. */
static float
FloatArg(FunctionCallInfo fcinfo, int argno, float dflt)
{
	return PG_ARGISNULL(argno) ? dflt : PG_GETARG_FLOAT4(argno);
}

/* Integer argument argno with a default when NULL. */
static int32
IntArg(FunctionCallInfo fcinfo, int argno, int32 dflt)
{
	return PG_ARGISNULL(argno) ? dflt : PG_GETARG_INT32(argno);
}

/*
 * lmgen.train_classifier(name, query, features, l1, l2, epochs, learning_rate,
 * batch_size, test_fraction, seed, class_weights, replace, model) RETURNS jsonb
 */
Datum
lmgen_train_classifier(PG_FUNCTION_ARGS)
{
	lm_train_params p = lm_train_default_params();
	char	   *name;
	char	   *query;
	char	   *features;
	char	   *class_weights;
	double		test_fraction;
	bool		replace;
	Recipe		recipe;
	TrainState *s;
	MemoryContextCallback *cb;
	LabelSet	labels;
	RowCounts	counts;
	int		   *order;
	int32	   *map;
	char	  **sorted;
	int32		bad_class;
	int32		best_epoch;
	int			rc;
	char		err[256];
	instr_time	t_start,
				t_now;
	double		epoch_start = 0;
	StringInfoData json;
	StringInfoData recipe_json;
	bytea	   *weights;
	size_t		wbytes;
	lm_epoch_report rep;
	int			epochs_run = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("train_classifier needs a name and a query")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	features = PG_ARGISNULL(2) ? "ngrams" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	p.l1 = FloatArg(fcinfo, 3, p.l1);
	p.l2 = FloatArg(fcinfo, 4, p.l2);
	p.epochs = IntArg(fcinfo, 5, p.epochs);
	p.learning_rate = FloatArg(fcinfo, 6, p.learning_rate);
	p.batch_size = IntArg(fcinfo, 7, p.batch_size);
	test_fraction = FloatArg(fcinfo, 8, 0.2f);
	p.seed = PG_ARGISNULL(9) ? 0 : (uint64) PG_GETARG_INT64(9);
	class_weights = PG_ARGISNULL(10) ? "none" : text_to_cstring(PG_GETARG_TEXT_PP(10));
	replace = PG_ARGISNULL(11) ? false : PG_GETARG_BOOL(11);

	/* arguments first, then the name, before any row is read */
	recipe = ParseFeatures(features);
	if (!(p.l1 >= 0) || !(p.l2 >= 0) || isinf(p.l1) || isinf(p.l2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("l1 and l2 must be finite and >= 0")));
	if (!(p.learning_rate > 0) || isinf(p.learning_rate) || p.learning_rate * p.l2 >= 1.0f)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("learning_rate must be > 0 and learning_rate * l2 < 1")));
	if (p.epochs < 1 || p.epochs > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epochs must be from 1 to 10000, not %d", p.epochs)));
	if (p.batch_size < 1 || p.batch_size > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be from 1 to 1000000, not %d", p.batch_size)));
	if (!(test_fraction >= 0 && test_fraction < 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("test_fraction must be at least 0 and below 1")));
	if (strcmp(class_weights, "balanced") == 0)
		p.balanced = true;
	else if (strcmp(class_weights, "none") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("class_weights must be 'none' or 'balanced', not \"%s\"", class_weights)));
	if (!PG_ARGISNULL(12) && !recipe.embedding)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a model is only used by the features 'embedding' and 'both'")));
	CheckClassifierWritable(name, replace);

	INSTR_TIME_SET_CURRENT(t_start);
	s = palloc0(sizeof(TrainState));
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = FreeTrainState;
	cb->arg = s;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	TrainProgressBegin(name, p.epochs);

	/* the embedding model, opened before any row is read */
	s->ngram_dim = recipe.ngram_dim;
	if (recipe.embedding)
	{
		s->model = EmbeddingModelAcquire(PG_ARGISNULL(12) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(12)));
		s->embed_dim = (uint32) s->model->model->cfg.n_embd;
		s->embedding = malloc(sizeof(float) * s->embed_dim);
		if (s->embedding == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}

	/* read the rows */
	s->data = lm_dataset_create(s->ngram_dim + s->embed_dim);
	if (s->data == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	LabelSetInit(&labels, LM_CLASSIFIER_MAX_CLASSES);
	TrainProgressPhase("reading rows");
	ForEachLabelledRow("train_classifier", query, &labels, AddTrainingRow, s, &counts);
	if (labels.n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("train_classifier needs at least two classes; the query gave %d usable rows with %d",
						s->data->n_rows, labels.n),
				 errdetail(INT64_FORMAT " rows read, " INT64_FORMAT " skipped for a NULL text or label.",
						   counts.read, counts.skipped)));

	/* class numbers in label order */
	order = palloc(sizeof(int) * labels.n);
	for (int i = 0; i < labels.n; i++)
		order[i] = i;
	sort_names = labels.names;
	qsort(order, labels.n, sizeof(int), CompareLabels);
	map = palloc(sizeof(int32) * labels.n);
	sorted = palloc(sizeof(char *) * labels.n);
	for (int i = 0; i < labels.n; i++)
	{
		map[order[i]] = i;
		sorted[i] = labels.names[order[i]];
	}
	lm_dataset_relabel(s->data, map);

	/* split, idf, trainer */
	TrainProgressPhase("preparing features");
	rc = lm_split_rows(s->data, labels.n, test_fraction, LM_TRAIN_VALIDATION_FRACTION, p.seed, &s->split,
					   &bad_class);
	if (rc == -2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("class \"%s\" has too few rows to keep one for training after the test split",
						sorted[bad_class]),
				 errhint("Give every class at least 2 rows, or pass test_fraction => 0.")));
	if (rc != 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory splitting the rows")));
	s->c = lm_classifier_create(labels.n, recipe.ngram_dim, s->embed_dim, err, sizeof(err));
	if (s->c == NULL)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("cannot train: %s", err)));
	if (recipe.ngram_dim > 0)
		s->c->char_max = LM_NGRAM_DEFAULT_CHAR_MAX;	/* as AddTrainingRow counted them */
	if (lm_dataset_fit_tfidf(s->data, s->split.train, s->split.n_train, recipe.ngram_dim, s->c->idf) != 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory weighting the features")));
	s->trainer = lm_trainer_create(s->data, &s->split, s->c, &p, err, sizeof(err));
	if (s->trainer == NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("cannot train: %s", err)));

	/*
	 * epochs; then, when a validation slice chose the best epoch, again from
	 * zero weights on the training and validation rows for that many epochs
	 */
	TrainProgressPhase("training");
	for (int pass = 0; pass < 2; pass++)
	{
		int			of = pass == 0 ? p.epochs : best_epoch;

		do
		{
			INSTR_TIME_SET_CURRENT(t_now);
			INSTR_TIME_SUBTRACT(t_now, t_start);
			epoch_start = INSTR_TIME_GET_DOUBLE(t_now);
			rc = lm_trainer_epoch(s->trainer, QueryAbortPending, NULL, &rep);
			if (rc == LM_TRAIN_ABORTED)
			{
				CHECK_FOR_INTERRUPTS();
				ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("training was stopped")));
			}
			if (pass == 0)
				epochs_run = rep.epoch;
			INSTR_TIME_SET_CURRENT(t_now);
			INSTR_TIME_SUBTRACT(t_now, t_start);
			if (isnan(rep.val_accuracy))
				ereport(NOTICE,
						(errmsg("%sepoch %d/%d: loss %.4f, %.2f s", pass ? "refit " : "", rep.epoch, of,
								rep.loss, INSTR_TIME_GET_DOUBLE(t_now) - epoch_start)));
			else
				ereport(NOTICE,
						(errmsg("epoch %d/%d: loss %.4f, validation accuracy %.4f, log-loss %.4f%s, %.2f s",
								rep.epoch, of, rep.loss, rep.val_accuracy, rep.val_loss,
								rep.best ? " (best)" : "", INSTR_TIME_GET_DOUBLE(t_now) - epoch_start)));
			TrainProgressEpoch(rep.epoch, rep.loss, rep.val_accuracy);
			CHECK_FOR_INTERRUPTS();
		} while (rc == LM_TRAIN_MORE);
		if (pass == 0)
			best_epoch = lm_trainer_finish(s->trainer);
		else
			lm_trainer_finish(s->trainer);
		if (pass == 1 || !lm_trainer_refit(s->trainer))
			break;
		TrainProgressPhase("refitting");
	}

	/* test scores */
	TrainProgressPhase("scoring");
	s->metrics = lm_metrics_create(labels.n, labels.n);
	if (s->metrics == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	lm_classifier_score(s->c, s->data, s->split.test, s->split.n_test, s->metrics);
	lm_metrics_finish(s->metrics);
	INSTR_TIME_SET_CURRENT(t_now);
	INSTR_TIME_SUBTRACT(t_now, t_start);

	initStringInfo(&recipe_json);
	appendStringInfo(&recipe_json, "{\"features\": \"%s\", \"ngram_dim\": %u", recipe.kind, recipe.ngram_dim);
	if (recipe.ngram_dim > 0)
		appendStringInfo(&recipe_json, ", \"ngram_range\": [1, 2], \"char_ngram_range\": [%d, %u]"
						 ", \"tf\": \"sublinear\", \"idf\": \"smooth\", \"norm\": \"l2\"",
						 LM_NGRAM_CHAR_MIN, s->c->char_max);
	if (s->embed_dim > 0)
	{
		appendStringInfo(&recipe_json, ", \"embed_dim\": %u, \"model\": ", s->embed_dim);
		escape_json(&recipe_json, s->model->name);
	}
	appendStringInfoChar(&recipe_json, '}');

	initStringInfo(&json);
	appendStringInfoString(&json, "{\"classifier\": ");
	escape_json(&json, name);
	appendStringInfo(&json, ", \"recipe\": %s, \"classes\": %d, \"rows_read\": " INT64_FORMAT
					 ", \"rows_skipped\": " INT64_FORMAT ", \"rows_train\": %d, \"rows_validation\": %d"
					 ", \"rows_test\": %d, \"epochs_run\": %d, \"best_epoch\": %d, \"training_seconds\": %.3f"
					 ", \"params\": {\"l1\": %g, \"l2\": %g, \"learning_rate\": %g, \"batch_size\": %d"
					 ", \"epochs\": %d, \"test_fraction\": %g, \"seed\": " INT64_FORMAT
					 ", \"class_weights\": \"%s\"}, \"test\": ",
					 recipe_json.data, labels.n, counts.read, counts.skipped, s->split.n_train,
					 s->split.n_val, s->split.n_test, epochs_run, best_epoch, INSTR_TIME_GET_DOUBLE(t_now),
					 p.l1, p.l2, p.learning_rate, p.batch_size, p.epochs, test_fraction, (int64) p.seed,
					 p.balanced ? "balanced" : "none");
	if (s->split.n_test > 0)
		AppendMetricsJson(&json, s->metrics, sorted);
	else
		appendStringInfoString(&json, "null");
	appendStringInfoChar(&json, '}');

	/* store */
	TrainProgressPhase("storing");
	wbytes = lm_classifier_serialized_size(s->c);
	if (wbytes > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the classifier's weights take %zu bytes, more than a bytea holds", wbytes)));
	weights = palloc(VARHDRSZ + wbytes);
	SET_VARSIZE(weights, VARHDRSZ + wbytes);
	lm_classifier_serialize(s->c, (uint8 *) VARDATA(weights));
	{
		Jsonb	   *result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));

		StoreClassifier(name, replace, sorted, labels.n, recipe_json.data, weights, result);
		TrainProgressEnd();
		PG_RETURN_JSONB_P(result);
	}
}
