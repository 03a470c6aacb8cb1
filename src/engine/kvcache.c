/*
 * kvcache.c — the block pool and the block tables of the KV cache.
 *
 * Bookkeeping: every block id has a reference count (the tables holding
 * it) and, while the pool holds it, storage.  Ids with storage and no
 * reference wait in free_ids for reuse; ids without storage wait in
 * unused_ids.  Reservations are planned before anything changes: the plan
 * counts the blocks the spans need (new blocks past each sequence's table,
 * plus a copy of a shared block a sequence writes into) net of the blocks
 * their rewinds give back, checks the budget, and puts enough blocks on the
 * free list; then the copies of shared blocks that sequences write into
 * are made (a device's copy can fail: nothing has changed yet); only then
 * are tables changed, which can no longer fail.
 *
 * Storage goes through block_alloc / block_release / block_copy: host
 * memory unless a store is set (kvcache.h), one predictable branch each.
 */
#include "kvcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_ALIGN 64

/* A byte count for messages: "N MB", or "N kB" below 10 MB. */
static const char *
fmt_bytes(char *buf, size_t len, size_t bytes)
{
	if (bytes >= (size_t) 10 << 20)
		snprintf(buf, len, "%zu MB", (bytes + (1 << 20) - 1) >> 20);
	else
		snprintf(buf, len, "%zu kB", (bytes + 1023) >> 10);
	return buf;
}

/* Storage for one block: host memory, or the store's; NULL when none. */
static float *
block_alloc(lm_kv *kv)
{
	if (kv->store.alloc)
		return kv->store.alloc(kv->store.arg);
	return aligned_alloc(KV_ALIGN, kv->block_bytes);
}

/* Give one block's storage back (NULL is allowed). */
static void
block_release(lm_kv *kv, float *p)
{
	if (!p)
		return;
	if (kv->store.alloc)
		kv->store.free(kv->store.arg, p);
	else
		free(p);
}

/* Copy one whole block; false with a message (only a store's copy can fail). */
static bool
block_copy(lm_kv *kv, float *dst, const float *src, char *err, size_t errlen)
{
	if (kv->store.alloc)
		return kv->store.copy(kv->store.arg, dst, src, err, errlen);
	memcpy(dst, src, kv->block_bytes);
	return true;
}

/* Blocks that hold n positions. */
static int32_t
blocks_for(int32_t n)
{
	return (n + LM_KV_BLOCK - 1) / LM_KV_BLOCK;
}

/* Floats per position per layer of keys and values, and the block size; false on overflow. */
static bool
block_shape(const lm_model *m, size_t *kd, size_t *vd, size_t *bytes)
{
	const lm_model_config *c = &m->cfg;
	size_t		rows = (size_t) c->n_layer * LM_KV_BLOCK;

	*kd = (size_t) c->n_head_kv * c->head_dim_k;
	*vd = (size_t) c->n_head_kv * c->head_dim_v;
	if (*kd + *vd == 0 || rows == 0 || *kd + *vd > SIZE_MAX / sizeof(float) / 2 / rows)
		return false;
	*bytes = rows * (*kd + *vd) * sizeof(float);
	*bytes = (*bytes + KV_ALIGN - 1) & ~(size_t) (KV_ALIGN - 1);
	return true;
}

/* Bytes of one block. */
size_t
lm_kv_block_bytes(const lm_model *m)
{
	size_t		kd,
				vd,
				bytes;

	return block_shape(m, &kd, &vd, &bytes) ? bytes : 0;
}

/* Bytes of n_seq unshared sequences of n_pos positions (0 on overflow). */
size_t
lm_kv_bytes(const lm_model *m, int n_pos, int n_seq)
{
	size_t		bb = lm_kv_block_bytes(m),
				nb;

	if (bb == 0 || n_pos <= 0 || n_seq <= 0)
		return 0;
	nb = (size_t) blocks_for(n_pos) * (size_t) n_seq;
	if (nb > SIZE_MAX / bb)
		return 0;
	return nb * bb;
}

/* Create an empty cache. */
lm_kv *
lm_kv_create(const lm_model *m, int n_ctx, int n_seq_max, char *err, size_t errlen)
{
	lm_kv	   *kv;
	size_t		kd,
				vd,
				bytes;

	if (n_ctx <= 0 || n_seq_max <= 0 || !block_shape(m, &kd, &vd, &bytes))
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
	kv->k_dim = (int32_t) kd;
	kv->v_dim = (int32_t) vd;
	kv->v_off = (size_t) kv->n_layer * LM_KV_BLOCK * kd;
	kv->block_bytes = bytes;
	kv->table = calloc(n_seq_max, sizeof(int32_t *));
	kv->n_table = calloc(n_seq_max, sizeof(int32_t));
	kv->table_cap = calloc(n_seq_max, sizeof(int32_t));
	kv->len = calloc(n_seq_max, sizeof(int32_t));
	kv->cow = calloc(n_seq_max, sizeof(int32_t));
	if (!kv->table || !kv->n_table || !kv->table_cap || !kv->len || !kv->cow)
		goto oom;
	return kv;

oom:
	snprintf(err, errlen, "out of memory creating a KV cache for %d sequences", n_seq_max);
	lm_kv_free(kv);
	return NULL;
}

/* Free the cache and every block. */
void
lm_kv_free(lm_kv *kv)
{
	if (!kv)
		return;
	for (int32_t i = 0; i < kv->cap; i++)
		block_release(kv, kv->block[i]);
	free(kv->block);
	free(kv->ref);
	free(kv->free_ids);
	free(kv->unused_ids);
	if (kv->table)
		for (int32_t s = 0; s < kv->n_seq_max; s++)
			free(kv->table[s]);
	free(kv->table);
	free(kv->n_table);
	free(kv->table_cap);
	free(kv->len);
	free(kv->cow);
	free(kv);
}

/* Keep blocks in a store (or host memory again); only while no block is held. */
bool
lm_kv_set_store(lm_kv *kv, const lm_kv_store *store)
{
	if (kv->n_held > 0 || (store && (!store->alloc || !store->free || !store->copy)))
		return false;
	if (store)
		kv->store = *store;
	else
		memset(&kv->store, 0, sizeof(kv->store));
	return true;
}

/* Cap the bytes of blocks held. */
void
lm_kv_set_budget(lm_kv *kv, size_t bytes)
{
	kv->budget = bytes;
}

/* Bytes of referenced blocks. */
size_t
lm_kv_bytes_in_use(const lm_kv *kv)
{
	return (size_t) (kv->n_held - kv->n_free) * kv->block_bytes;
}

/* Bytes of blocks held. */
size_t
lm_kv_bytes_held(const lm_kv *kv)
{
	return (size_t) kv->n_held * kv->block_bytes;
}

/* Free unreferenced blocks while more than keep bytes are held. */
size_t
lm_kv_trim(lm_kv *kv, size_t keep)
{
	size_t		freed = 0;

	while (kv->n_free > 0 && lm_kv_bytes_held(kv) > keep)
	{
		int32_t		id = kv->free_ids[--kv->n_free];

		block_release(kv, kv->block[id]);
		kv->block[id] = NULL;
		kv->unused_ids[kv->n_unused++] = id;
		kv->n_held--;
		freed += kv->block_bytes;
	}
	return freed;
}

/* Drop one reference to a block; it goes to the free list at zero. */
static void
unref(lm_kv *kv, int32_t id)
{
	if (--kv->ref[id] == 0)
		kv->free_ids[kv->n_free++] = id;
}

/* Keep the first n_keep positions of a sequence. */
void
lm_kv_seq_keep(lm_kv *kv, int seq, int n_keep)
{
	int32_t		nb;

	if (seq < 0 || seq >= kv->n_seq_max)
		return;
	if (n_keep < 0)
		n_keep = 0;
	if (kv->len[seq] > n_keep)
		kv->len[seq] = n_keep;
	nb = blocks_for(kv->len[seq]);
	for (int32_t i = nb; i < kv->n_table[seq]; i++)
		unref(kv, kv->table[seq][i]);
	if (kv->n_table[seq] > nb)
		kv->n_table[seq] = nb;
}

/* Forget one sequence. */
void
lm_kv_seq_clear(lm_kv *kv, int seq)
{
	lm_kv_seq_keep(kv, seq, 0);
}

/* Forget every sequence. */
void
lm_kv_clear(lm_kv *kv)
{
	for (int32_t s = 0; s < kv->n_seq_max; s++)
		lm_kv_seq_keep(kv, s, 0);
}

/* Filled positions of a sequence. */
int
lm_kv_seq_len(const lm_kv *kv, int seq)
{
	if (seq < 0 || seq >= kv->n_seq_max)
		return 0;
	return kv->len[seq];
}

/* Room for n entries in a sequence's table; false when out of memory. */
static bool
table_room(lm_kv *kv, int seq, int32_t n)
{
	int32_t    *t;
	int32_t		cap;

	if (n <= kv->table_cap[seq])
		return true;
	cap = kv->table_cap[seq] * 2 > n ? kv->table_cap[seq] * 2 : n;
	if (cap > blocks_for(kv->n_ctx))
		cap = blocks_for(kv->n_ctx);
	t = realloc(kv->table[seq], sizeof(int32_t) * cap);
	if (!t)
		return false;
	kv->table[seq] = t;
	kv->table_cap[seq] = cap;
	return true;
}

/* Share the first n positions of src with dst. */
bool
lm_kv_seq_share(lm_kv *kv, int src, int dst, int n)
{
	int32_t		nb = blocks_for(n);

	if (src < 0 || src >= kv->n_seq_max || dst < 0 || dst >= kv->n_seq_max || src == dst ||
		n < 0 || n > kv->len[src])
		return false;
	lm_kv_seq_keep(kv, dst, 0);
	if (!table_room(kv, dst, nb))
		return false;
	for (int32_t i = 0; i < nb; i++)
	{
		int32_t		id = kv->table[src][i];

		kv->table[dst][i] = id;
		kv->ref[id]++;
	}
	kv->n_table[dst] = nb;
	kv->len[dst] = n;
	return true;
}

/* Room for n more block ids in the pool arrays; false when out of memory. */
static bool
ids_room(lm_kv *kv, int32_t n)
{
	int32_t		cap;

	if (kv->n_unused >= n)
		return true;
	cap = kv->cap + (n - kv->n_unused);
	if (cap < kv->cap * 2)
		cap = kv->cap * 2;
#define GROW(field) do { \
		void	   *p_ = realloc(kv->field, sizeof(*kv->field) * cap); \
		if (!p_) \
			return false; \
		kv->field = p_; \
	} while (0)
	GROW(block);
	GROW(ref);
	GROW(free_ids);
	GROW(unused_ids);
#undef GROW
	for (int32_t id = kv->cap; id < cap; id++)
	{
		kv->block[id] = NULL;
		kv->ref[id] = 0;
		kv->unused_ids[kv->n_unused++] = id;
	}
	kv->cap = cap;
	return true;
}

/*
 * Give n more blocks storage and put them on the free list; false with a
 * message when out of memory or the store has no block left (the blocks
 * added so far stay in the pool, free).
 */
static bool
add_free_blocks(lm_kv *kv, int32_t n, char *err, size_t errlen)
{
	if (!ids_room(kv, n))
	{
		snprintf(err, errlen, "out of memory reserving %d KV blocks", n);
		return false;
	}
	for (int32_t i = 0; i < n; i++)
	{
		int32_t		id = kv->unused_ids[kv->n_unused - 1];
		float	   *p = block_alloc(kv);

		if (!p)
		{
			char		a[32];

			if (kv->store.alloc)
				snprintf(err, errlen, "the %s KV pool is exhausted: the KV cache would need %s (%d blocks), the pool gave %d",
						 kv->store.name ? kv->store.name : "device",
						 fmt_bytes(a, sizeof(a), (size_t) (kv->n_held + n - i) * kv->block_bytes),
						 kv->n_held + n - i, kv->n_held);
			else
				snprintf(err, errlen, "out of memory reserving %d KV blocks of %zu KB", n, kv->block_bytes >> 10);
			return false;
		}
		kv->n_unused--;
		kv->block[id] = p;
		kv->free_ids[kv->n_free++] = id;
		kv->n_held++;
	}
	return true;
}

/* Take a block from the free list (one must be there) with one reference. */
static int32_t
take_free(lm_kv *kv)
{
	int32_t		id = kv->free_ids[--kv->n_free];

	kv->ref[id] = 1;
	return id;
}

/* Check the spans; count the blocks they need and those their rewinds give back. */
static bool
plan(const lm_kv *kv, const lm_kv_span *spans, int n_spans, int64_t *need, int64_t *back,
	 int64_t *n_cow, char *err, size_t errlen)
{
	*need = 0;
	*back = 0;
	*n_cow = 0;
	for (int i = 0; i < n_spans; i++)
	{
		int32_t		s = spans[i].seq,
					start = spans[i].start,
					end = spans[i].end,
					keep;

		if (s < 0 || s >= kv->n_seq_max || start < 0 || start > kv->len[s] || end < start || end > kv->n_ctx)
		{
			snprintf(err, errlen, "invalid KV span: sequence %d, positions %d..%d", s, start, end - 1);
			return false;
		}
		keep = blocks_for(start);
		for (int32_t b = keep; b < kv->n_table[s]; b++)
			if (kv->ref[kv->table[s][b]] == 1)
				(*back)++;
		if (end > start)
		{
			*need += blocks_for(end) - keep;
			if (start % LM_KV_BLOCK != 0 && kv->ref[kv->table[s][start / LM_KV_BLOCK]] > 1)
			{
				(*need)++;		/* copy-on-write of the shared block written into */
				(*n_cow)++;
			}
		}
	}
	return true;
}

/* Give the copies made for the spans back to the free list (their sequences did not take them). */
static void
drop_copies(lm_kv *kv, const lm_kv_span *spans, int n_spans)
{
	for (int i = 0; i < n_spans; i++)
	{
		int32_t		id = kv->cow[spans[i].seq];

		if (id >= 0)
		{
			kv->cow[spans[i].seq] = -1;
			kv->ref[id] = 0;
			kv->free_ids[kv->n_free++] = id;
		}
	}
}

/*
 * Copy each shared block a span writes into (its sequence's block at the
 * span's start, mid-block) into a free block, recorded in cow[seq]; false
 * with a message when a copy fails (the copies go back to the free list).
 */
static bool
copy_shared(lm_kv *kv, const lm_kv_span *spans, int n_spans, char *err, size_t errlen)
{
	for (int i = 0; i < n_spans; i++)
		kv->cow[spans[i].seq] = -1;
	for (int i = 0; i < n_spans; i++)
	{
		int32_t		s = spans[i].seq,
					start = spans[i].start,
					old,
					id;

		if (spans[i].end <= start || start % LM_KV_BLOCK == 0 || kv->cow[s] >= 0)
			continue;
		old = kv->table[s][start / LM_KV_BLOCK];
		if (kv->ref[old] <= 1)
			continue;
		id = take_free(kv);
		kv->cow[s] = id;
		if (!block_copy(kv, kv->block[id], kv->block[old], err, errlen))
		{
			drop_copies(kv, spans, n_spans);
			return false;
		}
	}
	return true;
}

/* Prepare the spans of one forward pass: all or nothing. */
bool
lm_kv_reserve(lm_kv *kv, const lm_kv_span *spans, int n_spans, char *err, size_t errlen)
{
	int64_t		need,
				back,
				n_cow,
				add;

	if (!plan(kv, spans, n_spans, &need, &back, &n_cow, err, errlen))
		return false;
	/* the copies are made before the rewinds give blocks back */
	add = (need - back > n_cow ? need - back : n_cow) - kv->n_free;
	if (add > 0 && kv->budget > 0 &&
		(size_t) (kv->n_held + add) > kv->budget / kv->block_bytes)
	{
		char		a[32],
					b[32];

		snprintf(err, errlen, "the KV cache would need %s, more than its limit of %s",
				 fmt_bytes(a, sizeof(a), (size_t) (kv->n_held + add) * kv->block_bytes),
				 fmt_bytes(b, sizeof(b), kv->budget));
		return false;
	}
	for (int i = 0; i < n_spans; i++)
		if (!table_room(kv, spans[i].seq, blocks_for(spans[i].end)))
		{
			snprintf(err, errlen, "out of memory reserving %lld KV blocks of %zu KB",
					 (long long) need, kv->block_bytes >> 10);
			return false;
		}
	if (add > 0 && !add_free_blocks(kv, (int32_t) add, err, errlen))
		return false;
	if (n_cow > 0 && !copy_shared(kv, spans, n_spans, err, errlen))
		return false;

	/* From here nothing can fail: rewind every sequence, then give out blocks. */
	for (int i = 0; i < n_spans; i++)
		lm_kv_seq_keep(kv, spans[i].seq, spans[i].start);
	for (int i = 0; i < n_spans; i++)
	{
		int32_t		s = spans[i].seq,
					start = spans[i].start,
					end = spans[i].end;

		if (end <= start)
			continue;
		if (n_cow > 0 && start % LM_KV_BLOCK != 0)
		{
			int32_t		b = start / LM_KV_BLOCK,
						old = kv->table[s][b];

			/* shared still (the rewinds only lower counts, so the copy was made) */
			if (kv->ref[old] > 1 && kv->cow[s] >= 0)
			{
				kv->ref[old]--;
				kv->table[s][b] = kv->cow[s];
				kv->cow[s] = -1;
			}
		}
		for (int32_t b = kv->n_table[s]; b < blocks_for(end); b++)
			kv->table[s][b] = take_free(kv);
		kv->n_table[s] = blocks_for(end);
	}
	if (n_cow > 0)
		drop_copies(kv, spans, n_spans);	/* copies the rewinds made needless */
	return true;
}
