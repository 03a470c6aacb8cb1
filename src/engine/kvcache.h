/*
 * kvcache.h — the attention key/value cache: a pool of fixed-size blocks
 * with a block table per sequence.
 *
 * A block holds LM_KV_BLOCK consecutive positions of one sequence for every
 * layer, F32: first the keys, [layer][position in block][k_dim], then the
 * values, [layer][position in block][v_dim].  Block blk of a sequence holds
 * its positions blk*LM_KV_BLOCK .. blk*LM_KV_BLOCK + LM_KV_BLOCK - 1; the
 * sequence's block table says which pool block that is.  Blocks are taken
 * from the pool when a forward pass is about to write them
 * (lm_kv_reserve) and go back to it when a sequence is cleared or rewound.
 *
 * Sharing: lm_kv_seq_share() lets a sequence start with the first n
 * positions of another by pointing its table at the same blocks and
 * counting references; nothing is copied.  A block referenced by more than
 * one sequence is read-only: before a forward pass writes into it (the
 * partial last block of a shared prefix), lm_kv_reserve gives the writer a
 * private copy (copy-on-write).  What a token computes depends only on the
 * keys and values of its own sequence, so sharing never changes a result.
 *
 * Memory: the pool holds at most `budget` bytes of blocks (0 = no limit);
 * a reservation beyond it fails with a message naming the limit and changes
 * nothing.  Blocks given back by sequences stay in the pool for reuse until
 * lm_kv_trim() frees those above a keep size.  `len[s]` counts the filled
 * positions of sequence s (0..len-1); the forward pass appends and may
 * rewind it.
 *
 * Storage: by default blocks are host memory (aligned malloc, free,
 * memcpy for copy-on-write).  A compute device sets a block store
 * (lm_kv_set_store) before the cache is used: blocks are then taken from
 * and given back to the device's pool, copy-on-write copies on the device,
 * and block[id] holds a device address that the host never dereferences
 * (lm_kv_k / lm_kv_v are for host caches only).  A store that runs out of
 * blocks fails the reservation like the budget does: all or nothing.
 */
#ifndef LM_KVCACHE_H
#define LM_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Positions per block. */
#define LM_KV_BLOCK 16

/* Where a cache's blocks live when they are not in host memory (a device's pool). */
typedef struct lm_kv_store
{
	void	   *(*alloc) (void *arg);	/* one block of block_bytes; NULL when none is left */
	void		(*free) (void *arg, void *block);	/* give a block back */
	bool		(*copy) (void *arg, void *dst, const void *src, char *err, size_t errlen);	/* whole block */
	void	   *arg;			/* their argument */
	const char *name;			/* the pool in messages, e.g. "device" */
} lm_kv_store;

/* The cache of one context. */
typedef struct lm_kv
{
	int32_t		n_ctx;			/* most positions one sequence may hold */
	int32_t		n_seq_max;		/* sequence ids 0..n_seq_max-1 */
	int32_t		n_layer;		/* layers */
	int32_t		k_dim;			/* floats per position per layer (keys) */
	int32_t		v_dim;			/* floats per position per layer (values) */
	size_t		v_off;			/* floats from a block's start to its values */
	size_t		block_bytes;	/* bytes of one block (keys and values of all layers) */
	size_t		budget;			/* most bytes of blocks held at once; 0 = no limit */
	lm_kv_store store;			/* block storage; store.alloc NULL = host memory */

	/* the pool; a block id indexes these */
	float	  **block;			/* (cap) storage of each block, NULL once freed */
	int32_t    *ref;			/* (cap) sequences whose table holds the block; 0 = free */
	int32_t    *free_ids;		/* (cap) ids of held blocks with no reference */
	int32_t    *unused_ids;		/* (cap) ids without storage */
	int32_t		cap;			/* block ids */
	int32_t		n_free;			/* entries in free_ids */
	int32_t		n_unused;		/* entries in unused_ids */
	int32_t		n_held;			/* blocks with storage (in use or free) */

	/* the sequences */
	int32_t   **table;			/* (n_seq_max) block ids of each sequence, by block index */
	int32_t    *n_table;		/* (n_seq_max) entries in use in each table */
	int32_t    *table_cap;		/* (n_seq_max) entries allocated in each table */
	int32_t    *len;			/* (n_seq_max) filled positions per sequence */
	int32_t    *cow;			/* (n_seq_max) lm_kv_reserve's copy of a shared block per sequence, or -1 */
} lm_kv;

/* Create an empty cache for n_seq_max sequences of up to n_ctx positions; NULL with a message. */
extern lm_kv *lm_kv_create(const lm_model *m, int n_ctx, int n_seq_max, char *err, size_t errlen);

/* Free the cache and every block; NULL is allowed. */
extern void lm_kv_free(lm_kv *kv);

/* Bytes of one block of model m. */
extern size_t lm_kv_block_bytes(const lm_model *m);

/* Bytes of blocks n_seq sequences of n_pos positions each need without sharing (0 on overflow). */
extern size_t lm_kv_bytes(const lm_model *m, int n_pos, int n_seq);

/*
 * Keep the cache's blocks in store (NULL: host memory again); only while
 * the cache holds no block (false otherwise).  The store must outlive the
 * cache's blocks (lm_kv_free gives them back to it).
 */
extern bool lm_kv_set_store(lm_kv *kv, const lm_kv_store *store);

/* Cap the bytes of blocks the pool may hold (0 = no limit); blocks held now are kept. */
extern void lm_kv_set_budget(lm_kv *kv, size_t bytes);

/* Bytes of blocks referenced by some sequence. */
extern size_t lm_kv_bytes_in_use(const lm_kv *kv);

/* Bytes of blocks the pool holds (in use plus free ones kept for reuse). */
extern size_t lm_kv_bytes_held(const lm_kv *kv);

/* Free the pool's unreferenced blocks until it holds at most keep bytes; returns bytes freed. */
extern size_t lm_kv_trim(lm_kv *kv, size_t keep);

/* Forget every sequence (their blocks go back to the pool). */
extern void lm_kv_clear(lm_kv *kv);

/* Forget sequence seq (out-of-range ids are ignored). */
extern void lm_kv_seq_clear(lm_kv *kv, int seq);

/* Keep only the first n_keep positions of sequence seq; blocks past them go back to the pool. */
extern void lm_kv_seq_keep(lm_kv *kv, int seq, int n_keep);

/*
 * Make sequence dst hold the first n positions of sequence src, sharing
 * src's blocks (no copy); dst's previous contents are forgotten.  False for
 * bad ids, src == dst, or n beyond src's length.
 */
extern bool lm_kv_seq_share(lm_kv *kv, int src, int dst, int n);

/* Filled positions of sequence seq (0 for bad ids). */
extern int	lm_kv_seq_len(const lm_kv *kv, int seq);

/* What a forward pass will do to one sequence: rewind it to start, then write start..end-1. */
typedef struct lm_kv_span
{
	int32_t		seq;			/* sequence id */
	int32_t		start;			/* first position written (<= its length) */
	int32_t		end;			/* one past the last position written (<= n_ctx) */
} lm_kv_span;

/*
 * Prepare the spans of one forward pass: rewind each sequence to its start
 * and give it writable blocks for start..end-1 (new blocks, and a private
 * copy of a shared block it writes into).  All or nothing: on failure
 * (over the budget, out of memory) it returns false with a message and no
 * sequence has changed.
 */
extern bool lm_kv_reserve(lm_kv *kv, const lm_kv_span *spans, int n_spans, char *err, size_t errlen);

/* Keys of (seq, layer, pos): k_dim floats (the position's block must be reserved). */
static inline float *
lm_kv_k(const lm_kv *kv, int seq, int layer, int pos)
{
	return kv->block[kv->table[seq][pos / LM_KV_BLOCK]] +
		((size_t) layer * LM_KV_BLOCK + (size_t) (pos % LM_KV_BLOCK)) * (size_t) kv->k_dim;
}

/* Values of (seq, layer, pos): v_dim floats (the position's block must be reserved). */
static inline float *
lm_kv_v(const lm_kv *kv, int seq, int layer, int pos)
{
	return kv->block[kv->table[seq][pos / LM_KV_BLOCK]] + kv->v_off +
		((size_t) layer * LM_KV_BLOCK + (size_t) (pos % LM_KV_BLOCK)) * (size_t) kv->v_dim;
}

/*
 * Block view of the cache, the interface attention reads through.  Within a
 * block the rows of one layer are contiguous (row stride k_dim, resp.
 * v_dim); different blocks are not, so readers never step from one block
 * into the next by pointer arithmetic.
 */

/* Keys of block blk of (seq, layer): LM_KV_BLOCK rows of k_dim floats. */
static inline const float *
lm_kv_k_block(const lm_kv *kv, int seq, int layer, int blk)
{
	return lm_kv_k(kv, seq, layer, blk * LM_KV_BLOCK);
}

/* Values of block blk of (seq, layer): LM_KV_BLOCK rows of v_dim floats. */
static inline const float *
lm_kv_v_block(const lm_kv *kv, int seq, int layer, int blk)
{
	return lm_kv_v(kv, seq, layer, blk * LM_KV_BLOCK);
}

#endif							/* LM_KVCACHE_H */
