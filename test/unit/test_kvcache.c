/*
 * test_kvcache.c — the paged KV cache: block reservation, prefix sharing
 * by reference count, copy-on-write of a shared partial block, rewinds,
 * the byte budget (all or nothing), and giving free blocks back; then,
 * on stories260K, that a forward pass over a shared prefix gives logits
 * bit-identical to evaluating the whole prompt, and that a batch over the
 * budget is refused with the cache unchanged.
 *
 * The pool tests need no model file: the cache only reads the sizes of a
 * model's configuration.  A block store (a fake device pool of a few
 * blocks in host memory) checks that blocks come from the store and go
 * back to it, that copy-on-write copies through it, and that an exhausted
 * pool or a failed copy fails the reservation with nothing changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "kvcache.h"
#include "model.h"
#include "unit.h"

#define BLK LM_KV_BLOCK

/* A model configuration with 2 layers, 1 KV head of 4 (keys) and 3 (values) floats. */
static lm_model
tiny_model(void)
{
	lm_model	m;

	memset(&m, 0, sizeof(m));
	m.cfg.n_layer = 2;
	m.cfg.n_head = 2;
	m.cfg.n_head_kv = 1;
	m.cfg.head_dim_k = 4;
	m.cfg.head_dim_v = 3;
	return m;
}

/* The value written at (seq tag, layer, pos, element), recognisable later. */
static float
mark(int tag, int layer, int pos, int d)
{
	return (float) (tag * 100000 + layer * 10000 + pos * 10 + d);
}

/* Write marks into positions [p0, p1) of a sequence (its blocks reserved). */
static void
fill(lm_kv *kv, int seq, int tag, int p0, int p1)
{
	for (int l = 0; l < kv->n_layer; l++)
		for (int p = p0; p < p1; p++)
		{
			for (int d = 0; d < kv->k_dim; d++)
				lm_kv_k(kv, seq, l, p)[d] = mark(tag, l, p, d);
			for (int d = 0; d < kv->v_dim; d++)
				lm_kv_v(kv, seq, l, p)[d] = -mark(tag, l, p, d);
		}
}

/* True when positions [p0, p1) of a sequence hold the marks of tag. */
static bool
holds(const lm_kv *kv, int seq, int tag, int p0, int p1)
{
	for (int l = 0; l < kv->n_layer; l++)
		for (int p = p0; p < p1; p++)
		{
			for (int d = 0; d < kv->k_dim; d++)
				if (lm_kv_k(kv, seq, l, p)[d] != mark(tag, l, p, d))
					return false;
			for (int d = 0; d < kv->v_dim; d++)
				if (lm_kv_v(kv, seq, l, p)[d] != -mark(tag, l, p, d))
					return false;
		}
	return true;
}

/* Reserve one span and, on success, mark it written (as a forward pass would). */
static bool
write_span(lm_kv *kv, int seq, int start, int end, int tag, char *err, size_t errlen)
{
	lm_kv_span	sp = {seq, start, end};

	err[0] = 0;
	if (!lm_kv_reserve(kv, &sp, 1, err, errlen))
		return false;
	fill(kv, seq, tag, start, end);
	kv->len[seq] = end;
	return true;
}

/* The pool alone: share, copy-on-write, rewind, budget, free and keep. */
static void
check_pool(void)
{
	lm_model	m = tiny_model();
	char		err[256] = "";
	lm_kv	   *kv = lm_kv_create(&m, 256, 4, err, sizeof(err));
	size_t		bb = lm_kv_block_bytes(&m);
	lm_kv_span	bad = {0, 5, 6};

	CHECK(kv != NULL && bb >= (size_t) 2 * BLK * (4 + 3) * sizeof(float),
		  "a cache is created; a block holds %d positions of every layer (%zu bytes)", BLK, bb);
	if (!kv)
		return;
	CHECK(lm_kv_bytes_held(kv) == 0 && lm_kv_bytes_in_use(kv) == 0, "a new cache holds no block");
	CHECK(lm_kv_bytes(&m, 17, 3) == 6 * bb, "17 positions of 3 sequences take 6 blocks");
	CHECK(!lm_kv_reserve(kv, &bad, 1, err, sizeof(err)), "a span starting past the sequence's length is refused (%s)", err);

	/* sequence 0: 40 positions in 3 blocks */
	CHECK(write_span(kv, 0, 0, 40, 1, err, sizeof(err)) && lm_kv_bytes_in_use(kv) == 3 * bb,
		  "40 positions take 3 blocks (%s)", err);
	CHECK(holds(kv, 0, 1, 0, 40), "what was written reads back");

	/* sequence 1 shares all 40: no block is added, the rows are the same memory */
	CHECK(lm_kv_seq_share(kv, 0, 1, 40) && lm_kv_seq_len(kv, 1) == 40 && lm_kv_bytes_in_use(kv) == 3 * bb,
		  "sharing 40 positions takes no new block");
	CHECK(lm_kv_k(kv, 1, 1, 33) == lm_kv_k(kv, 0, 1, 33) && lm_kv_v_block(kv, 1, 0, 2) == lm_kv_v_block(kv, 0, 0, 2),
		  "shared positions are the same rows");
	CHECK(!lm_kv_seq_share(kv, 0, 0, 10) && !lm_kv_seq_share(kv, 0, 1, 41) && !lm_kv_seq_share(kv, 0, 9, 1),
		  "sharing with itself, past the length or with a bad id is refused");

	/* sequence 1 writes position 40: the shared partial block is copied first */
	CHECK(write_span(kv, 1, 40, 41, 2, err, sizeof(err)) && lm_kv_bytes_in_use(kv) == 4 * bb,
		  "writing into the shared partial block copies it (4 blocks in use)");
	CHECK(lm_kv_k(kv, 1, 0, 33) != lm_kv_k(kv, 0, 0, 33) && lm_kv_k(kv, 1, 0, 5) == lm_kv_k(kv, 0, 0, 5),
		  "only the written block is private; full blocks stay shared");
	CHECK(holds(kv, 1, 1, 0, 40) && holds(kv, 1, 2, 40, 41), "the copy keeps the shared positions");

	/* sequence 0 writes its own position 40: its block is no longer shared, no copy */
	CHECK(write_span(kv, 0, 40, 42, 3, err, sizeof(err)) && lm_kv_bytes_in_use(kv) == 4 * bb,
		  "the other sharer writes its block in place once it is alone in it");
	CHECK(holds(kv, 0, 3, 40, 42) && holds(kv, 1, 2, 40, 41) && holds(kv, 1, 1, 0, 40),
		  "neither sequence sees the other's writes");

	/* a share at a block boundary copies nothing when written after it */
	CHECK(lm_kv_seq_share(kv, 0, 2, 32) && write_span(kv, 2, 32, 33, 4, err, sizeof(err)) &&
		  lm_kv_bytes_in_use(kv) == 5 * bb && holds(kv, 0, 1, 32, 40),
		  "a prefix of whole blocks is shared and the sharer gets a fresh block after it");

	/* rewinds give back the blocks no one else holds */
	lm_kv_seq_keep(kv, 0, 10);
	CHECK(lm_kv_seq_len(kv, 0) == 10 && lm_kv_bytes_in_use(kv) == 4 * bb,
		  "rewinding sequence 0 to 10 frees its private block only (4 in use)");
	lm_kv_seq_clear(kv, 2);
	CHECK(lm_kv_bytes_in_use(kv) == 3 * bb, "clearing sequence 2 frees its own block (3 in use)");
	CHECK(lm_kv_bytes_held(kv) == 5 * bb, "freed blocks stay in the pool for reuse");

	/* a reservation reuses pool blocks */
	CHECK(write_span(kv, 3, 0, 32, 5, err, sizeof(err)) && lm_kv_bytes_held(kv) == 5 * bb &&
		  lm_kv_bytes_in_use(kv) == 5 * bb, "new positions take free blocks before allocating");

	/* the budget: all or nothing */
	lm_kv_set_budget(kv, 6 * bb);
	{
		lm_kv_span	two[2] = {{2, 0, 20}, {3, 32, 33}};
		int32_t		len3 = lm_kv_seq_len(kv, 3),
					nt3 = kv->n_table[3];

		err[0] = 0;
		CHECK(!lm_kv_reserve(kv, two, 2, err, sizeof(err)) && strstr(err, "limit") != NULL,
			  "spans needing 3 more blocks with room for 1 are refused, naming the limit (%s)", err);
		CHECK(lm_kv_seq_len(kv, 2) == 0 && kv->n_table[2] == 0 && lm_kv_seq_len(kv, 3) == len3 &&
			  kv->n_table[3] == nt3 && lm_kv_bytes_held(kv) == 5 * bb && lm_kv_bytes_in_use(kv) == 5 * bb,
			  "a refused reservation changes nothing");
	}
	{
		lm_kv_span	rw = {3, 0, 48};

		err[0] = 0;
		CHECK(lm_kv_reserve(kv, &rw, 1, err, sizeof(err)) && lm_kv_bytes_held(kv) == 6 * bb,
			  "a rewind's freed blocks count toward its own reservation (%s)", err);
		kv->len[3] = 48;
	}
	CHECK(!write_span(kv, 2, 0, 1, 6, err, sizeof(err)), "the budget holds once reached (%s)", err);
	lm_kv_set_budget(kv, 0);

	/* give back: clear everything, keep a little */
	lm_kv_clear(kv);
	CHECK(lm_kv_bytes_in_use(kv) == 0 && lm_kv_bytes_held(kv) == 6 * bb, "clearing returns every block to the pool");
	CHECK(lm_kv_trim(kv, 2 * bb) == 4 * bb && lm_kv_bytes_held(kv) == 2 * bb, "trim keeps 2 blocks, frees 4");
	CHECK(write_span(kv, 0, 0, 64, 7, err, sizeof(err)) && lm_kv_bytes_held(kv) == 4 * bb && holds(kv, 0, 7, 0, 64),
		  "the pool grows again after a trim");
	CHECK(lm_kv_trim(kv, 0) == 0 && lm_kv_bytes_held(kv) == 4 * bb, "blocks in use are never trimmed");
	lm_kv_clear(kv);
	CHECK(lm_kv_trim(kv, 0) == 4 * bb && lm_kv_bytes_held(kv) == 0, "trim to 0 frees every free block");
	lm_kv_free(kv);
}

/* Evaluate tokens[from..to) of sequence seq, logits of the last; copy them out. */
static int
eval(lm_context *ctx, lm_batch *b, int seq, const int32_t *tok, int from, int to, float *out, int n_vocab,
	 char *err, size_t errlen)
{
	int			rc;

	err[0] = 0;
	lm_batch_clear(b);
	for (int i = from; i < to; i++)
		lm_batch_add(b, tok[i], i, seq, i == to - 1);
	rc = lm_model_forward(ctx, b, err, errlen);
	if (rc == 0 && out)
		memcpy(out, lm_context_logits(ctx, to - from - 1), sizeof(float) * n_vocab);
	return rc;
}

/* On stories260K: a shared prefix changes no logit; the budget refuses a batch cleanly. */
static void
check_model(const char *shared)
{
	char		path[512],
				err[256] = "";
	lm_model   *m;
	lm_context *ctx;
	lm_context_params cp = lm_context_default_params();
	lm_batch   *b = lm_batch_create(64);
	int32_t		tok[40];
	float	   *full,
			   *part;
	int			nv;
	size_t		bb;
	lm_kv	   *kv;

	snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
	m = lm_model_open(path, err, sizeof(err));
	CHECK(m != NULL, "stories260K loads (%s)", err);
	if (!m)
		return;
	CHECK(m->cfg.arch_id == LM_ARCH_LLAMA, "the architecture is resolved once at load (llama)");
	nv = m->cfg.n_vocab;
	bb = lm_kv_block_bytes(m);
	cp.n_seq_max = 3;
	cp.n_batch = 8;				/* several internal steps */
	ctx = lm_context_create(m, &cp, err, sizeof(err));
	full = malloc(sizeof(float) * nv);
	part = malloc(sizeof(float) * nv);
	for (int i = 0; i < 40; i++)
		tok[i] = i == 0 ? 1 : 2 + (i * 37) % (nv - 2);
	kv = lm_context_kv(ctx);

	CHECK(eval(ctx, b, 0, tok, 0, 40, full, nv, err, sizeof(err)) == 0 && lm_kv_bytes_in_use(kv) == 3 * bb,
		  "a 40-token prompt takes 3 blocks (%s)", err);
	CHECK(lm_kv_seq_share(kv, 0, 1, 35) &&
		  eval(ctx, b, 1, tok, 35, 40, part, nv, err, sizeof(err)) == 0 &&
		  memcmp(full, part, sizeof(float) * nv) == 0,
		  "evaluating the last 5 tokens over a shared 35-token prefix gives bit-identical logits");
	CHECK(lm_kv_bytes_in_use(kv) == 4 * bb, "the sharer holds one block of its own (its copy of the partial block)");
	CHECK(eval(ctx, b, 0, tok, 0, 40, part, nv, err, sizeof(err)) == 0 && memcmp(full, part, sizeof(float) * nv) == 0,
		  "the first sequence, evaluated again, is unchanged by the sharer's writes");

	lm_context_set_kv_budget(ctx, lm_kv_bytes_held(kv));
	err[0] = 0;
	CHECK(eval(ctx, b, 2, tok, 0, 40, NULL, nv, err, sizeof(err)) == -1 && strstr(err, "limit") != NULL,
		  "a batch needing blocks over the budget is refused (%s)", err);
	CHECK(lm_kv_seq_len(kv, 2) == 0 && lm_kv_seq_len(kv, 0) == 40 && lm_kv_seq_len(kv, 1) == 40,
		  "the refused batch left every sequence as it was");
	/* two tokens, so attention sums them in the prefill order of the whole prompt */
	CHECK(eval(ctx, b, 0, tok, 38, 40, part, nv, err, sizeof(err)) == 0 && memcmp(full, part, sizeof(float) * nv) == 0,
		  "after the refusal the cache still gives the same logits (%s)", err);
	lm_context_set_kv_budget(ctx, 0);

	lm_kv_clear(kv);
	CHECK(lm_context_trim(ctx, 0) > 0 && lm_kv_bytes_held(kv) == 0,
		  "trimming an idle context frees every block");
	CHECK(eval(ctx, b, 2, tok, 0, 40, part, nv, err, sizeof(err)) == 0 && memcmp(full, part, sizeof(float) * nv) == 0,
		  "after a trim the context works again with the same results");

	free(full);
	free(part);
	lm_batch_free(b);
	lm_context_free(ctx);
	lm_model_free(m);
}

/* A fake device pool: n_max blocks, counted; copies fail while fail_copy is set. */
typedef struct fake_pool
{
	size_t		bytes;			/* block size */
	int			n_max;			/* blocks it can give */
	int			n_out;			/* blocks given and not back */
	int			n_copies;		/* copies made */
	bool		fail_copy;		/* the next copies fail */
} fake_pool;

/* Store alloc: a block while fewer than n_max are out. */
static void *
fake_alloc(void *arg)
{
	fake_pool  *fp = arg;

	if (fp->n_out >= fp->n_max)
		return NULL;
	fp->n_out++;
	return calloc(1, fp->bytes);
}

/* Store free. */
static void
fake_free(void *arg, void *block)
{
	fake_pool  *fp = arg;

	fp->n_out--;
	free(block);
}

/* Store copy: memcpy, or a failure with a message. */
static bool
fake_copy(void *arg, void *dst, const void *src, char *err, size_t errlen)
{
	fake_pool  *fp = arg;

	if (fp->fail_copy)
	{
		snprintf(err, errlen, "fake device copy failed");
		return false;
	}
	fp->n_copies++;
	memcpy(dst, src, fp->bytes);
	return true;
}

/* A cache whose blocks live in a store: taken from it, copied through it, given back. */
static void
check_store(void)
{
	lm_model	m = tiny_model();
	char		err[256] = "";
	lm_kv	   *kv = lm_kv_create(&m, 256, 4, err, sizeof(err));
	fake_pool	fp = {lm_kv_block_bytes(&m), 4, 0, 0, false};
	lm_kv_store st = {fake_alloc, fake_free, fake_copy, &fp, "fake device"};
	lm_kv_span	two[2] = {{2, 0, 17}, {3, 0, 1}};

	if (!kv)
		return;
	CHECK(lm_kv_set_store(kv, &st), "a store is set on an empty cache");
	CHECK(write_span(kv, 0, 0, 20, 1, err, sizeof(err)) && fp.n_out == 2 && holds(kv, 0, 1, 0, 20),
		  "blocks come from the store (2 out)");
	CHECK(!lm_kv_set_store(kv, NULL), "the store cannot change while blocks are held");
	CHECK(lm_kv_seq_share(kv, 0, 1, 20) && fp.n_out == 2, "sharing takes nothing from the store");

	/* a failed copy-on-write copy: refused, nothing changed, the block taken for it is free */
	fp.fail_copy = true;
	CHECK(!write_span(kv, 1, 20, 21, 2, err, sizeof(err)) && strstr(err, "fake device copy failed") != NULL,
		  "a failed copy fails the reservation with the store's message (%s)", err);
	CHECK(lm_kv_seq_len(kv, 1) == 20 && kv->n_table[1] == 2 && lm_kv_k(kv, 1, 0, 17) == lm_kv_k(kv, 0, 0, 17) &&
		  lm_kv_bytes_in_use(kv) == 2 * fp.bytes && holds(kv, 1, 1, 0, 20),
		  "after the failed copy the sequence still shares its blocks (nothing changed)");
	fp.fail_copy = false;
	CHECK(write_span(kv, 1, 20, 21, 2, err, sizeof(err)) && fp.n_copies == 1 &&
		  lm_kv_k(kv, 1, 0, 17) != lm_kv_k(kv, 0, 0, 17) && holds(kv, 1, 1, 0, 20) && holds(kv, 1, 2, 20, 21) &&
		  holds(kv, 0, 1, 0, 20),
		  "copy-on-write copies through the store (%s)", err);

	/* the pool is exhausted: 3 blocks out of 4, two sequences want 3 more */
	CHECK(!lm_kv_reserve(kv, two, 2, err, sizeof(err)) && strstr(err, "fake device KV pool is exhausted") != NULL,
		  "an exhausted store fails the reservation with a clear message (%s)", err);
	CHECK(lm_kv_seq_len(kv, 2) == 0 && kv->n_table[2] == 0 && kv->n_table[3] == 0 && holds(kv, 0, 1, 0, 20) &&
		  lm_kv_bytes_in_use(kv) == 3 * fp.bytes,
		  "after the exhausted store no sequence changed");
	lm_kv_seq_clear(kv, 0);
	CHECK(lm_kv_reserve(kv, two, 1, err, sizeof(err)) && fp.n_out == 4 && kv->n_table[2] == 2,
		  "once a sequence is cleared its blocks serve the next reservation (%s)", err);
	lm_kv_clear(kv);
	lm_kv_trim(kv, 0);
	CHECK(fp.n_out == 0, "trimming gives every free block back to the store");
	CHECK(write_span(kv, 0, 0, 5, 4, err, sizeof(err)) && fp.n_out == 1, "blocks come from the store again");
	lm_kv_free(kv);
	CHECK(fp.n_out == 0, "freeing the cache gives its blocks back to the store");
}

int
main(void)
{
	const char *shared = unit_shared_dir();
	char		probe[512];

	check_pool();
	check_store();
	snprintf(probe, sizeof(probe), "%s/models/stories260K.gguf", shared);
	if (unit_readable(probe))
		check_model(shared);
	else
		printf("# stories260K not found (set LMGEN_SHARED): model checks not run\n");
	return unit_done();
}
