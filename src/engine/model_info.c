/*
 * model_info.c — gather the summary facts of a GGUF model file.
 */
#include "model_info.h"

#include <stdio.h>
#include <string.h>

/* Copy a mapped string into a NUL-terminated buffer, truncating. */
void
lm_gguf_str_copy(lm_gguf_str s, char *buf, size_t buflen)
{
	size_t		n;

	if (buflen == 0)
		return;
	n = s.len < buflen - 1 ? (size_t) s.len : buflen - 1;
	memcpy(buf, s.ptr, n);
	buf[n] = '\0';
}

/* llama.cpp's names for general.file_type values (its llama_ftype enum). */
static const char *
file_type_name(int64_t ft)
{
	static const struct
	{
		int			id;
		const char *name;
	}			names[] = {
		{0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {7, "Q8_0"}, {8, "Q5_0"},
		{9, "Q5_1"}, {10, "Q2_K"}, {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"},
		{14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},
		{19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"}, {22, "IQ3_XS"}, {23, "IQ3_XXS"},
		{24, "IQ1_S"}, {25, "IQ4_NL"}, {26, "IQ3_S"}, {27, "IQ3_M"}, {28, "IQ2_S"},
		{29, "IQ2_M"}, {30, "IQ4_XS"}, {31, "IQ1_M"}, {32, "BF16"}, {36, "TQ1_0"},
		{37, "TQ2_0"}, {38, "MXFP4_MOE"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].id == ft)
			return names[i].name;
	return NULL;
}

/* Fill info from an open file. */
void
lm_model_info_get(const lm_gguf *g, lm_model_info *info)
{
	lm_gguf_str s;
	char		key[128];
	int64_t		v;
	const lm_gguf_kv *tokens;

	memset(info, 0, sizeof(*info));
	if (lm_gguf_get_str(g, "general.architecture", &s))
		lm_gguf_str_copy(s, info->architecture, sizeof(info->architecture));
	if (lm_gguf_get_str(g, "general.name", &s))
		lm_gguf_str_copy(s, info->name, sizeof(info->name));
	info->version = g->version;
	info->alignment = g->alignment;
	info->file_size = g->file_size;
	info->n_kv = g->n_kv;
	info->n_tensors = g->n_tensors;
	info->n_params = lm_gguf_param_count(g);

	info->context_length = -1;
	snprintf(key, sizeof(key), "%s.context_length", info->architecture);
	if (info->architecture[0] && lm_gguf_get_i64(g, key, &v))
		info->context_length = v;

	info->vocab_size = -1;
	tokens = lm_gguf_find(g, "tokenizer.ggml.tokens");
	if (tokens && tokens->type == LM_GGUF_ARRAY)
		info->vocab_size = (int64_t) tokens->arr_n;
	else
	{
		snprintf(key, sizeof(key), "%s.vocab_size", info->architecture);
		if (info->architecture[0] && lm_gguf_get_i64(g, key, &v))
			info->vocab_size = v;
	}

	info->file_type = -1;
	if (lm_gguf_get_i64(g, "general.file_type", &v))
		info->file_type = v;

	for (uint64_t i = 0; i < g->n_tensors; i++)
		info->type_count[g->tensors[i].type]++;

	/* quantization: the file type's name, else the commonest matrix type */
	if (file_type_name(info->file_type))
		snprintf(info->quantization, sizeof(info->quantization), "%s", file_type_name(info->file_type));
	else
	{
		uint64_t	count[LM_TYPE_COUNT] = {0};
		int			best = -1;

		for (uint64_t i = 0; i < g->n_tensors; i++)
			if (g->tensors[i].n_dims >= 2)
				count[g->tensors[i].type]++;
		for (int t = 0; t < LM_TYPE_COUNT; t++)
			if (count[t] > 0 && (best < 0 || count[t] > count[best]))
				best = t;
		if (best >= 0)
			snprintf(info->quantization, sizeof(info->quantization), "%s", lm_type_name(best));
	}
}
