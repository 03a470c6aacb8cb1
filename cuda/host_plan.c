/*
 * host_plan.c — the CUDA backend's host-only decisions, in plain C so the
 * unit tests check them without a GPU: the KV pool's free list, the check
 * of a device batch (every id, position, row and block address is
 * validated here, so no kernel can read or write outside its buffers), the
 * packing of one step into the int32 arrays the kernels read, the choice
 * between the matrix-vector and the GEMM path, and the attention's split
 * of long contexts.
 */
#include "lmgen_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "kvcache.h"

/* Parse a gemm mode name. */
bool
lmc_gemm_mode_parse(const char *s, lmc_gemm_mode *mode)
{
	if (s == NULL || *s == '\0' || strcmp(s, "f32") == 0)
		*mode = LMC_GEMM_F32;
	else if (strcmp(s, "tf32") == 0)
		*mode = LMC_GEMM_TF32;
	else if (strcmp(s, "bf16") == 0)
		*mode = LMC_GEMM_BF16;
	else if (strcmp(s, "f16") == 0)
		*mode = LMC_GEMM_F16;
	else
		return false;
	return true;
}

/* Name of a gemm mode. */
const char *
lmc_gemm_mode_name(lmc_gemm_mode mode)
{
	switch (mode)
	{
		case LMC_GEMM_F32:
			return "f32";
		case LMC_GEMM_TF32:
			return "tf32";
		case LMC_GEMM_BF16:
			return "bf16";
		case LMC_GEMM_F16:
			return "f16";
	}
	return "unknown";
}

/* Matrix-vector kernel for n tokens when n <= mv_max (itself capped by the kernel's limit). */
bool
lmc_use_matvec(int n, int mv_max)
{
	if (mv_max > LMC_MATVEC_MAX_TOKENS)
		mv_max = LMC_MATVEC_MAX_TOKENS;
	return n >= 1 && n <= mv_max;
}

/* Weight types with a device dequantizer (cuda/dequant.cuh). */
bool
lmc_type_supported(lm_type t)
{
	switch (t)
	{
		case LM_TYPE_F32:
		case LM_TYPE_F16:
		case LM_TYPE_BF16:
		case LM_TYPE_Q4_0:
		case LM_TYPE_Q4_1:
		case LM_TYPE_Q5_0:
		case LM_TYPE_Q5_1:
		case LM_TYPE_Q8_0:
		case LM_TYPE_Q4_K:
		case LM_TYPE_Q5_K:
		case LM_TYPE_Q6_K:
			return true;
		default:
			return false;
	}
}

/* Make n free slots, slot 0 on top of the stack. */
bool
lmc_slots_init(lmc_slots *s, int64_t n)
{
	memset(s, 0, sizeof(*s));
	if (n < 0)
		return false;
	s->free_stack = malloc(sizeof(int64_t) * (size_t) (n > 0 ? n : 1));
	s->used = calloc((size_t) (n > 0 ? n : 1), 1);
	if (!s->free_stack || !s->used)
	{
		lmc_slots_destroy(s);
		return false;
	}
	s->n = n;
	for (int64_t i = 0; i < n; i++)
		s->free_stack[i] = n - 1 - i;
	s->n_free = n;
	return true;
}

/* Free the list's memory. */
void
lmc_slots_destroy(lmc_slots *s)
{
	free(s->free_stack);
	free(s->used);
	memset(s, 0, sizeof(*s));
}

/* Take the slot on top of the free stack. */
int64_t
lmc_slots_take(lmc_slots *s)
{
	int64_t		i;

	if (s->n_free <= 0)
		return -1;
	i = s->free_stack[--s->n_free];
	s->used[i] = 1;
	return i;
}

/* Give a taken slot back. */
bool
lmc_slots_give(lmc_slots *s, int64_t i)
{
	if (i < 0 || i >= s->n || !s->used[i])
		return false;
	s->used[i] = 0;
	s->free_stack[s->n_free++] = i;
	return true;
}

/* Slot of a block address, or -1. */
int64_t
lmc_pool_slot(uint64_t base, size_t block_bytes, int64_t n, uint64_t addr)
{
	uint64_t	off;

	if (block_bytes == 0 || addr < base)
		return -1;
	off = addr - base;
	if (off % block_bytes != 0 || off / block_bytes >= (uint64_t) n)
		return -1;
	return (int64_t) (off / block_bytes);
}

/* Check a batch and re-stride its block table. */
bool
lmc_batch_check(const lm_device_batch *b, const lmc_dims *d, uint64_t *table, char *err, size_t errlen)
{
	int32_t    *need;			/* blocks each row needs */

	if (b == NULL || b->n_tokens < 1 || !b->token || !b->pos || !b->seq_row || !b->out ||
		!b->out_row || !b->logit_row || !b->block_table)
	{
		snprintf(err, errlen, "device batch is empty or lacks an array");
		return false;
	}
	if (b->n_rows < 1 || b->n_rows > d->n_seq)
	{
		snprintf(err, errlen, "device batch has %d sequences, the device model was made for 1 to %d",
				 b->n_rows, d->n_seq);
		return false;
	}
	if (b->max_blocks < 1)
	{
		snprintf(err, errlen, "device batch has %d block table entries per sequence", b->max_blocks);
		return false;
	}
	need = calloc((size_t) b->n_rows, sizeof(int32_t));
	if (!need)
	{
		snprintf(err, errlen, "out of memory checking a device batch");
		return false;
	}
	for (int i = 0; i < b->n_tokens; i++)
	{
		int32_t		r = b->seq_row[i],
					p = b->pos[i];
		int8_t		o = b->out[i];

		if (b->token[i] < 0 || b->token[i] >= d->n_vocab)
			snprintf(err, errlen, "token %d of the device batch has id %d, the vocabulary has %d",
					 i, b->token[i], d->n_vocab);
		else if (p < 0 || p >= d->n_ctx)
			snprintf(err, errlen, "token %d of the device batch is at position %d, the device model holds 0 to %d",
					 i, p, d->n_ctx - 1);
		else if (r < 0 || r >= b->n_rows)
			snprintf(err, errlen, "token %d of the device batch is in sequence row %d of %d", i, r, b->n_rows);
		else if (o != LM_OUT_NONE && o != LM_OUT_LOGITS && o != LM_OUT_HIDDEN)
			snprintf(err, errlen, "token %d of the device batch asks for output kind %d", i, o);
		else if (o != LM_OUT_NONE && b->out_row[i] < 0)
			snprintf(err, errlen, "token %d of the device batch wants outputs but has no hidden row", i);
		else if (o == LM_OUT_LOGITS && b->logit_row[i] < 0)
			snprintf(err, errlen, "token %d of the device batch wants logits but has no logits row", i);
		else if (o != LM_OUT_NONE && (!b->hidden || (o == LM_OUT_LOGITS && (!b->logits || !b->argmax))))
			snprintf(err, errlen, "token %d of the device batch wants outputs the batch has no buffer for", i);
		else
		{
			if (p / LM_KV_BLOCK + 1 > need[r])
				need[r] = p / LM_KV_BLOCK + 1;
			continue;
		}
		free(need);
		return false;
	}
	memset(table, 0, sizeof(uint64_t) * (size_t) b->n_rows * (size_t) d->mb);
	for (int r = 0; r < b->n_rows; r++)
	{
		if (need[r] > b->max_blocks || need[r] > d->mb)
		{
			snprintf(err, errlen, "sequence row %d needs %d KV blocks, the block table holds %d",
					 r, need[r], b->max_blocks < d->mb ? b->max_blocks : d->mb);
			free(need);
			return false;
		}
		for (int j = 0; j < need[r]; j++)
		{
			uint64_t	a = b->block_table[(size_t) r * b->max_blocks + j];

			if (lmc_pool_slot(d->pool_base, d->block_bytes, d->n_blocks, a) < 0)
			{
				snprintf(err, errlen, "KV block %d of sequence row %d (0x%llx) is not a block of this device's pool",
						 j, r, (unsigned long long) a);
				free(need);
				return false;
			}
			table[(size_t) r * d->mb + j] = a;
		}
	}
	free(need);
	return true;
}

/* Entries uploaded per step: token, pos, row, out_tok, lg_hid. */
size_t
lmc_step_upload_ints(int n_batch)
{
	return (size_t) 5 * (size_t) n_batch;
}

/* Entries of a step buffer: the uploaded ones, then out_dst and lg_dst. */
size_t
lmc_step_ints(int n_batch)
{
	return (size_t) 7 * (size_t) n_batch;
}

/* First position a token at pos sees with window n_swa (0 = none), as attention.c. */
static inline int
first_visible(int pos, int n_swa)
{
	return (n_swa > 0 && pos - n_swa + 1 > 0) ? pos - n_swa + 1 : 0;
}

/* Lay out and fill one step. */
void
lmc_step_fill(lmc_step *s, int32_t *buf, int n_batch, const lm_device_batch *b, int i0, int n, int n_swa)
{
	s->i0 = i0;
	s->n = n;
	s->token = buf;
	s->pos = buf + n_batch;
	s->row = buf + 2 * (size_t) n_batch;
	s->out_tok = buf + 3 * (size_t) n_batch;
	s->lg_hid = buf + 4 * (size_t) n_batch;
	s->out_dst = buf + 5 * (size_t) n_batch;
	s->lg_dst = buf + 6 * (size_t) n_batch;
	s->n_out = 0;
	s->n_lg = 0;
	s->vis_max = 1;
	s->vis_max_swa = 1;
	for (int t = 0; t < n; t++)
	{
		int			i = i0 + t,
					p = b->pos[i];

		s->token[t] = b->token[i];
		s->pos[t] = p;
		s->row[t] = b->seq_row[i];
		if (p + 1 > s->vis_max)
			s->vis_max = p + 1;
		if (p - first_visible(p, n_swa) + 1 > s->vis_max_swa)
			s->vis_max_swa = p - first_visible(p, n_swa) + 1;
		if (b->out[i] == LM_OUT_NONE)
			continue;
		if (b->out[i] == LM_OUT_LOGITS)
		{
			s->lg_hid[s->n_lg] = s->n_out;
			s->lg_dst[s->n_lg] = b->logit_row[i];
			s->n_lg++;
		}
		s->out_tok[s->n_out] = t;
		s->out_dst[s->n_out] = b->out_row[i];
		s->n_out++;
	}
}

/* Positions per split and splits for the longest visible range. */
void
lmc_att_split(int vis_max, int n_tok, int n_head, int n_sm, int *split, int *n_splits)
{
	int64_t		want_blocks = 2 * (int64_t) (n_sm > 0 ? n_sm : 1),
				have = (int64_t) (n_tok > 0 ? n_tok : 1) * (n_head > 0 ? n_head : 1);
	int64_t		splits = (want_blocks + have - 1) / have;
	int64_t		sp;

	if (vis_max < 1)
		vis_max = 1;
	if (splits < 1)
		splits = 1;
	/* positions per split: enough splits to fill the device, none below the minimum */
	sp = ((int64_t) vis_max + splits - 1) / splits;
	if (sp < LMC_ATT_MIN_SPLIT)
		sp = LMC_ATT_MIN_SPLIT;
	/* and no more splits than the partials buffer holds */
	if ((vis_max + sp - 1) / sp > LMC_ATT_MAX_SPLITS)
		sp = ((int64_t) vis_max + LMC_ATT_MAX_SPLITS - 1) / LMC_ATT_MAX_SPLITS;
	sp = (sp + LM_KV_BLOCK - 1) / LM_KV_BLOCK * LM_KV_BLOCK;
	*split = (int) sp;
	*n_splits = (int) (((int64_t) vis_max + sp - 1) / sp);
	/* one split: the same launch for every length (a captured step graph stays valid as sequences grow) */
	if (*n_splits == 1)
		*split = LMC_ATT_ONE_SPLIT;
}

/* Query heads per attention block: the largest of 4, 3, 2, 1 that divides group. */
int
lmc_att_heads_per_block(int group)
{
	for (int g = 4; g > 1; g--)
		if (group % g == 0)
			return g;
	return 1;
}

/* Note a step's key; its graph's slot, or -1 with *capture saying whether to capture it now. */
int
lmc_graphs_lookup(lmc_graphs *g, const lmc_graph_key *key, bool *capture)
{
	g->clock++;
	if (memcmp(key, &g->last, sizeof(*key)) == 0)
		g->last_runs++;
	else
	{
		g->last = *key;
		g->last_runs = 1;
	}
	*capture = g->last_runs >= 2;
	for (int i = 0; i < LMC_GRAPHS; i++)
		if (g->exec[i] && memcmp(&g->key[i], key, sizeof(*key)) == 0)
		{
			g->used[i] = g->clock;
			return i;
		}
	return -1;
}

/* An empty slot, else the least recently used one. */
int
lmc_graphs_victim(const lmc_graphs *g)
{
	int			v = 0;

	for (int i = 0; i < LMC_GRAPHS; i++)
	{
		if (!g->exec[i])
			return i;
		if (g->used[i] < g->used[v])
			v = i;
	}
	return v;
}

/* Slot i holds key's graph now. */
void
lmc_graphs_store(lmc_graphs *g, int i, const lmc_graph_key *key, void *exec)
{
	g->key[i] = *key;
	g->exec[i] = exec;
	g->used[i] = g->clock;
}
