/*
 * kvcache.h — the attention key/value cache: F32 keys and values for every
 * layer, in one slot per sequence.
 *
 * Layout: slot s holds positions 0..n_ctx-1 of sequence s; for each layer the
 * keys of position p are n_head_kv * head_dim_k consecutive floats (values
 * likewise).  A sequence's cache is therefore independent of every other
 * sequence, which is what makes a token's result independent of whatever else
 * shares its batch.  `len[s]` counts the positions of sequence s that are
 * filled (0..len-1); the forward pass appends and may rewind it.
 */
#ifndef LM_KVCACHE_H
#define LM_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* The cache of one context. */
typedef struct lm_kv
{
	int32_t		n_ctx;			/* positions per sequence */
	int32_t		n_seq_max;		/* sequence slots */
	int32_t		n_layer;		/* layers */
	int32_t		k_dim;			/* floats per position per layer (keys) */
	int32_t		v_dim;			/* floats per position per layer (values) */
	float	   *k;				/* (n_seq_max, n_layer, n_ctx, k_dim) */
	float	   *v;				/* (n_seq_max, n_layer, n_ctx, v_dim) */
	int32_t    *len;			/* (n_seq_max) filled positions per sequence */
} lm_kv;

/* Allocate a cache for n_seq_max sequences of n_ctx positions; NULL with a message on failure. */
extern lm_kv *lm_kv_create(const lm_model *m, int n_ctx, int n_seq_max, char *err, size_t errlen);

/* Free the cache; NULL is allowed. */
extern void lm_kv_free(lm_kv *kv);

/* Bytes the cache would need (0 on overflow), to check a budget before creating it. */
extern size_t lm_kv_bytes(const lm_model *m, int n_ctx, int n_seq_max);

/* Forget every sequence. */
extern void lm_kv_clear(lm_kv *kv);

/* Forget sequence seq (out-of-range ids are ignored). */
extern void lm_kv_seq_clear(lm_kv *kv, int seq);

/* Keep only the first n_keep positions of sequence seq (no-op when it has fewer). */
extern void lm_kv_seq_keep(lm_kv *kv, int seq, int n_keep);

/* Copy the first n positions of sequence src to dst (a shared prompt prefix); false if out of range. */
extern bool lm_kv_seq_copy(lm_kv *kv, int src, int dst, int n);

/* Filled positions of sequence seq (0 for bad ids). */
extern int	lm_kv_seq_len(const lm_kv *kv, int seq);

/* Keys of (seq, layer, pos): k_dim floats. */
static inline float *
lm_kv_k(const lm_kv *kv, int seq, int layer, int pos)
{
	return kv->k + (((size_t) seq * kv->n_layer + layer) * kv->n_ctx + pos) * kv->k_dim;
}

/* Values of (seq, layer, pos): v_dim floats. */
static inline float *
lm_kv_v(const lm_kv *kv, int seq, int layer, int pos)
{
	return kv->v + (((size_t) seq * kv->n_layer + layer) * kv->n_ctx + pos) * kv->v_dim;
}

/*
 * Block view of the cache, the interface attention reads through.  Positions
 * are grouped in blocks of LM_KV_BLOCK; block blk of a sequence holds
 * positions blk*LM_KV_BLOCK .. blk*LM_KV_BLOCK + LM_KV_BLOCK - 1.  Within a
 * block the rows of one layer are contiguous (row stride k_dim, resp. v_dim);
 * different blocks need not be, so readers never step from one block into
 * the next by pointer arithmetic.
 */
#define LM_KV_BLOCK 16

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
