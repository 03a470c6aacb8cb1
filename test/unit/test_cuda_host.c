/*
 * test_cuda_host.c — the CUDA backend's host-side planning (cuda/host_plan.c)
 * without a GPU: the KV pool's free list, the check of a device batch (the
 * only guard between a batch and the kernels' memory accesses), a step's
 * packing, the matrix-vector / GEMM choice and the attention's split.
 */
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "kvcache.h"
#include "lmgen_cuda.h"
#include "unit.h"

/* Free list: order, exhaustion, double and foreign frees. */
static void
test_slots(void)
{
	lmc_slots	s;
	int64_t		a,
				b,
				c;

	CHECK(lmc_slots_init(&s, 3), "a free list of 3 slots is made");
	a = lmc_slots_take(&s);
	b = lmc_slots_take(&s);
	c = lmc_slots_take(&s);
	CHECK(a == 0 && b == 1 && c == 2, "slots are taken lowest first (%lld %lld %lld)", (long long) a,
		  (long long) b, (long long) c);
	CHECK(lmc_slots_take(&s) == -1, "an exhausted list gives -1");
	CHECK(lmc_slots_give(&s, 1), "a taken slot goes back");
	CHECK(!lmc_slots_give(&s, 1), "a second free of the same slot is refused");
	CHECK(!lmc_slots_give(&s, 3) && !lmc_slots_give(&s, -1), "slots outside the list are refused");
	CHECK(s.n_free == 1 && lmc_slots_take(&s) == 1, "after refused frees the list holds exactly the freed slot");
	lmc_slots_destroy(&s);
	CHECK(lmc_slots_init(&s, 0) && lmc_slots_take(&s) == -1, "an empty list gives nothing");
	lmc_slots_destroy(&s);
}

/* Pool addresses: block starts only, inside the pool only. */
static void
test_pool_slot(void)
{
	uint64_t	base = 0x7f0000000000ull;

	CHECK(lmc_pool_slot(base, 4096, 10, base) == 0, "the pool's first block is slot 0");
	CHECK(lmc_pool_slot(base, 4096, 10, base + 9 * 4096) == 9, "the last block is slot 9");
	CHECK(lmc_pool_slot(base, 4096, 10, base + 10 * 4096) == -1, "one past the pool is refused");
	CHECK(lmc_pool_slot(base, 4096, 10, base + 100) == -1, "an address inside a block is refused");
	CHECK(lmc_pool_slot(base, 4096, 10, base - 4096) == -1, "an address below the pool is refused");
	CHECK(lmc_pool_slot(base, 4096, 10, 0) == -1, "address 0 is refused");
}

/* A device batch of two sequences: 3 prompt tokens of row 0, one decode token of row 1. */
typedef struct fixture
{
	int32_t		token[4],
				pos[4],
				row[4],
				out_row[4],
				logit_row[4];
	int8_t		out[4];
	uint64_t	table[2 * 4];
	float		hidden[4 * 8];
	float		logits[4 * 8];
	int32_t		argmax[4];
	lm_device_batch b;
	lmc_dims	d;
} fixture;

/* Fill the fixture. */
static void
fixture_init(fixture *f)
{
	static const int32_t tok[4] = {5, 6, 7, 9},
				pos[4] = {0, 1, 2, 20},
				row[4] = {0, 0, 0, 1},
				orow[4] = {-1, -1, 0, 1},
				lrow[4] = {-1, -1, 0, 1};
	static const int8_t out[4] = {LM_OUT_NONE, LM_OUT_NONE, LM_OUT_LOGITS, LM_OUT_LOGITS};

	memset(f, 0, sizeof(*f));
	memcpy(f->token, tok, sizeof(tok));
	memcpy(f->pos, pos, sizeof(pos));
	memcpy(f->row, row, sizeof(row));
	memcpy(f->out_row, orow, sizeof(orow));
	memcpy(f->logit_row, lrow, sizeof(lrow));
	memcpy(f->out, out, sizeof(out));
	f->d.n_vocab = 10;
	f->d.n_ctx = 64;
	f->d.n_seq = 4;
	f->d.n_batch = 4;
	f->d.mb = 4;
	f->d.pool_base = 0x10000;
	f->d.block_bytes = 0x100;
	f->d.n_blocks = 8;
	/* row 0: block 3; row 1: blocks 1, 2 (position 20 is in block 1) */
	f->table[0] = 0x10000 + 3 * 0x100;
	f->table[4] = 0x10000 + 1 * 0x100;
	f->table[5] = 0x10000 + 2 * 0x100;
	f->b.n_tokens = 4;
	f->b.token = f->token;
	f->b.pos = f->pos;
	f->b.seq_row = f->row;
	f->b.out = f->out;
	f->b.out_row = f->out_row;
	f->b.logit_row = f->logit_row;
	f->b.n_rows = 2;
	f->b.max_blocks = 4;
	f->b.block_table = f->table;
	f->b.hidden = f->hidden;
	f->b.logits = f->logits;
	f->b.argmax = f->argmax;
}

/* Check a fixture; true when accepted. */
static bool
check(fixture *f, char *err, size_t errlen)
{
	uint64_t	tbl[4 * 4];

	return lmc_batch_check(&f->b, &f->d, tbl, err, errlen);
}

/* The batch check accepts a good batch and refuses each kind of bad one. */
static void
test_batch_check(void)
{
	fixture		f;
	char		err[256];
	uint64_t	tbl[2 * 4];

	fixture_init(&f);
	CHECK(lmc_batch_check(&f.b, &f.d, tbl, err, sizeof(err)), "a good batch is accepted");
	CHECK(tbl[0] == 0x10300 && tbl[1] == 0 && tbl[4] == 0x10100 && tbl[5] == 0x10200 && tbl[6] == 0,
		  "the block table is re-strided with unneeded entries 0");

	fixture_init(&f);
	f.token[1] = 10;
	CHECK(!check(&f, err, sizeof(err)) && strstr(err, "vocabulary"), "a token id past the vocabulary is refused (%s)", err);
	fixture_init(&f);
	f.token[1] = -1;
	CHECK(!check(&f, err, sizeof(err)), "a negative token id is refused");
	fixture_init(&f);
	f.pos[3] = 64;
	CHECK(!check(&f, err, sizeof(err)) && strstr(err, "position"), "a position past n_ctx is refused (%s)", err);
	fixture_init(&f);
	f.row[0] = 2;
	CHECK(!check(&f, err, sizeof(err)) && strstr(err, "row"), "a row past n_rows is refused (%s)", err);
	fixture_init(&f);
	f.table[5] = 0;
	CHECK(!check(&f, err, sizeof(err)) && strstr(err, "pool"), "a missing block the token needs is refused (%s)", err);
	fixture_init(&f);
	f.table[4] = 0x10000 + 8 * 0x100;
	CHECK(!check(&f, err, sizeof(err)), "a block past the pool is refused");
	fixture_init(&f);
	f.table[0] = 0x10000 + 0x80;
	CHECK(!check(&f, err, sizeof(err)), "a block address inside a block is refused");
	fixture_init(&f);
	f.out[0] = LM_OUT_LOGITS;
	CHECK(!check(&f, err, sizeof(err)) && strstr(err, "row"), "logits without a row are refused (%s)", err);
	fixture_init(&f);
	f.out[0] = 7;
	CHECK(!check(&f, err, sizeof(err)), "an unknown output kind is refused");
	fixture_init(&f);
	f.b.logits = NULL;
	CHECK(!check(&f, err, sizeof(err)), "logits without a logits buffer are refused");
	fixture_init(&f);
	f.b.n_rows = 5;
	CHECK(!check(&f, err, sizeof(err)), "more rows than the model's sequences are refused");
	fixture_init(&f);
	f.b.max_blocks = 1;
	f.pos[3] = 2;
	f.table[1] = 0x10000 + 1 * 0x100;	/* row 1's first entry, with stride 1 */
	CHECK(check(&f, err, sizeof(err)), "a narrower caller table is read with its own stride (%s)", err);
	fixture_init(&f);
	f.b.max_blocks = 1;
	CHECK(!check(&f, err, sizeof(err)) && strstr(err, "needs"), "a position beyond the caller's table is refused (%s)", err);
	fixture_init(&f);
	f.d.mb = 1;
	CHECK(!check(&f, err, sizeof(err)), "a position beyond the device table is refused");
}

/* A step lists its tokens, outputs and logits rows. */
static void
test_step_fill(void)
{
	fixture		f;
	int32_t		buf[7 * 4];
	lmc_step	s;

	fixture_init(&f);
	f.out[0] = LM_OUT_HIDDEN;
	f.out_row[0] = 0;
	f.out_row[2] = 1;
	f.out_row[3] = 2;
	CHECK(lmc_step_ints(4) == 28 && lmc_step_upload_ints(4) == 20, "a step buffer holds 7 arrays, 5 uploaded");
	lmc_step_fill(&s, buf, 4, &f.b, 0, 4, 0);
	CHECK(s.n == 4 && s.token[3] == 9 && s.pos[3] == 20 && s.row[3] == 1, "tokens, positions and rows are copied");
	CHECK(s.n_out == 3 && s.out_tok[0] == 0 && s.out_tok[1] == 2 && s.out_tok[2] == 3,
		  "hidden outputs list their tokens in order");
	CHECK(s.out_dst[0] == 0 && s.out_dst[1] == 1 && s.out_dst[2] == 2, "hidden outputs keep their rows");
	CHECK(s.n_lg == 2 && s.lg_hid[0] == 1 && s.lg_hid[1] == 2 && s.lg_dst[0] == 0 && s.lg_dst[1] == 1,
		  "logits rows point at their hidden outputs and keep their rows");
	CHECK(s.vis_max == 21 && s.vis_max_swa == 21, "the longest visible range is position 20's 21");
	lmc_step_fill(&s, buf, 4, &f.b, 0, 4, 8);
	CHECK(s.vis_max == 21 && s.vis_max_swa == 8, "a window of 8 caps the windowed range");
	lmc_step_fill(&s, buf, 4, &f.b, 2, 2, 0);
	CHECK(s.n == 2 && s.token[0] == 7 && s.n_out == 2 && s.out_tok[0] == 0 && s.lg_dst[1] == 1,
		  "a later step indexes its own tokens");
}

/* Matrix-vector choice and attention split. */
static void
test_choices(void)
{
	int			split,
				n_splits;
	lmc_gemm_mode m;

	CHECK(lmc_use_matvec(1, 8) && lmc_use_matvec(8, 8) && !lmc_use_matvec(9, 8), "up to 8 tokens take the matrix-vector path");
	CHECK(!lmc_use_matvec(1, 0), "a limit of 0 sends every product to the GEMM");
	CHECK(!lmc_use_matvec(9, 100), "the limit is capped at the kernel's token count");
	CHECK(lmc_gemm_mode_parse(NULL, &m) && m == LMC_GEMM_F32, "no mode means f32");
	CHECK(lmc_gemm_mode_parse("bf16", &m) && m == LMC_GEMM_BF16, "bf16 parses");
	CHECK(!lmc_gemm_mode_parse("fp8", &m), "an unknown mode is refused");
	CHECK(lmc_type_supported(LM_TYPE_Q4_K) && lmc_type_supported(LM_TYPE_Q4_1) && !lmc_type_supported(LM_TYPE_Q2_K),
		  "types with device dequantizers are known");

	lmc_att_split(128, 1, 9, 132, &split, &n_splits);
	CHECK(split == 64 && n_splits == 2, "one decode token of 128 positions: 2 splits of 64 (%d x %d)", n_splits, split);
	lmc_att_split(128, 256, 9, 132, &split, &n_splits);
	CHECK(n_splits == 1 && split >= 128, "256 tokens fill the device without splitting (%d x %d)", n_splits, split);
	lmc_att_split(100000, 1, 4, 132, &split, &n_splits);
	CHECK(n_splits <= LMC_ATT_MAX_SPLITS && (int64_t) split * n_splits >= 100000 && split % LM_KV_BLOCK == 0,
		  "a long context stays within the partials buffer (%d x %d)", n_splits, split);
	{
		bool		all = true;

		for (int vis = 1; vis < 5000; vis += 37)
		{
			lmc_att_split(vis, 3, 4, 132, &split, &n_splits);
			if (!(n_splits >= 1 && n_splits <= LMC_ATT_MAX_SPLITS && (int64_t) split * n_splits >= vis &&
				  (int64_t) split * (n_splits - 1) < vis))
				all = false;
		}
		CHECK(all, "every visible range from 1 to 5000 is covered by splits, none of them empty");
	}
	CHECK(lmc_att_heads_per_block(3) == 3 && lmc_att_heads_per_block(4) == 4 && lmc_att_heads_per_block(8) == 4 &&
		  lmc_att_heads_per_block(6) == 3 && lmc_att_heads_per_block(5) == 1 && lmc_att_heads_per_block(1) == 1,
		  "an attention block takes the largest of 4, 3, 2, 1 query heads dividing the group (SmolLM2 3, Gemma 3 4)");
}

/* The step graphs' bookkeeping: capture on a repeated key, find kept graphs, replace the least recently used. */
static void
test_graphs(void)
{
	static lmc_graphs g;		/* zeroed: no graph, no previous key */
	lmc_graph_key k1 = {1, {LMC_ATT_ONE_SPLIT, LMC_ATT_ONE_SPLIT}, {1, 1}},
				k2 = {2, {LMC_ATT_ONE_SPLIT, LMC_ATT_ONE_SPLIT}, {1, 1}},
				k1s = {1, {64, LMC_ATT_ONE_SPLIT}, {3, 1}};
	bool		capture = true;
	bool		alternating = true;
	char		handles[LMC_GRAPHS + 1];

	CHECK(lmc_graphs_lookup(&g, &k1, &capture) == -1 && !capture, "a key seen once is launched directly, not captured");
	CHECK(lmc_graphs_lookup(&g, &k1, &capture) == -1 && capture, "the same key on the next step is captured");
	CHECK(lmc_graphs_victim(&g) == 0, "the first graph goes to the first empty slot");
	lmc_graphs_store(&g, 0, &k1, &handles[0]);
	CHECK(lmc_graphs_lookup(&g, &k1, &capture) == 0, "its steps then replay the kept graph");
	CHECK(lmc_graphs_lookup(&g, &k1s, &capture) == -1 && !capture,
		  "another split of the same token count is another key, seen once");
	for (int i = 0; i < 6; i++)
	{
		(void) lmc_graphs_lookup(&g, i % 2 ? &k1s : &k2, &capture);
		if (capture)
			alternating = false;
	}
	CHECK(alternating, "keys that change every step (prompt chunks of varying sizes) are never captured");

	/* fill every slot (key n = 10 + i), then use all but slot 5 again: slot 5 is the one replaced */
	for (int i = 1; i < LMC_GRAPHS; i++)
	{
		lmc_graph_key k = {10 + i, {LMC_ATT_ONE_SPLIT, LMC_ATT_ONE_SPLIT}, {1, 1}};
		int			v = lmc_graphs_victim(&g);

		lmc_graphs_store(&g, v, &k, &handles[i]);
	}
	CHECK(lmc_graphs_victim(&g) == 0, "with every slot full the least recently used is replaced (slot 0)");
	for (int i = 0; i < LMC_GRAPHS; i++)
		if (i != 5)
		{
			lmc_graph_key k = {i == 0 ? 1 : 10 + i, {LMC_ATT_ONE_SPLIT, LMC_ATT_ONE_SPLIT}, {1, 1}};

			(void) lmc_graphs_lookup(&g, &k, &capture);
		}
	CHECK(lmc_graphs_victim(&g) == 5, "after the others are used again, slot 5 is the least recently used");
}

/* Run the checks. */
int
main(void)
{
	test_slots();
	test_pool_slot();
	test_batch_check();
	test_step_fill();
	test_choices();
	test_graphs();
	return unit_done();
}
