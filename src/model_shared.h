/*
 * model_shared.h — model weights in shared memory: each model file is read
 * and validated once into a DSM segment that the background worker and
 * every backend map (with shared_preload_libraries = 'lmgen' and
 * lmgen.shared_weights on).  The protocol is described at the top of
 * model_shared.c.
 */
#ifndef LMGEN_MODEL_SHARED_H
#define LMGEN_MODEL_SHARED_H

#include "postgres.h"

#include <sys/stat.h>

#include "datatype/timestamp.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/lwlock.h"

#define LMGEN_SHARED_WEIGHTS_MODELS 16	/* model files in the registry at once */
#define LMGEN_SHARED_WEIGHTS_DETAIL 256 /* why a model could not be placed in shared memory */

/* A model file's identity: a file that changes any of these is another copy. */
typedef struct ModelFileId
{
	dev_t		dev;			/* device */
	ino_t		ino;			/* inode */
	off_t		size;			/* bytes */
	struct timespec mtime;		/* modification time */
} ModelFileId;

/* State of a registry entry (see the protocol in model_shared.c). */
typedef enum SharedWeightsState
{
	SHARED_WEIGHTS_EMPTY = 0,	/* unused */
	SHARED_WEIGHTS_LOADING,		/* loader_pid reads and validates the file into a new segment */
	SHARED_WEIGHTS_READY,		/* the segment handle holds the whole file, validated, pinned */
	SHARED_WEIGHTS_FILE			/* no segment could be made: everyone maps the file (detail says why) */
} SharedWeightsState;

/* One model file in the registry. */
typedef struct SharedWeightsEntry
{
	SharedWeightsState state;	/* lock */
	ModelFileId id;				/* the file's identity when it was read; lock */
	char		path[MAXPGPATH];	/* canonical path of the file; lock */
	char		model[NAMEDATALEN]; /* model name the loader used (for lmgen.shared_weights); lock */
	dsm_handle	handle;			/* the segment (state READY); lock */
	int			loader_pid;		/* process loading it (state LOADING); lock */
	int			processes;		/* processes that map the segment now; lock */
	TimestampTz loaded_at;		/* when it became READY (or FILE); lock */
	char		detail[LMGEN_SHARED_WEIGHTS_DETAIL];	/* why state FILE; lock */
} SharedWeightsEntry;

/* The registry, in lmgen's shared memory. */
typedef struct SharedWeights
{
	LWLock	   *lock;			/* protects every entry field (never held while waiting or reading) */
	ConditionVariable changed;	/* broadcast when an entry leaves state LOADING */
	SharedWeightsEntry entries[LMGEN_SHARED_WEIGHTS_MODELS];
} SharedWeights;

/* The registry, or NULL when lmgen was not preloaded. */
extern SharedWeights *shared_weights;

/* Bytes of the registry in shared memory. */
extern Size SharedWeightsShmemSize(void);

/* Ask for the registry's lock (shmem_request_hook). */
extern void SharedWeightsRequestLock(void);

/* Create or attach the registry (shmem_startup_hook, AddinShmemInitLock held). */
extern void SharedWeightsShmemInit(void);

/* True when models should be opened from shared memory (preloaded and lmgen.shared_weights on). */
extern bool SharedWeightsEnabled(void);

/*
 * Builds a caller's engine objects over a model's bytes (image, size); ERROR
 * when they are not a usable model, after freeing what it made.
 */
typedef void (*SharedWeightsOpenFn) (const void *image, uint64 size, void *arg);

/*
 * Open the model file at path (canonical; identity id, from stat) from
 * shared memory: attach the segment that holds it, or read and validate it
 * into a new one, and run open_fn over its bytes.  Returns the segment, mapped
 * until the caller releases it (SharedWeightsRelease), or NULL when the file must be
 * mapped instead (no segment could be made: logged once per file).  ERROR
 * when the file cannot be read, changed while it was read, or open_fn fails.
 */
extern dsm_segment *SharedWeightsOpen(const char *name, const char *path, const ModelFileId *id,
									  SharedWeightsOpenFn open_fn, void *arg);

/* The caller's model opened over seg is closed: the segment is unmapped when no other model uses it. */
extern void SharedWeightsRelease(dsm_segment *seg);

#endif							/* LMGEN_MODEL_SHARED_H */
