/*
 * chat_tokenize.c — format a conversation and tokenize it segment by
 * segment (see chat.h for the special/plain segment contract).
 */
#include "chat_tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokenize one segment onto the end of *ids (growing it); false on error. */
static bool
append_segment(const lm_tokenizer *t, const char *s, size_t len, bool add_special, bool special,
			   int32_t **ids, int *n, int *cap, char *err, size_t errlen)
{
	int			need = lm_tokenize(t, s, len, add_special, special, NULL, 0, err, errlen);

	if (need < 0)
		return false;
	if (*n + need > *cap)
	{
		int			c = (*n + need) * 2 + 16;
		int32_t    *p = realloc(*ids, sizeof(int32_t) * (size_t) c);

		if (p == NULL)
		{
			snprintf(err, errlen, "out of memory tokenizing a chat prompt");
			return false;
		}
		*ids = p;
		*cap = c;
	}
	if (lm_tokenize(t, s, len, add_special, special, *ids + *n, need, err, errlen) != need)
		return false;
	*n += need;
	return true;
}

/* Token ids of a formatted conversation. */
int32_t *
lm_chat_tokenize(const lm_tokenizer *t, lm_chat_family f, const lm_chat_msg *msgs, int n_msgs,
				 bool add_generation_prompt, int *n, char *err, size_t errlen)
{
	lm_chat_prompt p;
	int32_t    *ids = NULL;
	int			cap = 0;
	bool		ok = true;

	*n = 0;
	if (!lm_chat_build(f, msgs, n_msgs, add_generation_prompt, &p, err, errlen))
		return NULL;
	for (int i = 0; ok && i < p.n_segs; i++)
		ok = append_segment(t, p.text + p.segs[i].off, p.segs[i].len, i == 0, p.segs[i].special,
							&ids, n, &cap, err, errlen);
	lm_chat_prompt_free(&p);
	if (!ok)
	{
		free(ids);
		*n = 0;
		return NULL;
	}
	return ids;
}

/* The chat family of a model file: its template's, else its architecture's. */
lm_chat_family
lm_chat_family_of(const lm_gguf *g, bool *from_template)
{
	lm_gguf_str s;
	char		arch[64] = "";
	lm_chat_family f = LM_CHAT_UNKNOWN;

	if (lm_gguf_get_str(g, "tokenizer.chat_template", &s))
		f = lm_chat_detect(s.ptr, (size_t) s.len);
	if (from_template)
		*from_template = f != LM_CHAT_UNKNOWN;
	if (f == LM_CHAT_UNKNOWN && lm_gguf_get_str(g, "general.architecture", &s) && s.len < sizeof(arch))
	{
		memcpy(arch, s.ptr, s.len);
		f = lm_chat_detect_arch(arch);
	}
	return f;
}
