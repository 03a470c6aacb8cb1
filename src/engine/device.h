/*
 * device.h — the compute-device seam: what the engine asks of a device
 * backend (today CUDA, in cuda/, built as its own shared object
 * lmgen_cuda.so), and how a context runs its forward passes on one.
 *
 * Why a separate shared object: lmgen.so must load on a machine without the
 * CUDA runtime, and only the background worker may ever initialise CUDA (a
 * CUDA context does not survive fork, and the postmaster forks every
 * backend).  So lmgen.so carries no CUDA symbol; the worker (or a test
 * program) calls lm_device_load() with the path of lmgen_cuda.so, which
 * dlopen()s it and takes the one exported symbol LM_DEVICE_OPS_SYMBOL, a
 * table of the functions below.  The table's abi must equal LM_DEVICE_ABI
 * (both sides are built from this header; a stale lmgen_cuda.so is refused).
 *
 * Division of work.  The host keeps everything that is bookkeeping: batch
 * validation, the paged KV cache's block tables, reference counts, sharing
 * and copy-on-write (kvcache.c), the scheduler, sampling.  The device holds
 * the weights (uploaded once per model), the storage of the KV blocks (one
 * pool sized at creation; kvcache.c's block pointers are then device
 * addresses, never dereferenced on the host) and runs one whole forward
 * pass per call: embeddings -> layers -> final norm -> logits of the tokens
 * that want them, and their argmax.
 *
 * KV block layout on the device is the host layout (kvcache.h): a block
 * holds LM_KV_BLOCK positions of one sequence for every layer, F32, keys
 * [layer][position in block][k_dim] then values [layer][position in
 * block][v_dim], values starting v_off floats after the block's start.
 *
 * Errors: every function that can fail returns a failure value with a
 * message in err.  A failed forward pass leaves the sequences of its batch
 * undefined (the caller clears them, as after an abort).  After an error
 * that poisons the device (a kernel fault: CUDA's "sticky" errors), healthy()
 * returns false and the owner closes the device and falls back to the CPU.
 *
 * Threads: a device and its models are used by one thread at a time (the
 * worker's main loop); no function here calls back into the host.
 */
#ifndef LM_DEVICE_H
#define LM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Version of the table below; bump on any change to this header's structs or functions. */
#define LM_DEVICE_ABI 3

/* The symbol lmgen_cuda.so exports: a const lm_device_ops. */
#define LM_DEVICE_OPS_SYMBOL "lmgen_cuda_device_ops"

/* An opened device (a CUDA context on one GPU). */
typedef struct lm_device lm_device;

/* One model's weights on a device, and the pool of its KV blocks. */
typedef struct lm_device_model lm_device_model;

/* What a device is and how much memory it has. */
typedef struct lm_device_info
{
	char		name[128];		/* e.g. "NVIDIA H200" */
	int			ordinal;		/* device number */
	int			cc_major;		/* compute capability, e.g. 9 */
	int			cc_minor;		/* e.g. 0 */
	size_t		mem_total;		/* bytes of device memory */
	size_t		mem_free;		/* bytes free now */
	size_t		mem_used_by_us; /* bytes this process holds (weights, KV pool, scratch) */
} lm_device_info;

/*
 * One forward pass as the device sees it, built by context.c from a
 * validated batch after its KV blocks are reserved.  Every pointer is host
 * memory valid for the duration of the call.
 *
 * Token i of the batch belongs to sequence row seq_row[i] (0..n_rows-1, the
 * sequences of this batch numbered in order of first appearance); its
 * attention reads positions 0..pos[i] of that sequence (positions written by
 * earlier tokens of the same batch included: tokens of one sequence are
 * consecutive and in position order) — and, on a gemma3 sliding-window
 * layer, only the last n_swa of them.  Its keys and values are written at
 * position pos[i].  The blocks of row r are block_table[r * max_blocks + j]
 * for block j (positions j*LM_KV_BLOCK ..), device addresses that kv_alloc
 * returned; entries beyond the row's last needed block are 0.
 *
 * Outputs go to host memory: for every token with out[i] != LM_OUT_NONE
 * its final hidden state (after the output norm) to hidden + out_row[i] *
 * n_embd; for every token with out[i] == LM_OUT_LOGITS its logits (after
 * any soft cap) to logits + logit_row[i] * n_vocab and their argmax (the
 * lowest index among equal maxima) to argmax[logit_row[i]].  Rows are -1
 * for tokens without that output.
 *
 * prefill (added in ABI 2, at the end so the fields above keep their
 * places) gives each token's attention value order, LM_PREFILL_YES or
 * LM_PREFILL_NO (context.h), resolved by the host from the whole batch: the
 * CPU engine's bit-exact summation order, which a device that sums in its
 * own order (CUDA) may ignore; the host-memory test device follows it so
 * that its results equal the CPU's bit for bit.  NULL means "decide from
 * this batch alone" (LM_PREFILL_AUTO).
 */
typedef struct lm_device_batch
{
	int			n_tokens;		/* tokens in the batch (>= 1) */
	const int32_t *token;		/* (n_tokens) token ids, < n_vocab */
	const int32_t *pos;			/* (n_tokens) positions */
	const int32_t *seq_row;		/* (n_tokens) sequence row of each token */
	const int8_t *out;			/* (n_tokens) lm_out */
	const int32_t *out_row;		/* (n_tokens) hidden row, or -1 */
	const int32_t *logit_row;	/* (n_tokens) logits row, or -1 */
	int			n_rows;			/* sequences in the batch */
	int			max_blocks;		/* entries per row of block_table */
	const uint64_t *block_table;	/* (n_rows * max_blocks) device addresses of KV blocks */
	float	   *hidden;			/* (rows of out != NONE, n_embd) output */
	float	   *logits;			/* (rows of LM_OUT_LOGITS, n_vocab) output */
	int32_t    *argmax;			/* (rows of LM_OUT_LOGITS) output */
	const int8_t *prefill;		/* (n_tokens) LM_PREFILL_YES / _NO value order, or NULL (ABI 2) */
} lm_device_batch;

/* The functions a device backend provides (all required). */
typedef struct lm_device_ops
{
	int			abi;			/* LM_DEVICE_ABI */
	const char *name;			/* "cuda" */

	/* Devices visible to this process (0 when none); -1 with a message when the runtime fails. */
	int			(*count) (char *err, size_t errlen);

	/* Open device ordinal; NULL with a message. */
	lm_device  *(*open) (int ordinal, char *err, size_t errlen);

	/* Close a device, freeing everything on it (its models must be unloaded first); NULL is allowed. */
	void		(*close) (lm_device *dev);

	/* Fill *info; false with a message when the device cannot answer. */
	bool		(*info) (lm_device *dev, lm_device_info *info, char *err, size_t errlen);

	/* False once an error has poisoned the device: close it and use the CPU. */
	bool		(*healthy) (lm_device *dev);

	/*
	 * Upload model m's weights (read from its host mapping, which may be
	 * unmapped after the call), make scratch for batches of up to n_batch
	 * tokens over up to n_seq sequences of up to n_ctx positions, then
	 * create its KV pool: kv_fraction (0 < f <= 1) of the device memory
	 * still free after that, in whole blocks of kvcache.h's block size,
	 * capped at kv_bytes_max bytes when that is not 0.  Architectures other
	 * than llama and gemma3, or weight types without kernels, are refused
	 * with a message.  NULL with a message on failure.
	 */
	lm_device_model *(*upload) (lm_device *dev, const lm_model *m, double kv_fraction,
								size_t kv_bytes_max, int n_batch, int n_seq, int n_ctx,
								char *err, size_t errlen);

	/* Blocks in the model's KV pool (the host caps its cache at this many). */
	int64_t		(*kv_blocks) (const lm_device_model *dm);

	/* Free a model's weights, pool and scratch; NULL is allowed. */
	void		(*unload) (lm_device_model *dm);

	/* Take one KV block (block_bytes of kvcache.h) from the pool; 0 when the pool is exhausted. */
	uint64_t	(*kv_alloc) (lm_device_model *dm);

	/* Give a block back to the pool. */
	void		(*kv_free) (lm_device_model *dm, uint64_t block);

	/* Copy one whole block src to dst (copy-on-write of a shared block); false with a message. */
	bool		(*kv_copy) (lm_device_model *dm, uint64_t dst, uint64_t src, char *err, size_t errlen);

	/* Run one forward pass (see lm_device_batch); 0, or -1 with a message. */
	int			(*forward) (lm_device_model *dm, const lm_device_batch *b, char *err, size_t errlen);

	/*
	 * Host memory for the logits rows a context hands to forward (ABI 3):
	 * page-locked where the device can give it, so the copies of logits
	 * from the device run at the bus's speed instead of through the
	 * driver's pageable staging (for a 262k-token vocabulary at 256
	 * sequences a step, 268 MB); NULL when it cannot (the host then uses
	 * malloc).  Any thread may call these two.
	 */
	void	   *(*host_alloc) (size_t bytes);

	/* Free memory from host_alloc; NULL is allowed. */
	void		(*host_free) (void *p);
} lm_device_ops;

/*
 * Load a device backend from the shared object at path (dlopen; the CUDA
 * runtime is then loaded, but not initialised).  NULL with a message when
 * the file is missing, does not load (no CUDA runtime on this machine), or
 * was built for another LM_DEVICE_ABI.  The object stays loaded for the
 * life of the process.
 */
extern const lm_device_ops *lm_device_load(const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif							/* LM_DEVICE_H */
