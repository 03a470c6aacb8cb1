/*
 * chat_tokenize.c — format a conversation and tokenize it segment by
 * segment (see chat.h for the special/plain segment contract).
 */
#include "chat_tokenize.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Make room for need more ids after the first n of *ids; false when memory runs out. */
static bool
reserve_ids(int32_t **ids, int n, int need, int *cap, char *err, size_t errlen)
{
	int32_t    *p;
	int			c;

	if (n + need <= *cap)
		return true;
	c = n + need + 64;
	p = realloc(*ids, sizeof(int32_t) * (size_t) c);
	if (p == NULL)
	{
		snprintf(err, errlen, "out of memory tokenizing a chat prompt");
		return false;
	}
	*ids = p;
	*cap = c;
	return true;
}

/*
 * Tokenize one segment onto the end of *ids (growing it); false on error.
 * Room for one id per two bytes first (texts average three or more), so one
 * pass nearly always suffices.
 */
static bool
append_segment(const lm_tokenizer *t, const char *s, size_t len, bool add_special, bool special,
			   int32_t **ids, int *n, int *cap, lm_tok_abort_fn abort_fn, void *abort_arg,
			   char *err, size_t errlen)
{
	int			room;
	int			need;

	if (len > INT_MAX / 4)
	{
		snprintf(err, errlen, "chat prompt segment of %zu bytes is too long", len);
		return false;
	}
	if (!reserve_ids(ids, *n, (int) (len / 2) + 16, cap, err, errlen))
		return false;
	room = *cap - *n;
	need = lm_tokenize_abortable(t, s, len, add_special, special, *ids + *n, room, abort_fn, abort_arg,
								 err, errlen);
	if (need < 0)
		return false;
	if (need > room)
	{
		if (!reserve_ids(ids, *n, need, cap, err, errlen))
			return false;
		if (lm_tokenize_abortable(t, s, len, add_special, special, *ids + *n, need, abort_fn, abort_arg,
								  err, errlen) != need)
			return false;
	}
	*n += need;
	return true;
}

/* Token ids of a formatted conversation. */
int32_t *
lm_chat_tokenize(const lm_tokenizer *t, lm_chat_family f, const lm_chat_msg *msgs, int n_msgs,
				 bool add_generation_prompt, int *n, char *err, size_t errlen)
{
	return lm_chat_tokenize_abortable(t, f, msgs, n_msgs, add_generation_prompt, n, NULL, NULL, err, errlen);
}

/* Token ids of a formatted conversation, with an abort check while tokenizing. */
int32_t *
lm_chat_tokenize_abortable(const lm_tokenizer *t, lm_chat_family f, const lm_chat_msg *msgs, int n_msgs,
						   bool add_generation_prompt, int *n, lm_tok_abort_fn abort_fn, void *abort_arg,
						   char *err, size_t errlen)
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
							&ids, n, &cap, abort_fn, abort_arg, err, errlen);
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
