/*
 * model.c — reading a model's configuration from GGUF metadata and binding
 * (and validating) its weights.
 *
 * Nothing here touches tensor data beyond one embedding row used as a dry
 * run of the dequantizer: weights stay in the shared read-only mapping.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_bert.h"
#include "model_gemma3.h"
#include "model_info.h"
#include "quant.h"

#define MODEL_MAX_LAYERS 4096
#define MODEL_MAX_DIM (1 << 20)

/* Names of the architectures lmgen implements, by lm_arch. */
static const char *const arch_names[] = {
	[LM_ARCH_LLAMA] = "llama",
	[LM_ARCH_GEMMA3] = "gemma3",
	[LM_ARCH_BERT] = "bert",
};

/* Resolve an architecture name. */
bool
lm_model_arch_lookup(const char *arch, lm_arch *id)
{
	for (size_t i = 0; i < sizeof(arch_names) / sizeof(arch_names[0]); i++)
		if (strcmp(arch, arch_names[i]) == 0)
		{
			if (id)
				*id = (lm_arch) i;
			return true;
		}
	return false;
}

/* True for architectures whose forward pass lmgen implements. */
bool
lm_model_arch_supported(const char *arch)
{
	return lm_model_arch_lookup(arch, NULL);
}

/* Read "<arch>.<suffix>" as an int in [lo, hi]; def when absent and not required. */
static bool
get_int(const lm_gguf *g, const char *arch, const char *suffix, bool required, int64_t def,
		int64_t lo, int64_t hi, int32_t *out, char *err, size_t errlen)
{
	char		key[128];
	int64_t		v;
	const lm_gguf_kv *kv;

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	kv = lm_gguf_find(g, key);
	if (kv == NULL)
	{
		if (required)
		{
			snprintf(err, errlen, "model metadata lacks \"%s\"", key);
			return false;
		}
		v = def;
	}
	else if (kv->type == LM_GGUF_ARRAY)
	{
		/* Per-layer arrays are accepted only when every entry is the same. */
		int64_t		first = 0,
					e;

		if (kv->arr_n == 0 || !lm_gguf_arr_i64(kv, 0, &first))
		{
			snprintf(err, errlen, "model metadata \"%s\" is an empty or non-integer array", key);
			return false;
		}
		for (uint64_t i = 1; i < kv->arr_n; i++)
			if (!lm_gguf_arr_i64(kv, i, &e) || e != first)
			{
				snprintf(err, errlen, "model metadata \"%s\" varies per layer, which is not supported", key);
				return false;
			}
		v = first;
	}
	else if (!lm_gguf_get_i64(g, key, &v))
	{
		snprintf(err, errlen, "model metadata \"%s\" is not an integer", key);
		return false;
	}
	if (v < lo || v > hi)
	{
		snprintf(err, errlen, "model metadata \"%s\" = %lld is out of range [%lld, %lld]",
				 key, (long long) v, (long long) lo, (long long) hi);
		return false;
	}
	*out = (int32_t) v;
	return true;
}

/* Read "<arch>.<suffix>" as a float; def when absent. */
static bool
get_float(const lm_gguf *g, const char *arch, const char *suffix, double def, float *out,
		  char *err, size_t errlen)
{
	char		key[128];
	double		v;

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	if (lm_gguf_find(g, key) == NULL)
		v = def;
	else if (!lm_gguf_get_f64(g, key, &v) || !isfinite(v))
	{
		snprintf(err, errlen, "model metadata \"%s\" is not a finite number", key);
		return false;
	}
	*out = (float) v;
	return true;
}

/* Fill the configuration from metadata (tensor-derived fields come later). */
static bool
read_config(const lm_gguf *g, lm_model_config *c, char *err, size_t errlen)
{
	lm_gguf_str s;
	const char *a;
	char		key[128];
	float		scale;

	memset(c, 0, sizeof(*c));
	if (!lm_gguf_get_str(g, "general.architecture", &s))
	{
		snprintf(err, errlen, "model metadata lacks \"general.architecture\"");
		return false;
	}
	lm_gguf_str_copy(s, c->arch, sizeof(c->arch));
	a = c->arch;
	if (!lm_model_arch_lookup(a, &c->arch_id))
	{
		snprintf(err, errlen, "model architecture \"%s\" is not supported (supported: llama, gemma3, bert)", a);
		return false;
	}
	if (!get_int(g, a, "embedding_length", true, 0, 1, MODEL_MAX_DIM, &c->n_embd, err, errlen) ||
		!get_int(g, a, "block_count", true, 0, 1, MODEL_MAX_LAYERS, &c->n_layer, err, errlen) ||
		!get_int(g, a, "attention.head_count", true, 0, 1, c->n_embd, &c->n_head, err, errlen) ||
		!get_int(g, a, "attention.head_count_kv", false, c->n_head, 1, c->n_head, &c->n_head_kv, err, errlen) ||
		!get_int(g, a, "feed_forward_length", true, 0, 1, MODEL_MAX_DIM, &c->n_ff, err, errlen) ||
		!get_int(g, a, "context_length", false, 2048, 1, 1 << 24, &c->n_ctx_train, err, errlen) ||
		!get_int(g, a, "attention.key_length", false, c->n_embd / c->n_head, 1, MODEL_MAX_DIM,
				 &c->head_dim_k, err, errlen) ||
		!get_int(g, a, "attention.value_length", false, c->n_embd / c->n_head, 1, MODEL_MAX_DIM,
				 &c->head_dim_v, err, errlen) ||
		!get_int(g, a, "rope.dimension_count", false, c->head_dim_k, 2, c->head_dim_k,
				 &c->n_rot, err, errlen) ||
		!get_float(g, a, "attention.layer_norm_rms_epsilon", 1e-5, &c->rms_eps, err, errlen) ||
		!get_float(g, a, "rope.freq_base", 10000.0, &c->rope_freq_base, err, errlen))
		return false;
	if (c->n_head % c->n_head_kv != 0)
	{
		snprintf(err, errlen, "model has %d query heads, not a multiple of its %d key/value heads",
				 c->n_head, c->n_head_kv);
		return false;
	}
	if (c->n_rot % 2 != 0)
	{
		snprintf(err, errlen, "%s.rope.dimension_count = %d must be even", a, c->n_rot);
		return false;
	}
	if (!(c->rms_eps > 0.0f) || !(c->rope_freq_base > 0.0f))
	{
		snprintf(err, errlen, "model has a non-positive RMS epsilon or RoPE base");
		return false;
	}

	/* RoPE scaling: none or linear; YaRN and others are refused. */
	c->rope_freq_scale = 1.0f;
	snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
	if (lm_gguf_get_str(g, key, &s) && !lm_gguf_str_eq(s, "none"))
	{
		if (!lm_gguf_str_eq(s, "linear"))
		{
			char		t[32];

			lm_gguf_str_copy(s, t, sizeof(t));
			snprintf(err, errlen, "RoPE scaling type \"%s\" is not supported (only none and linear)", t);
			return false;
		}
		if (!get_float(g, a, "rope.scaling.factor", 1.0, &scale, err, errlen))
			return false;
		if (scale > 0.0f)
			c->rope_freq_scale = 1.0f / scale;
	}
	else
	{
		if (!get_float(g, a, "rope.scale_linear", 1.0, &scale, err, errlen))
			return false;
		if (scale > 0.0f)
			c->rope_freq_scale = 1.0f / scale;
	}
	c->rope_type = LM_ROPE_NORM;
	/* gemma3: NEOX RoPE, sliding window, local RoPE base (model_gemma3.c) */
	if (c->arch_id == LM_ARCH_GEMMA3 && !lm_gemma3_read_config(g, c, err, errlen))
		return false;
	/* bert: LayerNorm epsilon, pooling, sequence length (model_bert.c) */
	if (c->arch_id == LM_ARCH_BERT && !lm_bert_read_config(g, c, err, errlen))
		return false;
	return true;
}

/* What a bound tensor is used for, which decides the types it may have. */
typedef enum bind_kind
{
	BIND_MATMUL,				/* multiplied by lm_matmul_rows */
	BIND_F32,					/* read directly as floats */
	BIND_ANY					/* rows dequantized (embedding lookup) */
} bind_kind;

/* Bind a tensor of exact shape (n_cols, n_rows); optional ones may be absent. */
static bool
bind(const lm_gguf *g, const char *name, int64_t n_cols, int64_t n_rows, bind_kind kind,
	 bool optional, lm_weight *w, char *err, size_t errlen)
{
	const lm_gguf_tensor *t = lm_gguf_find_tensor(g, name);
	const lm_type_traits *tr;

	memset(w, 0, sizeof(*w));
	if (t == NULL)
	{
		if (optional)
			return true;
		snprintf(err, errlen, "model file lacks tensor \"%s\"", name);
		return false;
	}
	for (uint32_t d = 2; d < LM_GGUF_MAX_DIMS; d++)
		if (t->ne[d] != 1)
		{
			snprintf(err, errlen, "tensor \"%s\" has %u dimensions, expected at most 2", name, t->n_dims);
			return false;
		}
	if (t->ne[0] != n_cols || t->ne[1] != n_rows)
	{
		snprintf(err, errlen, "tensor \"%s\" has shape [%lld, %lld], expected [%lld, %lld]",
				 name, (long long) t->ne[0], (long long) t->ne[1],
				 (long long) n_cols, (long long) n_rows);
		return false;
	}
	tr = lm_type_traits_get(t->type);
	if (tr == NULL || n_cols % tr->block_size != 0)
	{
		snprintf(err, errlen, "tensor \"%s\" has type %s with a row length %lld that is not a whole number of blocks",
				 name, lm_type_name(t->type), (long long) n_cols);
		return false;
	}
	if (kind == BIND_MATMUL && (!lm_kernels_supported(t->type) || lm_act_row_size(t->type, n_cols) == 0))
	{
		snprintf(err, errlen, "tensor \"%s\" has type %s, which lmgen cannot multiply (row length %lld)",
				 name, lm_type_name(t->type), (long long) n_cols);
		return false;
	}
	if (kind == BIND_F32 && t->type != LM_TYPE_F32)
	{
		snprintf(err, errlen, "tensor \"%s\" has type %s, expected F32", name, lm_type_name(t->type));
		return false;
	}
	w->data = t->data;
	w->type = t->type;
	w->n_cols = n_cols;
	w->n_rows = n_rows;
	w->row_bytes = (size_t) (n_cols / tr->block_size) * tr->type_size;
	return true;
}

/* Bind an F32 vector of n elements. */
static bool
bind_vec(const lm_gguf *g, const char *name, int64_t n, bool optional, const float **out,
		 char *err, size_t errlen)
{
	lm_weight	w;

	if (!bind(g, name, n, 1, BIND_F32, optional, &w, err, errlen))
		return false;
	*out = w.data;
	return true;
}

/* Bind a required matrix for the per-architecture binders. */
bool
lm_model_bind_matrix(const lm_gguf *g, const char *name, int64_t n_cols, int64_t n_rows, bool matmul,
					 lm_weight *w, char *err, size_t errlen)
{
	return bind(g, name, n_cols, n_rows, matmul ? BIND_MATMUL : BIND_ANY, false, w, err, errlen);
}

/* Bind a required F32 vector for the per-architecture binders. */
bool
lm_model_bind_vector(const lm_gguf *g, const char *name, int64_t n, const float **out, char *err,
					 size_t errlen)
{
	return bind_vec(g, name, n, false, out, err, errlen);
}

/* Bind every weight and check it against the configuration. */
static bool
bind_weights(lm_model *m, char *err, size_t errlen)
{
	const lm_gguf *g = m->gguf;
	lm_model_config *c = &m->cfg;
	const lm_gguf_tensor *te = lm_gguf_find_tensor(g, "token_embd.weight");
	int64_t		q_dim,
				k_dim,
				v_dim;
	char		name[96];
	float	   *probe;
	bool		ok;

	if (te == NULL)
	{
		snprintf(err, errlen, "model file lacks tensor \"token_embd.weight\"");
		return false;
	}
	if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
	{
		snprintf(err, errlen, "tensor \"token_embd.weight\" has %lld rows, expected 1..%d",
				 (long long) te->ne[1], INT32_MAX);
		return false;
	}
	c->n_vocab = (int32_t) te->ne[1];
	if (!bind(g, "token_embd.weight", c->n_embd, c->n_vocab, BIND_ANY, false, &m->tok_embd, err, errlen))
		return false;
	/* The embedding may be any type we can dequantize: try row 0. */
	probe = malloc(sizeof(float) * c->n_embd);
	if (!probe)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	ok = m->tok_embd.row_bytes > 0 &&
		lm_dequantize_row(m->tok_embd.type, m->tok_embd.data, probe, c->n_embd);
	free(probe);
	if (!ok)
	{
		snprintf(err, errlen, "tensor \"token_embd.weight\" has type %s, which lmgen cannot dequantize",
				 lm_type_name(te->type));
		return false;
	}

	/* bert: its own tensor set (model_bert.c) */
	if (c->arch_id == LM_ARCH_BERT)
		return lm_bert_bind(m, err, errlen);

	q_dim = (int64_t) c->n_head * c->head_dim_k;
	k_dim = (int64_t) c->n_head_kv * c->head_dim_k;
	v_dim = (int64_t) c->n_head_kv * c->head_dim_v;
	m->layers = calloc(c->n_layer, sizeof(lm_layer_weights));
	if (!m->layers)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (int l = 0; l < c->n_layer; l++)
	{
		lm_layer_weights *L = &m->layers[l];

#define NAME(s) (snprintf(name, sizeof(name), "blk.%d." s, l), name)
		if (!bind_vec(g, NAME("attn_norm.weight"), c->n_embd, false, &L->attn_norm, err, errlen) ||
			!bind(g, NAME("attn_q.weight"), c->n_embd, q_dim, BIND_MATMUL, false, &L->wq, err, errlen) ||
			!bind(g, NAME("attn_k.weight"), c->n_embd, k_dim, BIND_MATMUL, false, &L->wk, err, errlen) ||
			!bind(g, NAME("attn_v.weight"), c->n_embd, v_dim, BIND_MATMUL, false, &L->wv, err, errlen) ||
			!bind(g, NAME("attn_output.weight"), (int64_t) c->n_head * c->head_dim_v, c->n_embd, BIND_MATMUL,
				  false, &L->wo, err, errlen) ||
			!bind_vec(g, NAME("ffn_norm.weight"), c->n_embd, false, &L->ffn_norm, err, errlen) ||
			!bind(g, NAME("ffn_gate.weight"), c->n_embd, c->n_ff, BIND_MATMUL, false, &L->ffn_gate, err, errlen) ||
			!bind(g, NAME("ffn_up.weight"), c->n_embd, c->n_ff, BIND_MATMUL, false, &L->ffn_up, err, errlen) ||
			!bind(g, NAME("ffn_down.weight"), c->n_ff, c->n_embd, BIND_MATMUL, false, &L->ffn_down, err, errlen))
			return false;
#undef NAME
	}
	if (!bind_vec(g, "output_norm.weight", c->n_embd, false, &m->output_norm, err, errlen) ||
		!bind(g, "output.weight", c->n_embd, c->n_vocab, BIND_MATMUL, true, &m->output, err, errlen) ||
		!bind_vec(g, "rope_freqs.weight", c->n_rot / 2, true, &m->rope_freqs, err, errlen))
		return false;
	if (m->output.data == NULL)
	{
		/* Tied classifier: the embedding matrix doubles as the output layer. */
		if (!lm_kernels_supported(m->tok_embd.type) || lm_act_row_size(m->tok_embd.type, c->n_embd) == 0)
		{
			snprintf(err, errlen, "model has no \"output.weight\" and its token_embd.weight type %s cannot be multiplied",
					 lm_type_name(m->tok_embd.type));
			return false;
		}
		m->output = m->tok_embd;
		c->tied_output = true;
	}
	/* gemma3: per-head Q/K norms and post-attention/post-FFN norms (model_gemma3.c) */
	if (c->arch_id == LM_ARCH_GEMMA3 && !lm_gemma3_bind(m, err, errlen))
		return false;
	return true;
}

/* Bind a model to an open GGUF file. */
lm_model *
lm_model_load(lm_gguf *g, char *err, size_t errlen)
{
	lm_model   *m;

	if (g == NULL)
	{
		snprintf(err, errlen, "no model file");
		return NULL;
	}
	lm_kernels_init();
	m = calloc(1, sizeof(*m));
	if (!m)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->gguf = g;
	if (!read_config(g, &m->cfg, err, errlen) || !bind_weights(m, err, errlen))
	{
		lm_model_free(m);
		return NULL;
	}
	return m;
}

/* Open a GGUF file and bind a model that owns it. */
lm_model *
lm_model_open(const char *path, char *err, size_t errlen)
{
	lm_gguf    *g = lm_gguf_open(path, err, errlen);
	lm_model   *m;

	if (!g)
		return NULL;
	m = lm_model_load(g, err, errlen);
	if (!m)
	{
		lm_gguf_close(g);
		return NULL;
	}
	m->owns_gguf = true;
	return m;
}

/* Free the model and, when owned, its file. */
void
lm_model_free(lm_model *m)
{
	if (!m)
		return;
	if (m->owns_gguf)
		lm_gguf_close(m->gguf);
	lm_bert_free(m);
	free(m->layers);
	free(m);
}
