/*
 * model_cache.c — per-backend cache of open models and of the registry
 * lookups that find them.
 *
 * A model is found by its registry name (lmgen.model_registry, read through
 * SPI as the caller), its path resolved inside lmgen.model_dir, and its
 * bytes opened with the engine's GGUF reader.  When lmgen is preloaded (and
 * lmgen.shared_weights is on) the bytes are a copy in shared memory that
 * every process of the server maps (model_shared.c): a file changed on disk
 * cannot touch them.  Otherwise the file itself is mapped, MAP_SHARED and
 * read-only, so every backend that opens the same file shares its pages; a
 * file truncated or rewritten while mapped cannot crash the backend (the
 * engine's SIGBUS guard, mapguard.h) and fails the call that saw it.
 * Entries live in TopMemoryContext; the engine objects they hold are
 * malloc'd by the engine and freed when an entry is replaced.  Nothing is
 * half-built on error: a new entry is linked in only when complete.
 *
 * What is looked up how often.  A SQL function runs once per row, so the
 * lookup is layered:
 *   - registry rows (the default model's name, a name's path) are cached
 *     until the registry changes: a statement trigger on the table
 *     (lmgen._registry_changed) sends a relcache invalidation for it, seen
 *     by this backend at the next command and by others at their next
 *     transaction, and the relcache callback below bumps
 *     registry_generation, which makes every cached row stale.  A cache
 *     reset (sinval overflow) and DDL on the table do the same;
 *   - the file (path resolved in lmgen.model_dir, then stat) is checked
 *     once per statement: a file replaced between statements is reopened;
 *   - within a statement nothing is looked up again unless lmgen.model_dir,
 *     the user or the registry changed.
 *
 * Engine threads.  No engine thread may exist while control is in Postgres
 * (a backend that forks for COPY ... TO PROGRAM must be single-threaded):
 * every call that runs a forward pass goes through RuntimeBegin/RuntimeEnd
 * (runtime.c), whose release — at the end of the call or in error cleanup —
 * joins the pool; the next forward pass starts it again.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "lmgen.h"
#include "model_cache.h"
#include "model_shared.h"
#include "chat_tokenize.h"

static LmgenModel *open_models = NULL;

/* Bumped whenever lmgen.model_registry may have changed (relcache callback). */
static uint64 registry_generation = 1;

/* OID of lmgen.model_registry when last looked up, else InvalidOid. */
static Oid	registry_relid = InvalidOid;

/* The registry's default model, as last read. */
static struct
{
	uint64		generation;		/* registry_generation when read; 0 = never */
	Oid			user;			/* the user it was read as */
	char	   *name;			/* TopMemoryContext; NULL when there is none */
}			default_lookup;

/* Whether a task's model setting (lmgen.default_embedding_model, ...) names a registered model, as last read. */
typedef struct TaskModelLookup
{
	uint64		generation;		/* registry_generation when read; 0 = never */
	Oid			user;			/* the user it was read as */
	char	   *setting;		/* TopMemoryContext copy of the setting it was read for */
	bool		registered;		/* a model of that name is registered */
} TaskModelLookup;

static TaskModelLookup embedding_lookup;	/* lmgen.default_embedding_model */
static TaskModelLookup classify_lookup; /* lmgen.default_classify_model */


/* Relcache callback: any change to the registry makes cached lookups stale. */
static void
RegistryInvalidated(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == registry_relid)
	{
		registry_generation++;
		registry_relid = InvalidOid;
	}
}

/* Register the relcache callback once per backend. */
static void
EnsureInvalidationCallback(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(RegistryInvalidated, (Datum) 0);
		registered = true;
	}
}

/* Remember the registry's OID, so that its invalidations are recognised. */
static void
NoteRegistryRelid(void)
{
	Oid			nsp = get_namespace_oid("lmgen", true);

	if (registry_relid == InvalidOid && OidIsValid(nsp))
		registry_relid = get_relname_relid("model_registry", nsp);
}

/* Name of the default model, or NULL when there is none (cached per registry generation). */
static char *
DefaultModelName(void)
{
	char	   *name = NULL;

	if (lmgen_default_model && lmgen_default_model[0])
		return lmgen_default_model;
	if (default_lookup.generation == registry_generation && default_lookup.user == GetUserId())
		return default_lookup.name;

	NoteRegistryRelid();
	SPI_connect();
	if (SPI_execute("SELECT name FROM lmgen.model_registry WHERE is_default", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		name = MemoryContextStrdup(TopMemoryContext, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	if (default_lookup.name)
		pfree(default_lookup.name);
	default_lookup.name = name;
	default_lookup.generation = registry_generation;
	default_lookup.user = GetUserId();
	return name;
}

/* Registered path of a model (palloc'd), or NULL when the name is not registered. */
static char *
RegisteredPath(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	char	   *path = NULL;
	MemoryContext caller = CurrentMemoryContext;

	NoteRegistryRelid();
	SPI_connect();
	if (SPI_execute_with_args("SELECT path FROM lmgen.model_registry WHERE name = $1",
							  1, types, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		path = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return path;
}

/* Called before a model's engine objects are freed (the worker drops its scheduler over them). */
void		(*model_close_hook) (LmgenModel *m) = NULL;

/* Close an entry's engine objects (the entry stays, unopened). */
static void
CloseModel(LmgenModel *m)
{
	if (m->gguf && model_close_hook)
		model_close_hook(m);
	lm_context_free(m->ctx);
	lm_model_free(m->model);
	lm_tokenizer_free(m->tok);
	lm_gguf_close(m->gguf);
	if (m->weights)
		SharedWeightsRelease(m->weights);
	m->weights = NULL;
	m->ctx = NULL;
	m->model = NULL;
	m->tok = NULL;
	m->gguf = NULL;
}

/* True when the entry still describes the file at path with these stats. */
static bool
EntryMatches(const LmgenModel *m, const char *path, const struct stat *st)
{
	return m->path != NULL && strcmp(m->path, path) == 0 && m->dev == st->st_dev && m->ino == st->st_ino &&
		m->size == st->st_size && m->mtime.tv_sec == st->st_mtim.tv_sec &&
		m->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/*
 * Build the entry's engine objects over an open GGUF image g (taken over:
 * closed on failure); ERROR when the model cannot be used.
 */
static void
OpenModelImage(LmgenModel *m, lm_gguf *g)
{
	const char *name = m->name;
	char		err[512];
	lm_tokenizer *tok;
	lm_model   *model;
	bool		from_template;

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
	if (!lm_gguf_unchanged(g, err, sizeof(err)))
	{
		/* the vocabulary and weights were read from a file that changed */
		lm_model_free(model);
		lm_tokenizer_free(tok);
		lm_gguf_close(g);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file of model \"%s\" changed on disk while it was opened", name),
				 errdetail("%s.", err)));
	}
	m->model = model;
	m->chat_fallback = lm_chat_family_of(g, &from_template);
	m->chat = from_template ? m->chat_fallback : LM_CHAT_UNKNOWN;
	m->gguf = g;
	m->tok = tok;
}

/* ERROR: the entry's file is not a valid GGUF file (err says why). */
static void
InvalidModelFile(LmgenModel *m, const char *err)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid model file for model \"%s\": %s", m->name, err),
			 errhint("Check the file, or register another one with lmgen.load_model.")));
}

/* SharedWeightsOpenFn: build the entry (arg) over the file's bytes in shared memory. */
static void
OpenSharedImage(const void *image, uint64 size, void *arg)
{
	LmgenModel *m = (LmgenModel *) arg;
	char		err[512];
	lm_gguf    *g = lm_gguf_open_buffer(image, size, err, sizeof(err));

	if (g == NULL)
		InvalidModelFile(m, err);
	OpenModelImage(m, g);
}

/*
 * Open the entry's file (m->path) into its engine objects: from shared
 * memory when it can, else by mapping the file; ERROR on failure (the
 * entry stays unopened).
 */
static void
OpenModel(LmgenModel *m)
{
	char		err[512];
	lm_gguf    *g;

	if (SharedWeightsEnabled())
	{
		ModelFileId id = {m->dev, m->ino, m->size, m->mtime};

		m->weights = SharedWeightsOpen(m->name, m->path, &id, OpenSharedImage, m);
		if (m->weights)
			return;
	}
	g = lm_gguf_open(m->path, err, sizeof(err));
	if (g == NULL)
		InvalidModelFile(m, err);
	OpenModelImage(m, g);
}

/* Point an entry at the file at a canonical path with these stats (closing what it had open). */
static void
SetEntryFile(LmgenModel *m, const char *path, const struct stat *st)
{
	char	   *copy = MemoryContextStrdup(TopMemoryContext, path);

	CloseModel(m);
	if (m->path)
		pfree(m->path);
	m->path = copy;
	m->dev = st->st_dev;
	m->ino = st->st_ino;
	m->size = st->st_size;
	m->mtime = st->st_mtim;
}

/* True when the entry's registry row is still the current one for this user. */
static bool
RegistryRowFresh(const LmgenModel *m)
{
	return m->registry_generation == registry_generation && m->user == GetUserId();
}

/* True when the entry's file was checked earlier in the running statement. */
static bool
CheckedThisStatement(const LmgenModel *m)
{
	return m->checked_lxid == MyProc->lxid &&
		m->checked_at == GetCurrentStatementStartTimestamp() &&
		strcmp(m->model_dir, lmgen_model_dir ? lmgen_model_dir : "") == 0;
}

/* Note that the entry is current for this registry generation, user and statement. */
static void
MarkChecked(LmgenModel *m, const char *registered_path)
{
	if (m->registered_path == NULL || strcmp(m->registered_path, registered_path) != 0)
	{
		char	   *copy = MemoryContextStrdup(TopMemoryContext, registered_path);

		if (m->registered_path)
			pfree(m->registered_path);
		m->registered_path = copy;
	}
	if (m->model_dir == NULL || strcmp(m->model_dir, lmgen_model_dir ? lmgen_model_dir : "") != 0)
	{
		char	   *copy = MemoryContextStrdup(TopMemoryContext, lmgen_model_dir ? lmgen_model_dir : "");

		if (m->model_dir)
			pfree(m->model_dir);
		m->model_dir = copy;
	}
	m->registry_generation = registry_generation;
	m->user = GetUserId();
	m->checked_lxid = MyProc->lxid;
	m->checked_at = GetCurrentStatementStartTimestamp();
}

/*
 * The entry of the model registered under name (NULL/"" for the default):
 * registry row read as the caller and file resolved and checked, but not
 * necessarily opened (m->gguf NULL).  Kept for the life of the backend.
 */
LmgenModel *
ModelLookup(const char *name)
{
	char	   *path;
	char	   *resolved;
	struct stat st;
	LmgenModel *m;

	EnsureInvalidationCallback();
	if (name == NULL || name[0] == '\0')
	{
		name = DefaultModelName();
		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("no default model is set"),
					 errhint("Run \"make model\" and CREATE EXTENSION again, register a model with lmgen.load_model(name, path), or set lmgen.default_model.")));
	}
	for (m = open_models; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			break;

	/* fast path: looked up and checked earlier in this statement */
	if (m && RegistryRowFresh(m) && CheckedThisStatement(m) && !(m->gguf && lm_gguf_damaged(m->gguf)))
		return m;

	path = (m && RegistryRowFresh(m)) ? pstrdup(m->registered_path) : RegisteredPath(name);
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

	if (m == NULL)
	{
		m = MemoryContextAllocZero(TopMemoryContext, sizeof(LmgenModel));
		m->name = MemoryContextStrdup(TopMemoryContext, name);
		m->next = open_models;
		open_models = m;
	}
	if (!EntryMatches(m, resolved, &st) || (m->gguf && lm_gguf_damaged(m->gguf)))
		SetEntryFile(m, resolved, &st); /* the registry or the file changed: drop the old mapping */
	MarkChecked(m, path);
	return m;
}

/* The model registered under name (NULL/"" for the default), opened and cached. */
LmgenModel *
ModelAcquire(const char *name)
{
	LmgenModel *m = ModelLookup(name);

	if (m->gguf == NULL)
		OpenModel(m);
	return m;
}

/* The worker's models, keyed by file identity (no registry: names were resolved by the caller). */
static LmgenModel *file_models = NULL;

/*
 * The model in the file at a canonical path (resolved by the calling
 * backend), opened on first use and reopened when the file changed; name is
 * the caller's name for it, used in messages.  For the background worker,
 * which serves every database and reads no registry.
 */
LmgenModel *
ModelByFile(const char *name, const char *path)
{
	struct stat st;
	LmgenModel *m;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file of model \"%s\": %m", name)));
	for (m = file_models; m; m = m->next)
		if (!m->retired && m->dev == st.st_dev && m->ino == st.st_ino)
			break;
	if (m && m->weights && !EntryMatches(m, path, &st))
	{
		/* a copy in shared memory: calls in flight finish on it, new ones get the file as it is */
		m->retired = true;
		m = NULL;
	}
	if (m == NULL)
	{
		/* an older file at this path (replaced by a rename) serves only the calls in flight */
		for (LmgenModel *old = file_models; old; old = old->next)
			if (!old->retired && old->path && strcmp(old->path, path) == 0)
				old->retired = true;
		m = MemoryContextAllocZero(TopMemoryContext, sizeof(LmgenModel));
		m->name = MemoryContextStrdup(TopMemoryContext, name);
		m->next = file_models;
		file_models = m;
	}
	if (strcmp(m->name, name) != 0)
	{
		char	   *copy = MemoryContextStrdup(TopMemoryContext, name);

		pfree(m->name);
		m->name = copy;
	}
	if (!EntryMatches(m, path, &st) || (m->gguf && lm_gguf_damaged(m->gguf)))
		SetEntryFile(m, path, &st);
	if (m->gguf == NULL)
		OpenModel(m);
	return m;
}

/* Close the retired models that in_use says no call needs any more, and forget them. */
void
ModelsCloseRetired(bool (*in_use) (LmgenModel *m))
{
	LmgenModel **link = &file_models;

	while (*link)
	{
		LmgenModel *m = *link;

		if (!m->retired || in_use(m))
		{
			link = &m->next;
			continue;
		}
		*link = m->next;
		CloseModel(m);
		pfree(m->name);
		if (m->path)
			pfree(m->path);
		pfree(m);
	}
}

/* Number of models the worker has open. */
int
ModelsOpenByFile(void)
{
	int			n = 0;

	for (LmgenModel *m = file_models; m; m = m->next)
		n += m->gguf != NULL;
	return n;
}

/*
 * The model a task's setting names when it is set and names a registered
 * model, else NULL (cached in lookup per registry generation, user and
 * setting).
 */
static const char *
TaskModelName(const char *setting, TaskModelLookup *lookup)
{
	if (setting == NULL || setting[0] == '\0')
		return NULL;
	if (lookup->generation != registry_generation || lookup->user != GetUserId() ||
		lookup->setting == NULL || strcmp(lookup->setting, setting) != 0)
	{
		char	   *path = RegisteredPath(setting);

		if (lookup->setting)
			pfree(lookup->setting);
		lookup->setting = MemoryContextStrdup(TopMemoryContext, setting);
		lookup->registered = path != NULL;
		lookup->generation = registry_generation;
		lookup->user = GetUserId();
	}
	return lookup->registered ? setting : NULL;
}

/* The model a call of a task uses: name when given, else the task's setting when registered, else NULL (the default model). */
static const char *
TaskModelNameFor(const char *name, const char *setting, TaskModelLookup *lookup)
{
	EnsureInvalidationCallback();
	if (name != NULL && name[0] != '\0')
		return name;
	return TaskModelName(setting, lookup);
}

/* The model name embed() uses: name, else the embedding model, else NULL (the default model). */
const char *
EmbeddingModelNameFor(const char *name)
{
	return TaskModelNameFor(name, lmgen_default_embedding_model, &embedding_lookup);
}

/* The model name classify() uses: name, else lmgen.default_classify_model when registered, else NULL (the default model). */
const char *
ClassifyModelNameFor(const char *name)
{
	return TaskModelNameFor(name, lmgen_default_classify_model, &classify_lookup);
}

/* The model embed() uses, opened: see EmbeddingModelNameFor. */
LmgenModel *
EmbeddingModelAcquire(const char *name)
{
	return ModelAcquire(EmbeddingModelNameFor(name));
}

/* ERROR when the model's file changed since it was opened (reads since may be garbage). */
void
ModelCheckUnchanged(LmgenModel *m)
{
	char		err[256];

	if (!lm_gguf_unchanged(m->gguf, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file of model \"%s\" changed on disk during the call", m->name),
				 errdetail("%s.", err),
				 errhint("Replace model files with a new file and a rename, not in place; the next call opens the file again.")));
}
