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
}
