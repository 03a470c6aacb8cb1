/*
 * train_store.c — the table of trained classifiers (lmgen.classifier_store)
 * and this backend's cache of parsed ones.
 *
 * The table belongs to the extension and only its owner may write it: users
 * change it through train_classifier() and drop_classifier(), which check
 * that the caller owns the classifier (or is a superuser) and then write as
 * the table's owner (SetUserIdAndSecContext, SECURITY_LOCAL_USERID_CHANGE;
 * an ERROR restores the caller's identity as the transaction aborts).
 *
 * Cache: parsing a classifier (up to tens of MB of weights) once per row
 * would be ruinous, so each backend keeps the parsed classifiers in a hash by
 * name, each stamped with the xmin and ctid of the row it came from.  A
 * caller looks the row's stamp up (one indexed SELECT) and reparses only when
 * the stamp changed, i.e. when the classifier was replaced; predict() does
 * that lookup once per query and call site (fn_extra), not once per row.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "model_cache.h"
#include "sqlfuncs_common.h"
#include "train_sql.h"

#define STORE_TABLE "lmgen.classifier_store"

static HTAB *classifier_cache = NULL;

/* ERROR unless name is a valid classifier name. */
void
CheckClassifierName(const char *name)
{
	size_t		n = strlen(name);
	bool		ok = n >= 1 && n <= 63 && isalnum((unsigned char) name[0]);

	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char) name[i]) || name[i] == '_' || name[i] == '.' || name[i] == '-';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid classifier name \"%s\"", name),
				 errdetail("A name is 1 to 63 characters: letters, digits, '_', '.' and '-', starting with a letter or digit.")));
}

/* Owner of a stored classifier, or NULL when there is none (SPI connected). */
static char *
StoredOwner(const char *name, bool lock)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	int			rc;

	rc = SPI_execute_with_args(lock ? "SELECT owner::text FROM " STORE_TABLE " WHERE name = $1 FOR UPDATE"
							   : "SELECT owner::text FROM " STORE_TABLE " WHERE name = $1",
							   1, argtypes, args, NULL, !lock, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed: %s", STORE_TABLE, SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * ERROR when user `caller` may not overwrite the classifier owned by `owner`
 * (the caller is passed in: the check runs after the switch to the table's
 * owner).
 */
static void
CheckOwner(const char *name, const char *owner, bool replace, Oid caller)
{
	if (!replace)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("classifier \"%s\" already exists", name),
				 errhint("Pass replace => true to replace it, or drop it with lmgen.drop_classifier('%s').", name)));
	if (!superuser_arg(caller) && strcmp(owner, GetUserNameFromId(caller, false)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of classifier \"%s\" to replace or drop it", name),
				 errdetail("Its owner is \"%s\".", owner)));
}

/* Before training: ERROR when name exists and may not be replaced. */
void
CheckClassifierWritable(const char *name, bool replace)
{
	char	   *owner;

	CheckClassifierName(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = StoredOwner(name, false);
	if (owner != NULL)
		CheckOwner(name, owner, replace, GetUserId());
	SPI_finish();
}

/* Oid of the table's owner. */
static Oid
StoreOwnerOid(void)
{
	Oid			relid = RangeVarGetRelid(makeRangeVar("lmgen", "classifier_store", -1), NoLock, false);
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Store (or replace) a classifier as the table's owner. */
void
StoreClassifier(const char *name, bool replace, char **labels, int n_labels, const char *recipe_json,
				bytea *weights, Jsonb *metrics)
{
	Oid			save_user;
	int			save_sec;
	char	   *owner;
	char	   *me = GetUserNameFromId(GetUserId(), false);
	Datum	   *ld = palloc(sizeof(Datum) * n_labels);
	Oid			argtypes[6] = {TEXTOID, NAMEOID, TEXTARRAYOID, JSONBOID, BYTEAOID, JSONBOID};
	Datum		args[6];
	int			rc;

	for (int i = 0; i < n_labels; i++)
		ld[i] = CStringGetTextDatum(labels[i]);
	args[0] = CStringGetTextDatum(name);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(me));
	args[2] = PointerGetDatum(construct_array(ld, n_labels, TEXTOID, -1, false, TYPALIGN_INT));
	args[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(recipe_json));
	args[4] = PointerGetDatum(weights);
	args[5] = JsonbPGetDatum(metrics);

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(StoreOwnerOid(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = StoredOwner(name, true);
	if (owner != NULL)
	{
		CheckOwner(name, owner, replace, save_user);
		rc = SPI_execute_with_args("DELETE FROM " STORE_TABLE " WHERE name = $1", 1, argtypes, args, NULL,
								   false, 0);
		if (rc != SPI_OK_DELETE)
			elog(ERROR, "deleting from %s failed: %s", STORE_TABLE, SPI_result_code_string(rc));
	}
	rc = SPI_execute_with_args("INSERT INTO " STORE_TABLE " (name, owner, labels, features, weights, metrics)"
							   " VALUES ($1, $2, $3, $4, $5, $6)", 6, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "writing %s failed: %s", STORE_TABLE, SPI_result_code_string(rc));
	SPI_finish();
	SetUserIdAndSecContext(save_user, save_sec);
}

PG_FUNCTION_INFO_V1(lmgen_drop_classifier);

/* lmgen.drop_classifier(name text) RETURNS void */
Datum
lmgen_drop_classifier(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {PG_GETARG_DATUM(0)};
	Oid			save_user;
	int			save_sec;
	char	   *owner;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(StoreOwnerOid(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = StoredOwner(name, true);
	if (owner == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("classifier \"%s\" does not exist", name)));
	CheckOwner(name, owner, true, save_user);
	if (SPI_execute_with_args("DELETE FROM " STORE_TABLE " WHERE name = $1", 1, argtypes, args, NULL,
							  false, 0) != SPI_OK_DELETE)
		elog(ERROR, "deleting from %s failed", STORE_TABLE);
	SPI_finish();
	SetUserIdAndSecContext(save_user, save_sec);
	PG_RETURN_VOID();
}

/* Forget a cached classifier's parsed form. */
static void
FreeCached(CachedClassifier *e)
{
	if (e->labels && e->c)
		for (int i = 0; i < e->c->n_classes; i++)
			if (e->labels[i])
				pfree(e->labels[i]);
	if (e->labels)
		pfree(e->labels);
	e->labels = NULL;
	lm_classifier_free(e->c);
	e->c = NULL;
}

/* Features of one text: n-grams and, when the classifier has them, the model's embedding. */
void
ClassifierFeatures(const lm_classifier *c, const char *model, const char *s, size_t len, lm_sparse *x)
{
	float	   *emb = NULL;

	if (c->embed_dim > 0)
	{
		LmgenModel *m = ModelAcquire(model);

		if ((uint32) m->model->cfg.n_embd != c->embed_dim)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" gives %d-dimensional embeddings but the classifier was trained on %u",
							model, m->model->cfg.n_embd, c->embed_dim),
					 errhint("Register the model the classifier was trained with under that name again, or retrain it.")));
		emb = palloc(sizeof(float) * c->embed_dim);
		EmbedUtf8(m, s, len, emb);
	}
	if (lm_classifier_features(c, s, len, emb, x) != 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (emb)
		pfree(emb);
}

/* The stored classifier `name`, parsed once per backend. */
CachedClassifier *
ClassifierAcquire(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	CachedClassifier *e;
	bool		found;
	char	   *version;
	char		err[256];
	int			rc;

	CheckClassifierName(name);
	if (classifier_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(CachedClassifier);
		classifier_cache = hash_create("lmgen classifiers", 16, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	args[0] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("SELECT xmin::text || '/' || ctid::text FROM " STORE_TABLE " WHERE name = $1",
							   1, argtypes, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed: %s", STORE_TABLE, SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("classifier \"%s\" does not exist", name),
				 errhint("lmgen.classifiers lists the trained classifiers; lmgen.train_classifier trains one.")));
	version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	e = hash_search(classifier_cache, name, HASH_ENTER, &found);
	if (!found)
	{
		e->c = NULL;
		e->labels = NULL;
		e->version[0] = '\0';
	}
	if (e->c == NULL || strcmp(e->version, version) != 0)
	{
		bool		isnull;
		bytea	   *w;
		ArrayType  *la;
		Datum	   *ld;
		int			nl;
		lm_classifier *c;

		FreeCached(e);
		rc = SPI_execute_with_args("SELECT weights, labels, coalesce(features->>'model', '') FROM " STORE_TABLE
								   " WHERE name = $1",
								   1, argtypes, args, NULL, true, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading classifier \"%s\" failed", name);
		w = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		c = lm_classifier_parse((const uint8_t *) VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w), err, sizeof(err));
		if (c == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("classifier \"%s\" cannot be read: %s", name, err)));
		la = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		deconstruct_array(la, TEXTOID, -1, false, TYPALIGN_INT, &ld, NULL, &nl);
		if (nl != c->n_classes)
		{
			lm_classifier_free(c);
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("classifier \"%s\" has %d labels but weights for %d classes", name, nl,
							c->n_classes)));
		}
		e->labels = MemoryContextAllocZero(TopMemoryContext, sizeof(char *) * nl);
		e->c = c;
		strlcpy(e->model, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), sizeof(e->model));
		for (int i = 0; i < nl; i++)
			e->labels[i] = MemoryContextStrdup(TopMemoryContext, TextDatumGetCString(ld[i]));
		strlcpy(e->version, version, sizeof(e->version));
	}
	SPI_finish();
	return e;
}
