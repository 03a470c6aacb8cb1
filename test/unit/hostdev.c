/*
 * hostdev.c — a compute device in host memory, for testing the device seam
 * (device.h) without a GPU: built as test/unit/lmgen_hostdev.so, it exports
 * the same table lmgen_cuda.so does, and the engine, the worker and
 * lmgen-cli load it exactly as they would load the CUDA backend.
 *
 * What it does.  "Device memory" is host memory: upload borrows the host
 * model's weights (the model must outlive the device model: true of every
 * caller, which unloads before it frees the model), and makes a CPU context
 * (lm_context of the engine linked into this object) for the scratch of
 * n_batch tokens; the KV pool is one aligned array of whole blocks with a
 * free stack, and kv_alloc hands out addresses inside it.  forward() checks
 * every block address it is given against the pool, builds a cache view
 * (an lm_kv whose block pointers are the batch's block-table entries, one
 * table per row), points the context's outputs at the batch's buffers and
 * runs the engine's own steps (lm_ctx_run_steps), then takes the argmax of
 * each logits row.  With the host's value order (lm_device_batch.prefill)
 * its results are bit-identical to the CPU context's: the same kernels run
 * on the same floats, and a token's result depends only on its sequence's
 * cache, not on where the blocks sit.
 *
 * The engine is linked in statically and only the ops table and the control
 * function are exported (hostdev.map), so this object's engine never mixes
 * with the host's; both read LMGEN_ISA and the CPU the same way.
 *
 * Failures on request, for the error paths:
 *   LMGEN_HOSTDEV_PROBE=none|error|crash|hang   count() reports no device,
 *       fails, crashes (SIGSEGV) or never returns (the worker's probe child);
 *   LMGEN_HOSTDEV_MEMORY_MB=N   device memory (default 512);
 *   LMGEN_HOSTDEV_CONTROL=FILE  at each forward, if FILE exists it is read
 *       and removed: "fail" fails that forward, "poison" fails it and makes
 *       the device unhealthy (every later forward fails too);
 *   lmgen_hostdev_fail(nth, poison)   the same from a test program: the
 *       nth forward from now fails;
 *   LMGEN_HOSTDEV_NO_HOST_MEMORY=1   host_alloc gives nothing (the host
 *       falls back to malloc); lmgen_hostdev_host_blocks() counts the
 *       host_alloc blocks not yet freed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context_impl.h"
#include "device.h"
#include "sampler.h"

#define HD_DEFAULT_MB 512

/* The device. */
struct lm_device
{
	int			ordinal;		/* device number */
	size_t		mem_total;		/* bytes of "device memory" */
	size_t		mem_used;		/* bytes of KV pools handed out */
	bool		poisoned;		/* a simulated fault: unhealthy */
	int			fail_in;		/* forwards until a simulated failure (0 = none) */
	bool		fail_poison;	/* that failure poisons the device */
	long		forwards;		/* forward calls so far */
};

/* A model on the device: borrowed weights, the scratch context and the KV pool. */
struct lm_device_model
{
	lm_device  *dev;			/* owner */
	const lm_model *m;			/* the host's model (borrowed) */
	lm_context *ctx;			/* CPU scratch for n_batch tokens over n_seq rows */
	int			n_batch;		/* most tokens per call */
	int			n_seq;			/* most rows per call */
	int			n_ctx;			/* most positions per row */
	size_t		block_bytes;	/* bytes of one block */
	int64_t		n_blocks;		/* blocks in the pool */
	char	   *pool;			/* (n_blocks * block_bytes) block storage */
	int64_t    *free_stack;		/* (n_blocks) free block indices */
	int64_t		n_free;			/* entries in free_stack */
	lm_batch   *batch;			/* (n_batch) the call as an engine batch */
	float	  **vblock;			/* (n_seq * blocks of n_ctx) view: block pointers */
	int32_t    *vids;			/* (n_seq * blocks of n_ctx) view: identity block ids */
	int32_t   **vtable;			/* (n_seq) view: each row's table */
	int32_t    *vlen;			/* (n_seq) view: lengths */
};

/* The control set by lmgen_hostdev_fail before a device is open (applied at open). */
static int	pending_fail_in = 0;
static bool pending_fail_poison = false;
static lm_device *last_open = NULL;

/* Make the nth forward from now fail (poison: and the device unhealthy); for test programs. */
__attribute__((visibility("default"))) void lmgen_hostdev_fail(int nth, bool poison);

/* Make the nth forward from now fail, and poison the device when asked. */
void
lmgen_hostdev_fail(int nth, bool poison)
{
	if (last_open)
	{
		last_open->fail_in = nth;
		last_open->fail_poison = poison;
	}
	pending_fail_in = nth;
	pending_fail_poison = poison;
}

/* Devices: one, or what LMGEN_HOSTDEV_PROBE asks for. */
static int
hd_count(char *err, size_t errlen)
{
	const char *p = getenv("LMGEN_HOSTDEV_PROBE");

	if (p && strcmp(p, "none") == 0)
		return 0;
	if (p && strcmp(p, "error") == 0)
	{
		snprintf(err, errlen, "host test device: probe failure requested");
		return -1;
	}
	if (p && strcmp(p, "crash") == 0)
		raise(SIGSEGV);
	if (p && strcmp(p, "hang") == 0)
		for (;;)
			pause();
	return 1;
}

/* Open device 0. */
static lm_device *
hd_open(int ordinal, char *err, size_t errlen)
{
	lm_device  *dev;
	const char *mb = getenv("LMGEN_HOSTDEV_MEMORY_MB");

	if (ordinal != 0)
	{
		snprintf(err, errlen, "host test device: no device %d", ordinal);
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev)
	{
		snprintf(err, errlen, "host test device: out of memory");
		return NULL;
	}
	dev->mem_total = (size_t) (mb && atol(mb) > 0 ? atol(mb) : HD_DEFAULT_MB) << 20;
	dev->fail_in = pending_fail_in;
	dev->fail_poison = pending_fail_poison;
	last_open = dev;
	return dev;
}

/* Close the device. */
static void
hd_close(lm_device *dev)
{
	if (dev == last_open)
		last_open = NULL;
	free(dev);
}

/* Name and memory. */
static bool
hd_info(lm_device *dev, lm_device_info *info, char *err, size_t errlen)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "lmgen host test device");
	info->ordinal = dev->ordinal;
	info->mem_total = dev->mem_total;
	info->mem_used_by_us = dev->mem_used;
	info->mem_free = dev->mem_total - dev->mem_used;
	return true;
}

/* Healthy until a simulated poisoning fault. */
static bool
hd_healthy(lm_device *dev)
{
	return !dev->poisoned;
}

/* Free a device model. */
static void
hd_unload(lm_device_model *dm)
{
	if (!dm)
		return;
	dm->dev->mem_used -= (size_t) dm->n_blocks * dm->block_bytes;
	lm_context_free(dm->ctx);
	lm_batch_free(dm->batch);
	free(dm->pool);
	free(dm->free_stack);
	free(dm->vblock);
	free(dm->vids);
	free(dm->vtable);
	free(dm->vlen);
	free(dm);
}

/* "Upload" a model: borrow its weights, make scratch and the KV pool. */
static lm_device_model *
hd_upload(lm_device *dev, const lm_model *m, double kv_fraction, size_t kv_bytes_max, int n_batch, int n_seq,
		  int n_ctx, char *err, size_t errlen)
{
	lm_device_model *dm;
	lm_context_params p = lm_context_default_params();
	const char *threads = getenv("LMGEN_HOSTDEV_THREADS");
	size_t		kv_bytes,
				view;

	if (m->cfg.arch_id != LM_ARCH_LLAMA && m->cfg.arch_id != LM_ARCH_GEMMA3)
	{
		snprintf(err, errlen, "host test device: architecture %s is not supported", m->cfg.arch);
		return NULL;
	}
	if (kv_fraction <= 0.0 || kv_fraction > 1.0 || n_batch < 1 || n_seq < 1 || n_ctx < 1)
	{
		snprintf(err, errlen, "host test device: bad upload sizes");
		return NULL;
	}
	dm = calloc(1, sizeof(*dm));
	if (!dm)
	{
		snprintf(err, errlen, "host test device: out of memory");
		return NULL;
	}
	dm->dev = dev;
	dm->m = m;
	dm->n_batch = n_batch;
	dm->n_seq = n_seq;
	dm->n_ctx = n_ctx;
	p.n_ctx = n_ctx;
	p.n_seq_max = n_seq;
	p.n_batch = n_batch;
	p.n_threads = threads ? atoi(threads) : 1;
	dm->ctx = lm_context_create(m, &p, err, errlen);
	if (!dm->ctx)
	{
		free(dm);
		return NULL;
	}
	dm->block_bytes = lm_kv_block_bytes(m);
	kv_bytes = (size_t) (kv_fraction * (double) (dev->mem_total - dev->mem_used));
	if (kv_bytes_max > 0 && kv_bytes > kv_bytes_max)
		kv_bytes = kv_bytes_max;
	dm->n_blocks = (int64_t) (kv_bytes / dm->block_bytes);
	view = (size_t) n_seq * ((n_ctx + LM_KV_BLOCK - 1) / LM_KV_BLOCK);
	dm->pool = dm->n_blocks > 0 ? aligned_alloc(64, (size_t) dm->n_blocks * dm->block_bytes) : NULL;
	dm->free_stack = malloc(sizeof(int64_t) * (dm->n_blocks + 1));
	dm->batch = lm_batch_create(n_batch);
	dm->vblock = malloc(sizeof(float *) * view);
	dm->vids = malloc(sizeof(int32_t) * view);
	dm->vtable = malloc(sizeof(int32_t *) * n_seq);
	dm->vlen = calloc(n_seq, sizeof(int32_t));
	if (dm->n_blocks == 0 || !dm->pool || !dm->free_stack || !dm->batch || !dm->vblock || !dm->vids ||
		!dm->vtable || !dm->vlen)
	{
		snprintf(err, errlen, "host test device: out of device memory for a KV pool of %zu bytes", kv_bytes);
		dm->n_blocks = 0;
		hd_unload(dm);
		return NULL;
	}
	for (size_t i = 0; i < view; i++)
		dm->vids[i] = (int32_t) i;
	/* lowest addresses first */
	for (int64_t i = 0; i < dm->n_blocks; i++)
		dm->free_stack[i] = dm->n_blocks - 1 - i;
	dm->n_free = dm->n_blocks;
	dev->mem_used += (size_t) dm->n_blocks * dm->block_bytes;
	return dm;
}

/* Blocks in the pool. */
static int64_t
hd_kv_blocks(const lm_device_model *dm)
{
	return dm->n_blocks;
}

/* Index of a block address in the pool, or -1 when it is not one. */
static int64_t
block_index(const lm_device_model *dm, uint64_t addr)
{
	uintptr_t	base = (uintptr_t) dm->pool;

	if (addr < base || addr >= base + (uintptr_t) dm->n_blocks * dm->block_bytes ||
		(addr - base) % dm->block_bytes != 0)
		return -1;
	return (int64_t) ((addr - base) / dm->block_bytes);
}

/* Take a block; 0 when the pool is exhausted. */
static uint64_t
hd_kv_alloc(lm_device_model *dm)
{
	if (dm->n_free == 0)
		return 0;
	return (uint64_t) (uintptr_t) (dm->pool + (size_t) dm->free_stack[--dm->n_free] * dm->block_bytes);
}

/* Give a block back (addresses outside the pool are ignored; a double free would show as a pool overflow). */
static void
hd_kv_free(lm_device_model *dm, uint64_t block)
{
	int64_t		i = block_index(dm, block);

	if (i >= 0 && dm->n_free < dm->n_blocks)
		dm->free_stack[dm->n_free++] = i;
}

/* Copy a block. */
static bool
hd_kv_copy(lm_device_model *dm, uint64_t dst, uint64_t src, char *err, size_t errlen)
{
	if (block_index(dm, dst) < 0 || block_index(dm, src) < 0)
	{
		snprintf(err, errlen, "host test device: copy between addresses outside the KV pool");
		return false;
	}
	memcpy((void *) (uintptr_t) dst, (const void *) (uintptr_t) src, dm->block_bytes);
	return true;
}

/* The simulated failures: the control file, then lmgen_hostdev_fail's count; true when this forward fails. */
static bool
simulated_failure(lm_device *dev, char *err, size_t errlen)
{
	const char *path = getenv("LMGEN_HOSTDEV_CONTROL");
	bool		fail = false,
				poison = false;

	if (path && access(path, F_OK) == 0)
	{
		FILE	   *f = fopen(path, "r");
		char		word[32] = "";

		if (f)
		{
			if (fscanf(f, "%31s", word) != 1)
				word[0] = '\0';
			fclose(f);
		}
		unlink(path);
		fail = true;
		poison = strcmp(word, "poison") == 0;
	}
	if (dev->fail_in > 0 && --dev->fail_in == 0)
	{
		fail = true;
		poison = dev->fail_poison;
		pending_fail_in = 0;
	}
	if (fail)
	{
		dev->poisoned |= poison;
		snprintf(err, errlen, "host test device: simulated %s in forward call %ld",
				 poison ? "fault (device poisoned)" : "failure", dev->forwards);
	}
	return fail;
}

/* One forward pass over the batch's blocks, by the CPU engine. */
static int
hd_forward(lm_device_model *dm, const lm_device_batch *db, char *err, size_t errlen)
{
	lm_context *ctx = dm->ctx;
	lm_batch   *b = dm->batch;
	lm_kv		view = *ctx->kv;
	lm_kv	   *saved_kv = ctx->kv;
	int32_t    *saved_out = ctx->out_idx,
			   *saved_logit = ctx->logit_idx;
	float	   *saved_hidden = ctx->hidden,
			   *saved_logits = ctx->logits;
	int			saved_n_out = ctx->n_out,
				rc;
	int32_t		vocab = dm->m->cfg.n_vocab;
	int			max_view = (dm->n_ctx + LM_KV_BLOCK - 1) / LM_KV_BLOCK;

	dm->dev->forwards++;
	if (dm->dev->poisoned)
	{
		snprintf(err, errlen, "host test device: the device is poisoned by an earlier fault");
		return -1;
	}
	if (simulated_failure(dm->dev, err, errlen))
		return -1;
	if (db->n_tokens < 1 || db->n_tokens > dm->n_batch || db->n_rows < 1 || db->n_rows > dm->n_seq ||
		db->max_blocks < 1 || db->max_blocks > max_view)
	{
		snprintf(err, errlen, "host test device: batch of %d tokens, %d rows, %d blocks is outside %d, %d, %d",
				 db->n_tokens, db->n_rows, db->max_blocks, dm->n_batch, dm->n_seq, max_view);
		return -1;
	}

	/* the engine batch and the cache view: row r's block j is view block r * max_blocks + j */
	for (int i = 0; i < db->n_tokens; i++)
	{
		int32_t		r = db->seq_row[i],
					p = db->pos[i];

		if (r < 0 || r >= db->n_rows || p < 0 || p >= dm->n_ctx || p / LM_KV_BLOCK >= db->max_blocks ||
			db->token[i] < 0 || db->token[i] >= vocab)
		{
			snprintf(err, errlen, "host test device: token %d (row %d, position %d) is out of range", i, r, p);
			return -1;
		}
		for (int j = 0; j <= p / LM_KV_BLOCK; j++)
			if (block_index(dm, db->block_table[(size_t) r * db->max_blocks + j]) < 0)
			{
				snprintf(err, errlen, "host test device: row %d block %d is not a block of the KV pool", r, j);
				return -1;
			}
		b->token[i] = db->token[i];
		b->pos[i] = p;
		b->seq_id[i] = r;
		b->out[i] = db->out[i];
		b->prefill[i] = db->prefill ? db->prefill[i] : LM_PREFILL_AUTO;
	}
	b->n_tokens = db->n_tokens;
	for (size_t k = 0; k < (size_t) db->n_rows * db->max_blocks; k++)
		dm->vblock[k] = (float *) (uintptr_t) db->block_table[k];
	for (int r = 0; r < db->n_rows; r++)
	{
		dm->vtable[r] = dm->vids + (size_t) r * db->max_blocks;
		dm->vlen[r] = 0;
	}
	view.block = dm->vblock;
	view.table = dm->vtable;
	view.len = dm->vlen;
	view.n_seq_max = db->n_rows;

	/* the outputs go straight to the caller's buffers */
	ctx->kv = &view;
	ctx->out_idx = (int32_t *) db->out_row;
	ctx->logit_idx = (int32_t *) db->logit_row;
	ctx->hidden = db->hidden;
	ctx->logits = db->logits;
	rc = lm_ctx_run_steps(ctx, b);
	ctx->kv = saved_kv;
	ctx->out_idx = saved_out;
	ctx->logit_idx = saved_logit;
	ctx->hidden = saved_hidden;
	ctx->logits = saved_logits;
	ctx->n_out = saved_n_out;
	if (rc != 0)
	{
		snprintf(err, errlen, "host test device: forward pass stopped");
		return -1;
	}
	for (int i = 0; i < db->n_tokens; i++)
		if (db->out[i] == LM_OUT_LOGITS)
			db->argmax[db->logit_row[i]] = lm_argmax(db->logits + (size_t) db->logit_row[i] * vocab, vocab);
	return 0;
}

/* host_alloc blocks not yet given back (lmgen_hostdev_host_blocks). */
static int	host_blocks = 0;

/* Outstanding host_alloc blocks; for test programs. */
__attribute__((visibility("default"))) int lmgen_hostdev_host_blocks(void);

/* Outstanding host_alloc blocks. */
int
lmgen_hostdev_host_blocks(void)
{
	return __atomic_load_n(&host_blocks, __ATOMIC_SEQ_CST);
}

/* Host memory for outputs: plain malloc here (counted), none under LMGEN_HOSTDEV_NO_HOST_MEMORY. */
static void *
hd_host_alloc(size_t bytes)
{
	const char *no = getenv("LMGEN_HOSTDEV_NO_HOST_MEMORY");
	void	   *p;

	if (no && *no && strcmp(no, "0") != 0)
		return NULL;
	p = malloc(bytes);
	if (p)
		__atomic_add_fetch(&host_blocks, 1, __ATOMIC_SEQ_CST);
	return p;
}

/* Free host_alloc memory. */
static void
hd_host_free(void *p)
{
	if (!p)
		return;
	__atomic_sub_fetch(&host_blocks, 1, __ATOMIC_SEQ_CST);
	free(p);
}

/* The table lm_device_load finds (the CUDA backend's symbol name). */
__attribute__((visibility("default"))) const lm_device_ops lmgen_cuda_device_ops = {
	.abi = LM_DEVICE_ABI,
	.name = "hostdev",
	.count = hd_count,
	.open = hd_open,
	.close = hd_close,
	.info = hd_info,
	.healthy = hd_healthy,
	.upload = hd_upload,
	.kv_blocks = hd_kv_blocks,
	.unload = hd_unload,
	.kv_alloc = hd_kv_alloc,
	.kv_free = hd_kv_free,
	.kv_copy = hd_kv_copy,
	.forward = hd_forward,
	.host_alloc = hd_host_alloc,
	.host_free = hd_host_free,
};
