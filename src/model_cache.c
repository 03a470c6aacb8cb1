/*
 * model_cache.c — per-backend cache of open models.
 *
 * A model is found by its registry name (lmgen.model_registry, read through
 * SPI as the caller), its path resolved inside lmgen.model_dir, and the file
 * mapped with the engine's GGUF reader.  The mapping is MAP_SHARED and
 * read-only, so every backend that opens the same file shares its pages.
 * Entries live in TopMemoryContext; the engine objects they hold are
 * malloc'd by the engine and freed when an entry is replaced.  Nothing is
 * half-built on error: a new entry is linked in only when complete.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "lmgen.h"
#include "model_cache.h"
#include "chat_tokenize.h"

static LmgenModel *open_models = NULL;

/* Name of the default model, or NULL when there is none. */
static char *
DefaultModelName(void)
{
	char	   *name = NULL;
	MemoryContext caller = CurrentMemoryContext;

	if (lmgen_default_model && lmgen_default_model[0])
		return pstrdup(lmgen_default_model);
	SPI_connect();
	if (SPI_execute("SELECT name FROM lmgen.model_registry WHERE is_default", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		name = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return name;
}

/* Registered path of a model, or NULL when the name is not registered. */
static char *
RegisteredPath(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	char	   *path = NULL;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	if (SPI_execute_with_args("SELECT path FROM lmgen.model_registry WHERE name = $1",
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		path = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return path;
}

/* Free an entry and its engine objects. */
static void
FreeModel(LmgenModel *m)
{
	lm_context_free(m->ctx);
	lm_model_free(m->model);
	lm_tokenizer_free(m->tok);
	lm_gguf_close(m->gguf);
	pfree(m->name);
	pfree(m->path);
	pfree(m);
}

/* True when the entry still describes the file at path with these stats. */
static bool
EntryMatches(const LmgenModel *m, const char *path, const struct stat *st)
{
	return strcmp(m->path, path) == 0 && m->dev == st->st_dev && m->ino == st->st_ino &&
		m->size == st->st_size && m->mtime.tv_sec == st->st_mtim.tv_sec &&
		m->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Open the model file at a canonical path into a new entry; ERROR on failure. */
static LmgenModel *
OpenModel(const char *name, const char *path, const struct stat *st)
{
	char		err[512];
	lm_gguf    *g;
	lm_tokenizer *tok;
	lm_model   *model;
	bool		from_template;
	LmgenModel *m;

	g = lm_gguf_open(path, err, sizeof(err));
	if (g == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model file for model \"%s\": %s", name, err),
				 errhint("Check the file, or register another one with lmgen.load_model.")));
	tok = lm_tokenizer_load(g, err, sizeof(err));
	if (tok == NULL)
	{
		lm_gguf_close(g);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot use the tokenizer of model \"%s\": %s", name, err)));
	}
	model = lm_model_load(g, err, sizeof(err));
	if (model == NULL)
	{
		lm_tokenizer_free(tok);
		lm_gguf_close(g);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot run model \"%s\": %s", name, err)));
	}
	m = MemoryContextAllocZero(TopMemoryContext, sizeof(LmgenModel));
	m->model = model;
	m->chat_fallback = lm_chat_family_of(g, &from_template);
	m->chat = from_template ? m->chat_fallback : LM_CHAT_UNKNOWN;
	m->name = MemoryContextStrdup(TopMemoryContext, name);
	m->path = MemoryContextStrdup(TopMemoryContext, path);
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->size = st->st_size;
	m->mtime = st->st_mtim;
	m->gguf = g;
	m->tok = tok;
	return m;
}

/* The model registered under name (NULL/"" for the default), opened and cached. */
LmgenModel *
ModelAcquire(const char *name)
{
	char	   *path;
	char	   *resolved;
	struct stat st;
	LmgenModel **link;
	LmgenModel *m;

	if (name == NULL || name[0] == '\0')
	{
		name = DefaultModelName();
		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("no default model is set"),
					 errhint("Run \"make model\" and CREATE EXTENSION again, register a model with lmgen.load_model(name, path), or set lmgen.default_model.")));
	}
	path = RegisteredPath(name);
	if (path == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" is not registered", name),
				 errhint("SELECT name FROM lmgen.models lists the registered models.")));
	resolved = ResolveModelPath(path, true);
	if (stat(resolved, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file \"%s\": %m", path)));

	for (link = &open_models; *link; link = &(*link)->next)
	{
		m = *link;
		if (strcmp(m->name, name) != 0)
			continue;
		if (EntryMatches(m, resolved, &st))
			return m;
		/* the registry or the file changed: drop the old mapping */
		*link = m->next;
		FreeModel(m);
		break;
	}
	m = OpenModel(name, resolved, &st);
	m->next = open_models;
	open_models = m;
	return m;
}
