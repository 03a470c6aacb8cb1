/*
 * gpu_common.h — what the device check programs share (test/gpu): loading
 * lmgen_cuda.so through lm_device_load, opening the first GPU, model paths,
 * a clock, and sequences on the device built from kv_alloc'ed blocks with
 * lm_device_batch written by hand (no lm_context in device mode needed).
 */
#ifndef LM_GPU_COMMON_H
#define LM_GPU_COMMON_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "context.h"
#include "device.h"
#include "kvcache.h"
#include "lmgen_cuda.h"

/* Exit status of a program that found no GPU (run.sh reports it as "did not run"). */
#define GPU_EXIT_NO_DEVICE 77

/* Seconds on a monotonic clock. */
static inline double
gpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Path of the backend: $LMGEN_CUDA_SO or ./lmgen_cuda.so. */
static inline const char *
gpu_backend_path(void)
{
	const char *p = getenv("LMGEN_CUDA_SO");

	return p && *p ? p : "./lmgen_cuda.so";
}

/* Path of file name in the installed model directory ($LMGEN_MODEL_DIR or Debian's). */
static inline void
gpu_model_path(char *out, size_t len, const char *name)
{
	const char *d = getenv("LMGEN_MODEL_DIR");

	snprintf(out, len, "%s/%s", d && *d ? d : "/usr/share/postgresql/15/lmgen/models", name);
}

/* True when a file exists. */
static inline bool
gpu_exists(const char *path)
{
	FILE	   *f = fopen(path, "rb");

	if (f)
		fclose(f);
	return f != NULL;
}

/*
 * Path of file name in the shared models: $LMGEN_SHARED/models when set,
 * else shared/models inside the checkout when it holds the file (the GPU
 * machine gets only the checkout: run.sh's instructions copy the
 * stories260K files there), else ../shared/models.
 */
static inline void
gpu_shared_path(char *out, size_t len, const char *name)
{
	const char *d = getenv("LMGEN_SHARED");

	if (d && *d)
	{
		snprintf(out, len, "%s/models/%s", d, name);
		return;
	}
	snprintf(out, len, "shared/models/%s", name);
	if (!gpu_exists(out))
		snprintf(out, len, "../shared/models/%s", name);
}

/* Where a model of the device programs was found. */
typedef enum gpu_model_kind
{
	GPU_MODEL_ABSENT,			/* neither the real file nor a shaped one */
	GPU_MODEL_REAL,				/* the shipped file */
	GPU_MODEL_SHAPED			/* test/gpu/shaped_model.py's stand-in: real shapes, random weights */
} gpu_model_kind;

/*
 * Path of a shipped model: real_name in the model directory, else its
 * shaped stand-in shaped_name in $LMGEN_SHAPED_DIR (default
 * test/gpu/models, where run.sh writes them); prints which one is used.
 */
static inline gpu_model_kind
gpu_find_model(char *out, size_t len, const char *real_name, const char *shaped_name)
{
	const char *d = getenv("LMGEN_SHAPED_DIR");

	gpu_model_path(out, len, real_name);
	if (gpu_exists(out))
	{
		printf("model source: %s is the real file\n", out);
		return GPU_MODEL_REAL;
	}
	snprintf(out, len, "%s/%s", d && *d ? d : "test/gpu/models", shaped_name);
	if (gpu_exists(out))
	{
		printf("model source: %s is SHAPED (real shapes and types, random weights; %s is absent)\n", out,
			   real_name);
		return GPU_MODEL_SHAPED;
	}
	printf("model source: neither %s nor %s exists: skipped\n", real_name, out);
	return GPU_MODEL_ABSENT;
}

/* Shaped stand-ins of the shipped models (file names written by run.sh). */
#define GPU_SHAPED_SMOLLM2 "shaped-smollm2-135m-q4_1.gguf"
#define GPU_SHAPED_GEMMA3 "shaped-gemma-3-270m-q4_k_m.gguf"

/* Load the backend and open GPU 0; exits GPU_EXIT_NO_DEVICE when there is none, 1 on errors. */
static inline lm_device *
gpu_open(const lm_device_ops **ops_out, const lmc_debug_ops **dbg_out)
{
	char		err[512];
	const lm_device_ops *ops = lm_device_load(gpu_backend_path(), err, sizeof(err));
	lm_device  *dev;
	lm_device_info info;
	int			n;

	if (!ops)
	{
		printf("cannot load the CUDA backend: %s\n", err);
		exit(1);
	}
	if (dbg_out)
	{
		void	   *h = dlopen(gpu_backend_path(), RTLD_NOW | RTLD_LOCAL);

		*dbg_out = h ? (const lmc_debug_ops *) dlsym(h, LMC_DEBUG_SYMBOL) : NULL;
		if (!*dbg_out)
		{
			printf("the CUDA backend has no %s\n", LMC_DEBUG_SYMBOL);
			exit(1);
		}
	}
	n = ops->count(err, sizeof(err));
	if (n <= 0)
	{
		printf("no CUDA device: %s\n", n < 0 ? err : "cudaGetDeviceCount found none");
		exit(GPU_EXIT_NO_DEVICE);
	}
	dev = ops->open(0, err, sizeof(err));
	if (!dev)
	{
		printf("cannot open CUDA device 0: %s\n", err);
		exit(1);
	}
	if (!ops->info(dev, &info, err, sizeof(err)))
	{
		printf("device info failed: %s\n", err);
		exit(1);
	}
	printf("device: %s (cc %d.%d), %zu MB total, %zu MB free\n", info.name, info.cc_major, info.cc_minor,
		   info.mem_total >> 20, info.mem_free >> 20);
	*ops_out = ops;
	return dev;
}

/* Sequences on a device model: each row's blocks, taken from the pool as positions need them. */
typedef struct gpu_seqs
{
	const lm_device_ops *ops;	/* backend */
	lm_device_model *dm;		/* model */
	int			n_rows;			/* sequences */
	int			max_blocks;		/* table entries per row */
	uint64_t   *table;			/* (n_rows, max_blocks) */
} gpu_seqs;

/* Make n_rows sequences of up to n_pos positions each; false when the pool is too small. */
static inline bool
gpu_seqs_init(gpu_seqs *s, const lm_device_ops *ops, lm_device_model *dm, int n_rows, int n_pos)
{
	s->ops = ops;
	s->dm = dm;
	s->n_rows = n_rows;
	s->max_blocks = (n_pos + LM_KV_BLOCK - 1) / LM_KV_BLOCK;
	s->table = calloc((size_t) n_rows * s->max_blocks, sizeof(uint64_t));
	if (!s->table)
		return false;
	for (size_t i = 0; i < (size_t) n_rows * s->max_blocks; i++)
		if ((s->table[i] = ops->kv_alloc(dm)) == 0)
			return false;
	return true;
}

/* Give every block back. */
static inline void
gpu_seqs_free(gpu_seqs *s)
{
	for (size_t i = 0; s->table && i < (size_t) s->n_rows * s->max_blocks; i++)
		if (s->table[i])
			s->ops->kv_free(s->dm, s->table[i]);
	free(s->table);
	s->table = NULL;
}

/* A device batch being built: up to cap tokens. */
typedef struct gpu_batch
{
	int			cap;			/* capacity */
	int32_t    *token,
			   *pos,
			   *row,
			   *out_row,
			   *logit_row;
	int8_t	   *out;
	lm_device_batch b;			/* the batch (arrays above; outputs set by the caller) */
	int			n_out;			/* rows of hidden in use */
	int			n_lg;			/* rows of logits in use */
	const lm_device_ops *host_ops;	/* the backend whose host_alloc gave the logits rows, or NULL (malloc) */
} gpu_batch;

/* Allocate a batch of up to cap tokens with room for their outputs (n_embd, n_vocab). */
static inline bool
gpu_batch_init(gpu_batch *g, int cap, int n_embd, int n_vocab)
{
	memset(g, 0, sizeof(*g));
	g->cap = cap;
	g->token = malloc(sizeof(int32_t) * cap);
	g->pos = malloc(sizeof(int32_t) * cap);
	g->row = malloc(sizeof(int32_t) * cap);
	g->out_row = malloc(sizeof(int32_t) * cap);
	g->logit_row = malloc(sizeof(int32_t) * cap);
	g->out = malloc(cap);
	g->b.hidden = malloc(sizeof(float) * (size_t) cap * n_embd);
	g->b.argmax = malloc(sizeof(int32_t) * cap);
	return g->token && g->pos && g->row && g->out_row && g->logit_row && g->out && g->b.hidden && g->b.argmax;
}

/* Free the logits rows (the backend's host memory, or malloc's). */
static inline void
gpu_batch_free_logits(gpu_batch *g)
{
	if (g->host_ops)
		g->host_ops->host_free(g->b.logits);
	else
		free(g->b.logits);
	g->b.logits = NULL;
	g->host_ops = NULL;
}

/* Make room for logits rows (n_vocab floats each) of up to rows tokens: the backend's page-locked memory, as a context takes it, else malloc. */
static inline bool
gpu_batch_logits(gpu_batch *g, const lm_device_ops *ops, int rows, int n_vocab)
{
	size_t		bytes = sizeof(float) * (size_t) rows * n_vocab;

	gpu_batch_free_logits(g);
	if ((g->b.logits = ops->host_alloc(bytes)) != NULL)
		g->host_ops = ops;
	else
		g->b.logits = malloc(bytes);
	return g->b.logits != NULL;
}

/* Free a batch. */
static inline void
gpu_batch_free(gpu_batch *g)
{
	free(g->token);
	free(g->pos);
	free(g->row);
	free(g->out_row);
	free(g->logit_row);
	free(g->out);
	free(g->b.hidden);
	gpu_batch_free_logits(g);
	free(g->b.argmax);
	memset(g, 0, sizeof(*g));
}

/* Empty a batch. */
static inline void
gpu_batch_clear(gpu_batch *g)
{
	g->b.n_tokens = 0;
	g->n_out = 0;
	g->n_lg = 0;
}

/* Append a token of row r at pos with output kind out. */
static inline void
gpu_batch_add(gpu_batch *g, int32_t token, int32_t pos, int32_t r, lm_out out)
{
	int			i = g->b.n_tokens++;

	g->token[i] = token;
	g->pos[i] = pos;
	g->row[i] = r;
	g->out[i] = (int8_t) out;
	g->out_row[i] = out != LM_OUT_NONE ? g->n_out++ : -1;
	g->logit_row[i] = out == LM_OUT_LOGITS ? g->n_lg++ : -1;
}

/* Run the batch over the sequences; 0 or -1 (message printed). */
static inline int
gpu_batch_run(gpu_batch *g, gpu_seqs *s)
{
	char		err[512];

	g->b.token = g->token;
	g->b.pos = g->pos;
	g->b.seq_row = g->row;
	g->b.out = g->out;
	g->b.out_row = g->out_row;
	g->b.logit_row = g->logit_row;
	g->b.n_rows = s->n_rows;
	g->b.max_blocks = s->max_blocks;
	g->b.block_table = s->table;
	if (s->ops->forward(s->dm, &g->b, err, sizeof(err)) != 0)
	{
		printf("device forward failed: %s\n", err);
		return -1;
	}
	return 0;
}

#endif							/* LM_GPU_COMMON_H */
