/*
 * model_cache.h — the models this backend has open, by registry name.
 */
#ifndef LMGEN_MODEL_CACHE_H
#define LMGEN_MODEL_CACHE_H

#include "postgres.h"

#include <sys/stat.h>

#include "datatype/timestamp.h"
#include "storage/dsm.h"

#include "chat.h"
#include "context.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

/* One open model: the file's bytes (shared memory or mapped file) and what the engine built from them. */
typedef struct LmgenModel
{
	char	   *name;			/* registry name (TopMemoryContext) */
	char	   *path;			/* canonical file path (TopMemoryContext) */
	dev_t		dev;			/* file identity: reopen when any of these change */
	ino_t		ino;
	off_t		size;
	struct timespec mtime;
	lm_gguf    *gguf;			/* validated file, over weights or its own mapping (engine, malloc) */
	dsm_segment *weights;		/* the file's bytes in shared memory, or NULL when gguf maps the file */
	lm_tokenizer *tok;			/* its tokenizer (engine, malloc) */
	lm_model   *model;			/* its weights and configuration (engine, malloc) */
	lm_chat_family chat;		/* chat format from tokenizer.chat_template, UNKNOWN if none */
	lm_chat_family chat_fallback;	/* chat format to use for instructions (template, else architecture) */
	lm_context *ctx;			/* reusable run state, created on demand (engine, malloc) */
	char	   *registered_path;	/* path in the registry row (TopMemoryContext) */
	char	   *model_dir;		/* lmgen.model_dir it was resolved in (TopMemoryContext) */
	uint64		registry_generation;	/* registry version the row was read at */
	Oid			user;			/* user it was looked up as */
	LocalTransactionId checked_lxid;	/* transaction and statement of the last */
	TimestampTz checked_at;		/* file check (resolve + stat) */
	bool		retired;		/* ModelByFile: a newer file replaced it; closed once unused */
	struct LmgenModel *next;	/* next in this backend's list */
} LmgenModel;

/*
 * The model registered under name (NULL or "" for the default model), opened
 * on first use and kept for the life of the backend; reopened when the
 * registry points elsewhere or the file changes.  ERROR when unknown.
 */
extern LmgenModel *ModelAcquire(const char *name);

/*
 * The same model's entry with its registry row and file checked as the
 * caller, but not opened (m->path is the file to open): what a backend
 * hands to the background worker.
 */
extern LmgenModel *ModelLookup(const char *name);

/*
 * The model in the file at a canonical path, opened on first use and kept,
 * keyed by file identity (device, inode; reopened when size or mtime
 * change, or retired when its weights are in shared memory: see
 * ModelsCloseRetired); name is used in messages.  For the background worker.
 */
extern LmgenModel *ModelByFile(const char *name, const char *path);

/* Called before a model's engine objects are freed, if set (must not ERROR). */
extern void (*model_close_hook) (LmgenModel *m);

/*
 * Close the models ModelByFile retired (their file was replaced on disk
 * while calls in flight still ran on their copy in shared memory) for which
 * in_use answers false.
 */
extern void ModelsCloseRetired(bool (*in_use) (LmgenModel *m));

/* Number of models opened through ModelByFile. */
extern int	ModelsOpenByFile(void);

/*
 * The model embed() uses: the one registered under name when name is given;
 * else lmgen.default_embedding_model when a model of that name is
 * registered; else the default model.
 */
extern LmgenModel *EmbeddingModelAcquire(const char *name);

/* The name EmbeddingModelAcquire would open (NULL: the default model), not opened. */
extern const char *EmbeddingModelNameFor(const char *name);

/*
 * The model name classify() uses: name when given; else
 * lmgen.default_classify_model when a model of that name is registered;
 * else NULL (the default model).
 */
extern const char *ClassifyModelNameFor(const char *name);

/* ERROR when the model's file changed on disk since it was opened. */
extern void ModelCheckUnchanged(LmgenModel *m);

#endif							/* LMGEN_MODEL_CACHE_H */
