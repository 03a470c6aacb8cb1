/*
 * model.h — a transformer model bound to a GGUF file: its configuration (the
 * blueprint, read from `<arch>.*` metadata) and its weights (pointers into
 * the read-only mapping, never copied).
 *
 * lm_model_load() checks everything the forward pass will rely on: every
 * tensor present, with the exact shape the configuration implies and a type
 * the kernels can multiply, so that the forward pass itself never fails on a
 * bad file.  Errors name the tensor or key and what was expected.
 *
 * Running the model (batches, KV cache, logits) is in context.h.
 */
#ifndef LM_MODEL_H
#define LM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tensor_types.h"

/* How RoPE pairs up the dimensions of a head. */
typedef enum lm_rope_type
{
	LM_ROPE_NORM = 0,			/* adjacent pairs (2i, 2i+1): llama */
	LM_ROPE_NEOX = 2			/* halves (i, i + n_rot/2): qwen2, gemma, phi3 */
} lm_rope_type;

/* Architectures whose forward pass lmgen implements. */
typedef enum lm_arch
{
	LM_ARCH_LLAMA,				/* "llama" (model_llama.c) */
	LM_ARCH_GEMMA3,				/* "gemma3" (model_gemma3.c) */
	LM_ARCH_BERT				/* "bert" encoder (model_bert.c) */
} lm_arch;

/* The blueprint: every size and constant of the network. */
typedef struct lm_model_config
{
	char		arch[32];		/* general.architecture, e.g. "llama" */
	lm_arch		arch_id;		/* the same, resolved once when the model loads */
	int32_t		n_vocab;		/* rows of token_embd */
	int32_t		n_embd;			/* model width (embedding_length) */
	int32_t		n_layer;		/* transformer blocks (block_count) */
	int32_t		n_head;			/* query heads */
	int32_t		n_head_kv;		/* key/value heads (GQA when < n_head) */
	int32_t		n_ff;			/* feed-forward hidden width */
	int32_t		n_ctx_train;	/* context_length the model was trained with */
	int32_t		head_dim_k;		/* key/query width per head (key_length) */
	int32_t		head_dim_v;		/* value width per head (value_length) */
	int32_t		n_rot;			/* rotated dimensions per head (rope.dimension_count) */
	float		rms_eps;		/* RMSNorm epsilon */
	float		rope_freq_base; /* RoPE base frequency (theta) */
	float		rope_freq_scale;	/* 1 / linear scaling factor (1 = none) */
	lm_rope_type rope_type;		/* pairing of rotated dimensions */
	bool		tied_output;	/* logits use token_embd (no output.weight) */
	/* gemma3 only (zero for llama; set by lm_gemma3_read_config): */
	int32_t		n_swa;			/* sliding-window size of local layers (0 = none) */
	int32_t		swa_pattern;	/* layer il is local when il % swa_pattern < swa_pattern - 1 (0 = none) */
	float		rope_freq_base_swa; /* RoPE base of local layers */
	float		final_logit_softcap;	/* logits = cap * tanh(logits / cap) when > 0 */
	float		attn_q_scale;	/* queries are scaled by this before the scores (attention.scale) */
	/* bert only (zero otherwise; set by lm_bert_read_config): */
	bool		encoder;		/* bidirectional attention over whole texts, no KV cache, no logits */
	float		norm_eps;		/* LayerNorm epsilon (attention.layer_norm_epsilon) */
	int32_t		n_token_types;	/* rows of token_types */
	int32_t		pooling;		/* sentence pooling: 1 mean over tokens, 2 first token ([CLS]) */
	bool		normalize;		/* L2-normalise the pooled vector (sentence_transformers.normalize) */
	int32_t		max_seq_len;	/* tokens per text, [CLS] and [SEP] included (tokenizer.wordpiece.max_seq_length) */
} lm_model_config;

/* A weight matrix (or vector) inside the mapping; row-major, ggml's ne[0] = n_cols. */
typedef struct lm_weight
{
	const void *data;			/* first byte, in the GGUF mapping */
	lm_type		type;			/* storage type */
	int64_t		n_cols;			/* elements per row (ggml ne[0]) */
	int64_t		n_rows;			/* rows (ggml ne[1]) */
	size_t		row_bytes;		/* bytes per row */
} lm_weight;

/* One transformer block's weights (shapes as n_rows x n_cols). */
typedef struct lm_layer_weights
{
	const float *attn_norm;		/* (n_embd) F32 */
	lm_weight	wq;				/* (n_head * head_dim_k, n_embd) */
	lm_weight	wk;				/* (n_head_kv * head_dim_k, n_embd) */
	lm_weight	wv;				/* (n_head_kv * head_dim_v, n_embd) */
	lm_weight	wo;				/* (n_embd, n_head * head_dim_v) */
	const float *ffn_norm;		/* (n_embd) F32 */
	lm_weight	ffn_gate;		/* (n_ff, n_embd) */
	lm_weight	ffn_up;			/* (n_ff, n_embd) */
	lm_weight	ffn_down;		/* (n_embd, n_ff) */
	/* gemma3 only (NULL for llama; bound by lm_gemma3_bind): */
	const float *attn_q_norm;	/* (head_dim_k) F32 per-head query RMSNorm */
	const float *attn_k_norm;	/* (head_dim_k) F32 per-head key RMSNorm */
	const float *attn_post_norm;	/* (n_embd) F32 norm of the attention output */
	const float *ffn_post_norm; /* (n_embd) F32 norm of the FFN output */
	/* bert only (NULL otherwise; bound by lm_bert_bind; wq..wo, ffn_up, ffn_down as above): */
	const float *bq;			/* (n_embd) F32 biases of the projections */
	const float *bk;			/* (n_embd) */
	const float *bv;			/* (n_embd) */
	const float *bo;			/* (n_embd) */
	const float *ffn_up_b;		/* (n_ff) */
	const float *ffn_down_b;	/* (n_embd) */
	const float *attn_out_norm; /* (n_embd) LayerNorm after the attention residual: weight */
	const float *attn_out_norm_b;	/* (n_embd) and bias */
	const float *out_norm;		/* (n_embd) LayerNorm after the FFN residual: weight */
	const float *out_norm_b;	/* (n_embd) and bias */
} lm_layer_weights;

/* A loaded model. */
typedef struct lm_model
{
	lm_gguf    *gguf;			/* the file (owned when owns_gguf) */
	bool		owns_gguf;		/* close gguf in lm_model_free */
	lm_model_config cfg;		/* the blueprint */
	lm_weight	tok_embd;		/* (n_vocab, n_embd), any type with a dequantizer */
	lm_layer_weights *layers;	/* (n_layer) */
	const float *output_norm;	/* (n_embd) F32 */
	lm_weight	output;			/* (n_vocab, n_embd); = tok_embd when tied */
	const float *rope_freqs;	/* (n_rot / 2) F32 frequency divisors, or NULL */
	/* bert only: */
	lm_weight	pos_embd;		/* (n_ctx_train, n_embd) absolute position embeddings */
	lm_weight	type_embd;		/* (n_token_types, n_embd) token-type embeddings (type 0 used) */
	const float *embd_norm;		/* (n_embd) LayerNorm of the embeddings: weight */
	const float *embd_norm_b;	/* (n_embd) and bias */
	struct lm_gemm_i16_weight *bert_i16;	/* (n_layer x 6: q, k, v, o, up, down) their 13-bit
										 * integer forms (model_bert.c), made at load; NULL if none */
} lm_model;

/*
 * For the per-architecture binders: bind tensor name of exact shape
 * (n_cols, n_rows), for lm_matmul_rows when matmul, else of any type with a
 * dequantizer; or an F32 vector of n floats.  Errors name the tensor.
 */
extern bool lm_model_bind_matrix(const lm_gguf *g, const char *name, int64_t n_cols, int64_t n_rows,
								 bool matmul, lm_weight *w, char *err, size_t errlen);
extern bool lm_model_bind_vector(const lm_gguf *g, const char *name, int64_t n, const float **out,
								 char *err, size_t errlen);

/* Bind a model to an open GGUF file (borrowed: it must outlive the model). */
extern lm_model *lm_model_load(lm_gguf *g, char *err, size_t errlen);

/* Open, validate and bind a GGUF file; the model owns the file. */
extern lm_model *lm_model_open(const char *path, char *err, size_t errlen);

/* Free the model (and its file when owned); NULL is allowed. */
extern void lm_model_free(lm_model *m);

/* True for architectures whose forward pass lmgen implements (*id set when id is not NULL). */
extern bool lm_model_arch_lookup(const char *arch, lm_arch *id);

/* True for architectures whose forward pass lmgen implements. */
extern bool lm_model_arch_supported(const char *arch);

#endif							/* LM_MODEL_H */
