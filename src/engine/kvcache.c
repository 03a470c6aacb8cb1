/*
 * kvcache.c — allocation and bookkeeping of the per-sequence F32 KV cache.
 */
#include "kvcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Floats of one sequence slot for keys (per_k) and values (per_v); false on overflow. */
static bool
slot_floats(const lm_model *m, int n_ctx, size_t *per_k, size_t *per_v)
{
	const lm_model_config *c = &m->cfg;
	size_t		kd = (size_t) c->n_head_kv * c->head_dim_k,
				vd = (size_t) c->n_head_kv * c->head_dim_v,
				rows = (size_t) c->n_layer * (size_t) n_ctx;

	if (n_ctx <= 0 || (kd && rows > SIZE_MAX / 8 / kd) || (vd && rows > SIZE_MAX / 8 / vd))
		return false;
	*per_k = rows * kd;
	*per_v = rows * vd;
	return true;
}

/* Bytes the cache would need (0 on overflow). */
size_t
lm_kv_bytes(const lm_model *m, int n_ctx, int n_seq_max)
{
	size_t		pk,
				pv;

	if (n_seq_max <= 0 || !slot_floats(m, n_ctx, &pk, &pv))
		return 0;
	if (pk + pv > SIZE_MAX / sizeof(float) / (size_t) n_seq_max)
		return 0;
	return (pk + pv) * sizeof(float) * (size_t) n_seq_max;
}

/* Allocate the cache. */
lm_kv *
lm_kv_create(const lm_model *m, int n_ctx, int n_seq_max, char *err, size_t errlen)
{
	size_t		bytes = lm_kv_bytes(m, n_ctx, n_seq_max),
				pk,
				pv;
	lm_kv	   *kv;

	if (bytes == 0 || !slot_floats(m, n_ctx, &pk, &pv))
	{
		snprintf(err, errlen, "invalid KV cache size: %d positions x %d sequences", n_ctx, n_seq_max);
		return NULL;
	}
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		goto oom;
	kv->n_ctx = n_ctx;
	kv->n_seq_max = n_seq_max;
	kv->n_layer = m->cfg.n_layer;
	kv->k_dim = m->cfg.n_head_kv * m->cfg.head_dim_k;
	kv->v_dim = m->cfg.n_head_kv * m->cfg.head_dim_v;
	kv->k = calloc(pk * (size_t) n_seq_max, sizeof(float));
	kv->v = calloc(pv * (size_t) n_seq_max, sizeof(float));
	kv->len = calloc(n_seq_max, sizeof(int32_t));
	if (!kv->k || !kv->v || !kv->len)
		goto oom;
	return kv;

oom:
	snprintf(err, errlen, "out of memory allocating a KV cache of %zu MB (%d positions x %d sequences)",
			 bytes >> 20, n_ctx, n_seq_max);
	lm_kv_free(kv);
	return NULL;
}

/* Free the cache. */
void
lm_kv_free(lm_kv *kv)
{
	if (!kv)
		return;
	free(kv->k);
	free(kv->v);
	free(kv->len);
	free(kv);
}

/* Forget every sequence. */
void
lm_kv_clear(lm_kv *kv)
{
	memset(kv->len, 0, sizeof(int32_t) * kv->n_seq_max);
}

/* Forget one sequence. */
void
lm_kv_seq_clear(lm_kv *kv, int seq)
{
	if (seq >= 0 && seq < kv->n_seq_max)
		kv->len[seq] = 0;
}

/* Keep only the first n_keep positions of a sequence. */
void
lm_kv_seq_keep(lm_kv *kv, int seq, int n_keep)
{
	if (seq < 0 || seq >= kv->n_seq_max)
		return;
	if (n_keep < 0)
		n_keep = 0;
	if (kv->len[seq] > n_keep)
		kv->len[seq] = n_keep;
}

/* Copy the first n positions of one sequence into another. */
bool
lm_kv_seq_copy(lm_kv *kv, int src, int dst, int n)
{
	if (src < 0 || src >= kv->n_seq_max || dst < 0 || dst >= kv->n_seq_max ||
		n < 0 || n > kv->len[src])
		return false;
	if (src == dst)
		return true;
	for (int l = 0; l < kv->n_layer; l++)
	{
		memcpy(lm_kv_k(kv, dst, l, 0), lm_kv_k(kv, src, l, 0), sizeof(float) * (size_t) n * kv->k_dim);
		memcpy(lm_kv_v(kv, dst, l, 0), lm_kv_v(kv, src, l, 0), sizeof(float) * (size_t) n * kv->v_dim);
	}
	kv->len[dst] = n;
	return true;
}

/* Filled positions of a sequence. */
int
lm_kv_seq_len(const lm_kv *kv, int seq)
{
	if (seq < 0 || seq >= kv->n_seq_max)
		return 0;
	return kv->len[seq];
}
