/*
 * lmgen.h — declarations shared by the Postgres glue (the .c files in src/).
 */
#ifndef LMGEN_H
#define LMGEN_H

#include "postgres.h"

#define LMGEN_DEFAULT_MAX_TOKENS 1024
#define LMGEN_MAX_MAX_TOKENS 1000000
#define LMGEN_DEFAULT_THREADS 1
#define LMGEN_MAX_THREADS 64
#define LMGEN_DEFAULT_MAX_KV_MEMORY 1024	/* MB */
#define LMGEN_MAX_MAX_KV_MEMORY (1024 * 1024)	/* MB: 1 TB */
#define LMGEN_DEFAULT_KV_CACHE_SIZE 1024	/* MB */
#define LMGEN_DEFAULT_BATCH_ROWS 32
#define LMGEN_MAX_BATCH_ROWS 4096

/* Values of lmgen.context_overflow. */
typedef enum LmgenOverflow
{
	LMGEN_OVERFLOW_ERROR,		/* refuse prompts longer than the context */
	LMGEN_OVERFLOW_TRUNCATE		/* keep the end of the prompt */
} LmgenOverflow;

/* Values of lmgen.execution. */
typedef enum LmgenExecution
{
	LMGEN_EXECUTION_WORKER,		/* calls go to the background worker (when preloaded) */
	LMGEN_EXECUTION_LOCAL		/* calls run in the calling backend */
} LmgenExecution;

/* Values of lmgen.classify_retrieval: how classify() picks its examples. */
typedef enum LmgenClassifyRetrieval
{
	LMGEN_RETRIEVAL_AUTO,		/* by embedding when an embedding model is registered, else word overlap */
	LMGEN_RETRIEVAL_EMBEDDING,	/* by embedding; ERROR without an embedding model */
	LMGEN_RETRIEVAL_OVERLAP		/* by word overlap */
} LmgenClassifyRetrieval;

/* Values of lmgen.embedding_precision. */
typedef enum LmgenEmbeddingPrecision
{
	LMGEN_EMBEDDING_INT16,		/* an encoder's layer products in 13-bit integers (gemm_i16.h) */
	LMGEN_EMBEDDING_F32			/* in F32 */
} LmgenEmbeddingPrecision;

/* Values of lmgen.device: where the background worker runs decoder models. */
typedef enum LmgenDevice
{
	LMGEN_DEVICE_AUTO,			/* the compute device when one is found, else the CPU */
	LMGEN_DEVICE_CPU,			/* the CPU; the device backend is never loaded */
	LMGEN_DEVICE_CUDA			/* the device; without one, the CPU with a WARNING */
} LmgenDevice;

#define LMGEN_DEFAULT_GPU_MEMORY_FRACTION 0.9

/* GUCs (guc.c); each C variable is named after its parameter. */
extern char *lmgen_model_dir;	/* lmgen.model_dir */
extern char *lmgen_default_model;	/* lmgen.default_model */
extern char *lmgen_default_embedding_model; /* lmgen.default_embedding_model */
extern char *lmgen_default_classify_model;	/* lmgen.default_classify_model */
extern int	lmgen_max_tokens;	/* lmgen.max_tokens */
extern int	lmgen_threads;		/* lmgen.threads */
extern int	lmgen_context_overflow; /* lmgen.context_overflow */
extern int	lmgen_max_kv_memory;	/* lmgen.max_kv_memory, MB */
extern int	lmgen_execution;	/* lmgen.execution */
extern int	lmgen_max_requests; /* lmgen.max_requests */
extern int	lmgen_worker_threads;	/* lmgen.worker_threads (0: the machine's cores) */
extern bool lmgen_worker_share_prefixes;	/* lmgen.worker_share_prefixes */
extern bool lmgen_shared_weights;	/* lmgen.shared_weights */
extern int	lmgen_kv_cache_size;	/* lmgen.kv_cache_size, MB: the worker's KV pool per model */
extern bool lmgen_enable_batching;	/* lmgen.enable_batching */
extern int	lmgen_batch_rows;	/* lmgen.batch_rows */
extern int	lmgen_classify_retrieval;	/* lmgen.classify_retrieval */
extern double lmgen_classify_vote_weight;	/* lmgen.classify_vote_weight */

/*
 * Default of lmgen.classify_vote_weight: on 96 development rows of the
 * Debian training file (Gemma 3, 4 examples by embedding), the model alone
 * was right 0.740 of the time, the examples' majority label 0.792, and the
 * model's scores plus this weight times the examples' vote share 0.802 at
 * 3, 0.813 from 4 to 16 (0.823 at 6 alone, one row): the smallest weight
 * of the plateau.
 */
#define LMGEN_CLASSIFY_VOTE_WEIGHT_DEFAULT 4.0
extern int	lmgen_headline_candidates;	/* lmgen.headline_candidates */

/*
 * Default and upper limit of lmgen.headline_candidates, the generations a
 * headline is chosen among: 0 lets the model's shape decide
 * (SummaryCandidates: 4 for SmolLM2, 1 for Gemma 3).
 */
#define LMGEN_HEADLINE_CANDIDATES_DEFAULT 0
#define LMGEN_MAX_HEADLINE_CANDIDATES 8
extern int	lmgen_embedding_precision;	/* lmgen.embedding_precision */
extern int	lmgen_device;		/* lmgen.device */
extern double lmgen_gpu_memory_fraction;	/* lmgen.gpu_memory_fraction */
extern char *lmgen_device_library;	/* lmgen.device_library */

/* Register the GUCs (guc.c). */
extern void GucInit(void);

/* Reserve lmgen's shared memory when preloaded (shmem.c). */
extern void ShmemInit(void);

/* Register the background worker when preloaded (worker.c). */
extern void WorkerInit(void);

/* Reserve the shared training-progress array when preloaded (train_progress.c). */
extern void TrainInit(void);

/* Register the row-batching planner hook and plan node (batch_plan.c). */
extern void BatchInit(void);

/*
 * Resolve a user-given model path inside lmgen.model_dir and return the
 * canonical absolute path (palloc'd); ERROR when it leaves the directory
 * (superusers may, unless strict), or when the file does not exist.
 */
extern char *ResolveModelPath(const char *path, bool strict);

#endif							/* LMGEN_H */
