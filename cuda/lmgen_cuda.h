/*
 * lmgen_cuda.h — internal declarations of the CUDA backend (cuda/): the
 * host-only planning code (host_plan.c, plain C, unit-tested on the CPU),
 * the tables the host computes with the engine's own functions
 * (host_tables.c), and the kernel launchers of the .cu files.
 *
 * Nothing here is part of the engine's contract: that is device.h.  The
 * backend exports exactly two symbols (cuda/exports.map): the device table
 * LM_DEVICE_OPS_SYMBOL and a debug entry for the device check program
 * (LMC_DEBUG_SYMBOL, dequantization on the device).
 */
#ifndef LMGEN_CUDA_H
#define LMGEN_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Debug entry exported beside the device table (test/gpu only). */
#define LMC_DEBUG_SYMBOL "lmgen_cuda_debug_ops"

/* Largest key/value head width the attention kernel holds (floats). */
#define LMC_MAX_HEAD_DIM 256

/* Most splits of one token's visible positions in the attention (flash-decoding). */
#define LMC_ATT_MAX_SPLITS 32

/* Split length given when one split covers every position (a multiple of LM_KV_BLOCK, beyond any context). */
#define LMC_ATT_ONE_SPLIT (1 << 24)

/* Smallest split of visible positions (a multiple of LM_KV_BLOCK). */
#define LMC_ATT_MIN_SPLIT 64

/* Tokens at most per call of the fused dequantize + matrix-vector kernel. */
#define LMC_MATVEC_MAX_TOKENS 8

/* Rows of logits computed at once (scratch of LMC_LOGIT_CHUNK x n_vocab floats). */
#define LMC_LOGIT_CHUNK 64

/* How the GEMM path multiplies (one switch: LMGEN_CUDA_GEMM=f32|tf32|bf16|f16). */
typedef enum lmc_gemm_mode
{
	LMC_GEMM_F32 = 0,			/* F32 inputs, F32 compute, no TF32 (closest to the CPU) */
	LMC_GEMM_TF32,				/* F32 inputs, TF32 tensor cores */
	LMC_GEMM_BF16,				/* BF16 weight copies and activations, F32 accumulation */
	LMC_GEMM_F16				/* FP16 weight copies and activations, F32 accumulation */
} lmc_gemm_mode;

/* Parse a gemm mode name (NULL or "" = f32); false for an unknown name. */
extern bool lmc_gemm_mode_parse(const char *s, lmc_gemm_mode *mode);

/* Name of a gemm mode. */
extern const char *lmc_gemm_mode_name(lmc_gemm_mode mode);

/* True when a product over n tokens takes the fused matrix-vector kernel (n <= mv_max, mv_max <= LMC_MATVEC_MAX_TOKENS). */
extern bool lmc_use_matvec(int n, int mv_max);

/* True for weight types the kernels dequantize. */
extern bool lmc_type_supported(lm_type t);

/*
 * The KV pool's free list: n slots, a stack of free ones and a flag per
 * slot, so that a double free or a foreign address is ignored, never
 * corrupting the stack.
 */
typedef struct lmc_slots
{
	int64_t		n;				/* slots */
	int64_t		n_free;			/* entries in free_stack */
	int64_t    *free_stack;		/* (n) free slot numbers, next taken last */
	uint8_t    *used;			/* (n) 1 while taken */
} lmc_slots;

/* Make n free slots; false when out of memory. */
extern bool lmc_slots_init(lmc_slots *s, int64_t n);

/* Free the list's memory. */
extern void lmc_slots_destroy(lmc_slots *s);

/* Take a slot (the lowest free one first on a fresh list); -1 when none is free. */
extern int64_t lmc_slots_take(lmc_slots *s);

/* Give slot i back; false (nothing changed) when i is out of range or not taken. */
extern bool lmc_slots_give(lmc_slots *s, int64_t i);

/* Slot of address addr in a pool at base of n blocks of block_bytes; -1 when addr is not a block start. */
extern int64_t lmc_pool_slot(uint64_t base, size_t block_bytes, int64_t n, uint64_t addr);

/* Sizes a batch is checked against (fixed at upload). */
typedef struct lmc_dims
{
	int			n_vocab;		/* token ids below this */
	int			n_ctx;			/* positions below this */
	int			n_seq;			/* rows at most */
	int			n_batch;		/* tokens per step at most */
	int			mb;				/* block table entries per row on the device: ceil(n_ctx / LM_KV_BLOCK) */
	uint64_t	pool_base;		/* KV pool's device address */
	size_t		block_bytes;	/* bytes per block */
	int64_t		n_blocks;		/* blocks in the pool */
} lmc_dims;

/*
 * Check a whole batch (ids, positions, rows, outputs, and that every block
 * a token reads or writes is a block of this pool) and write its block table
 * re-strided to dims->mb entries per row into table (n_rows * mb entries;
 * entries a row does not need are 0).  False with a message.
 */
extern bool lmc_batch_check(const lm_device_batch *b, const lmc_dims *d, uint64_t *table,
							char *err, size_t errlen);

/* One step (tokens [i0, i0 + n) of a checked batch) as the kernels take it. */
typedef struct lmc_step
{
	int			i0;				/* first batch token */
	int			n;				/* tokens */
	int			n_out;			/* tokens with out != NONE */
	int			n_lg;			/* tokens with LM_OUT_LOGITS */
	int			vis_max;		/* most positions a token sees (no window) */
	int			vis_max_swa;	/* most positions a token sees on a windowed layer */
	/* the int32 arrays below lie in one buffer of lmc_step_ints(n_batch) entries, uploaded at once */
	int32_t    *token;			/* (n) token ids */
	int32_t    *pos;			/* (n) positions */
	int32_t    *row;			/* (n) sequence rows */
	int32_t    *out_tok;		/* (n_out) step token of each hidden output, in token order */
	int32_t    *lg_hid;			/* (n_lg) hidden output (index into out_tok) of each logits row */
	int32_t    *out_dst;		/* (n_out) host hidden row of each output (not uploaded) */
	int32_t    *lg_dst;			/* (n_lg) host logits row of each logits row (not uploaded) */
} lmc_step;

/* int32 entries of a step buffer for n_batch tokens (the uploaded part comes first). */
extern size_t lmc_step_ints(int n_batch);

/* int32 entries of a step buffer that are uploaded. */
extern size_t lmc_step_upload_ints(int n_batch);

/* Lay out a step over buf (lmc_step_ints(n_batch) entries) and fill it from tokens [i0, i0+n) of a checked batch. */
extern void lmc_step_fill(lmc_step *s, int32_t *buf, int n_batch, const lm_device_batch *b, int i0, int n, int n_swa);

/*
 * Split of a token's visible positions for the attention: positions per
 * split (a multiple of LM_KV_BLOCK, at least LMC_ATT_MIN_SPLIT) and the
 * number of splits (1..LMC_ATT_MAX_SPLITS) for the longest, chosen so that
 * n_tok * n_head * splits blocks fill the device's n_sm multiprocessors.
 */
extern void lmc_att_split(int vis_max, int n_tok, int n_head, int n_sm, int *split, int *n_splits);

/* Captured step graphs kept per model (least recently used replaced). */
#define LMC_GRAPHS 16

/* What a captured step depends on besides the model: its token count and the attention's splits. */
typedef struct lmc_graph_key
{
	int			n;				/* tokens */
	int			split[2];		/* positions per split: global layers, windowed layers */
	int			n_splits[2];	/* splits */
} lmc_graph_key;

/*
 * A model's step graphs, as host_plan.c manages them: the key and the
 * backend's graph handle (NULL: an empty slot) of each slot, the step
 * clock of its last use, and the previous step's key with how many steps
 * in a row had it.
 */
typedef struct lmc_graphs
{
	lmc_graph_key key[LMC_GRAPHS];
	void	   *exec[LMC_GRAPHS];
	uint64_t	used[LMC_GRAPHS];
	uint64_t	clock;			/* steps looked up */
	lmc_graph_key last;			/* key of the previous step */
	int			last_runs;		/* steps in a row with that key */
} lmc_graphs;

/*
 * Note a step with this key: the slot of its graph when one is kept (its
 * use recorded), else -1, with *capture true when the key repeats the
 * previous step's (steady decode: capture it now) and false for a new key
 * (launch directly: steps mixing prompt chunks of changing sizes never pay
 * for captures).
 */
extern int	lmc_graphs_lookup(lmc_graphs *g, const lmc_graph_key *key, bool *capture);

/* The slot a new graph goes to: an empty one, else the least recently used (whose handle the caller frees). */
extern int	lmc_graphs_victim(const lmc_graphs *g);

/* Slot i now holds the graph exec of key, used at this step. */
extern void lmc_graphs_store(lmc_graphs *g, int i, const lmc_graph_key *key, void *exec);

/* Query heads one attention block takes (they share a KV head): the largest of 4, 3, 2, 1 dividing group. */
extern int	lmc_att_heads_per_block(int group);

/* Host tables made with the engine's own code (host_tables.c). */

/* cos/sin of every position 0..n_ctx-1 for RoPE base `base` (n_ctx * n_rot floats), exactly lm_op_rope_angles's. */
extern bool lmc_rope_table(const lm_model *m, int n_ctx, float base, float *out);

/* gemma3's table fp16(gelu_tanh(x)) for every fp16 x (65536 entries). */
extern const uint16_t *lmc_gelu_table(void);

/* KV block bytes of model m (kvcache.h's). */
extern size_t lmc_kv_block_bytes(const lm_model *m);

/* Debug entry of the device check (test/gpu): dequantize on the device. */
typedef struct lmc_debug_ops
{
	int			abi;			/* LM_DEVICE_ABI */

	/*
	 * Dequantize n_rows rows of n_cols elements of type t (host data,
	 * row_bytes apart) on the device into out (host, n_rows * n_cols
	 * floats); false with a message.
	 */
	bool		(*dequantize) (lm_device *dev, lm_type t, const void *data, int64_t n_rows,
							   int64_t n_cols, size_t row_bytes, float *out, char *err, size_t errlen);

	/* Name of the GEMM mode and matrix-vector limit a model was uploaded with, e.g. "f32, matvec <= 8". */
	const char *(*describe) (const lm_device_model *dm);

	/*
	 * Device time per op class and host time per step since the last call
	 * (models uploaded with LMGEN_CUDA_PROFILE set; empty otherwise), as
	 * lines of text into out; resets the totals.
	 */
	void		(*profile) (lm_device_model *dm, char *out, size_t len);
} lmc_debug_ops;

#ifdef __cplusplus
}
#endif

#endif							/* LMGEN_CUDA_H */
