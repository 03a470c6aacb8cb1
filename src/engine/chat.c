/*
 * chat.c — chat template families written in C (see chat.h for the layouts,
 * the BOS rule and the segment contract).
 *
 * Every family writes its prompt through one sink, piece by piece: put()
 * appends a piece, flagged special (a control-token text) or plain.  The
 * sink counts bytes, copies them into the caller's buffer while room lasts,
 * and records segments, merging adjacent plain pieces into one.  So
 * lm_chat_format and lm_chat_format_segments run the same code and cannot
 * disagree.
 */
#include "chat.h"
#include "errmsg.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Message roles after validation. */
typedef enum chat_role
{
	ROLE_SYSTEM,
	ROLE_USER,
	ROLE_ASSISTANT
} chat_role;

/* Where the pieces of a prompt go. */
typedef struct chat_sink
{
	char	   *out;			/* text buffer, or NULL to only count */
	size_t		outlen;			/* its size in bytes */
	size_t		pos;			/* bytes produced so far */
	lm_chat_segment *segs;		/* segment buffer, or NULL */
	int			max_segs;		/* its size */
	int			n_segs;			/* segments produced so far (may exceed max_segs) */
	bool		last_plain;		/* the last segment is plain (merge target) */
	bool		too_long;		/* pos or n_segs overflowed INT_MAX */
} chat_sink;

/* Append len bytes of t as one piece. */
static void
put(chat_sink *s, const char *t, size_t len, bool special)
{
	if (len == 0)
		return;
	if (len > (size_t) INT_MAX || s->pos > (size_t) INT_MAX - len)
	{
		s->too_long = true;
		return;
	}
	if (s->out && s->pos < s->outlen)
	{
		size_t		room = s->outlen - s->pos;

		memcpy(s->out + s->pos, t, len < room ? len : room);
	}
	if (!special && s->last_plain)
	{
		/* extend the previous plain segment */
		if (s->segs && s->n_segs <= s->max_segs)
			s->segs[s->n_segs - 1].len += len;
	}
	else
	{
		if (s->n_segs == INT_MAX)
		{
			s->too_long = true;
			return;
		}
		if (s->segs && s->n_segs < s->max_segs)
		{
			s->segs[s->n_segs].off = s->pos;
			s->segs[s->n_segs].len = len;
			s->segs[s->n_segs].special = special;
		}
		s->n_segs++;
	}
	s->last_plain = !special;
	s->pos += len;
}

/* Append a NUL-terminated control-token text. */
static void
put_special(chat_sink *s, const char *t)
{
	put(s, t, strlen(t), true);
}

/* Append NUL-terminated plain text. */
static void
put_plain(chat_sink *s, const char *t)
{
	put(s, t, strlen(t), false);
}

/* True for the bytes Jinja's trim and Python's strip remove (ASCII whitespace). */
static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Append t with leading (when left) and trailing whitespace removed. */
static void
put_stripped(chat_sink *s, const char *t, bool left)
{
	size_t		b = 0;
	size_t		e = strlen(t);

	if (left)
		while (b < e && is_space(t[b]))
			b++;
	while (e > b && is_space(t[e - 1]))
		e--;
	put(s, t + b, e - b, false);
}

/* Role of a message; -1 when the role is missing or not one of the three. */
static int
role_of(const lm_chat_msg *m)
{
	if (m->role == NULL)
		return -1;
	if (strcmp(m->role, "system") == 0)
		return ROLE_SYSTEM;
	if (strcmp(m->role, "user") == 0)
		return ROLE_USER;
	if (strcmp(m->role, "assistant") == 0)
		return ROLE_ASSISTANT;
	return -1;
}

/* Check every message's role and content; false with a message in err. */
static bool
check_msgs(const lm_chat_msg *msgs, int n, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
	{
		const char *r = msgs[i].role;

		if (r == NULL || msgs[i].content == NULL)
		{
			lm_set_err(err, errlen, "chat message %d has no %s", i, r == NULL ? "role" : "content");
			return false;
		}
		if (role_of(&msgs[i]) < 0)
		{
			lm_set_err(err, errlen, "chat message %d has unknown role \"%.40s\": use system, user or assistant",
					i, r);
			return false;
		}
	}
	return true;
}

/* Name of a validated role as the chatml / llama3 / phi3 markup spells it. */
static const char *
role_text(int r)
{
	return r == ROLE_SYSTEM ? "system" : r == ROLE_USER ? "user" : "assistant";
}

/* Fail when system messages are left with no user turn to fold them into. */
static bool
check_no_pending(lm_chat_family f, int pending_from, char *err, size_t errlen)
{
	if (pending_from < 0)
		return true;
	lm_set_err(err, errlen, "%s chat: system message %d must be followed by a user message (%s has no system turn)",
			lm_chat_family_name(f), pending_from, lm_chat_family_name(f));
	return false;
}

/* ChatML: <|im_start|>role\ncontent<|im_end|>\n per message. */
static bool
fmt_chatml(chat_sink *s, const lm_chat_msg *m, int n, bool agp,
		   char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
	{
		int			r = role_of(&m[i]);	/* valid: checked by check_msgs */

		put_special(s, "<|im_start|>");
		put_plain(s, role_text(r));
		put_plain(s, "\n");
		put_plain(s, m[i].content);
		put_special(s, "<|im_end|>");
		put_plain(s, "\n");
	}
	if (agp)
	{
		put_special(s, "<|im_start|>");
		put_plain(s, "assistant\n");
	}
	return true;
}

/* Gemma: <start_of_turn>user|model\ncontent<end_of_turn>\n; system folds into the next user turn. */
static bool
fmt_gemma(chat_sink *s, const lm_chat_msg *m, int n, bool agp,
		  char *err, size_t errlen)
{
	int			pending = -1;	/* first system message not yet written */

	for (int i = 0; i < n; i++)
	{
		int			r = role_of(&m[i]);	/* valid: checked by check_msgs */

		if (r == ROLE_SYSTEM)
		{
			if (pending < 0)
				pending = i;
			continue;
		}
		if (r == ROLE_ASSISTANT && !check_no_pending(LM_CHAT_GEMMA, pending, err, errlen))
			return false;
		put_special(s, "<start_of_turn>");
		put_plain(s, r == ROLE_USER ? "user\n" : "model\n");
		if (pending >= 0)
		{
			/* the Gemma template's first_user_prefix: system content + "\n\n" */
			for (int j = pending; j < i; j++)
			{
				put_plain(s, m[j].content);
				put_plain(s, "\n\n");
			}
			pending = -1;
		}
		put_stripped(s, m[i].content, true);
		put_special(s, "<end_of_turn>");
		put_plain(s, "\n");
	}
	if (!check_no_pending(LM_CHAT_GEMMA, pending, err, errlen))
		return false;
	if (agp)
	{
		put_special(s, "<start_of_turn>");
		put_plain(s, "model\n");
	}
	return true;
}

/*
 * Llama-2-chat: "[INST] " + content.strip() + " [/INST]" per user turn, with
 * "<<SYS>>\n" system "\n<</SYS>>\n\n" in front of the user text when a system
 * message precedes it; " " + answer.strip() + " " + "</s>" per assistant
 * turn; "<s>" before every [INST] but the first (the tokenizer adds that BOS).
 */
static bool
fmt_llama2(chat_sink *s, const lm_chat_msg *m, int n, bool agp,
		   char *err, size_t errlen)
{
	int			pending = -1;	/* first system message not yet written */
	bool		first = true;	/* nothing written yet */

	for (int i = 0; i < n; i++)
	{
		int			r = role_of(&m[i]);	/* valid: checked by check_msgs */

		if (r == ROLE_SYSTEM)
		{
			if (pending < 0)
				pending = i;
			continue;
		}
		if (r == ROLE_ASSISTANT)
		{
			if (!check_no_pending(LM_CHAT_LLAMA2, pending, err, errlen))
				return false;
			put_plain(s, " ");
			put_stripped(s, m[i].content, true);
			put_plain(s, " ");
			put_special(s, "</s>");
			first = false;
			continue;
		}
		if (!first)
			put_special(s, "<s>");
		put_plain(s, "[INST] ");
		if (pending >= 0)
		{
			/* strip() of the whole "<<SYS>>..." + user text trims only the user's tail */
			put_plain(s, "<<SYS>>\n");
			for (int j = pending; j < i; j++)
			{
				if (j > pending)
					put_plain(s, "\n\n");
				put_plain(s, m[j].content);
			}
			put_plain(s, "\n<</SYS>>\n\n");
			put_stripped(s, m[i].content, false);
			pending = -1;
		}
		else
			put_stripped(s, m[i].content, true);
		put_plain(s, " [/INST]");
		first = false;
	}
	/* the answer follows " [/INST]" directly: no generation prompt */
	(void) agp;
	return check_no_pending(LM_CHAT_LLAMA2, pending, err, errlen);
}

/* Llama 3: <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> per message. */
static bool
fmt_llama3(chat_sink *s, const lm_chat_msg *m, int n, bool agp,
		   char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
	{
		int			r = role_of(&m[i]);	/* valid: checked by check_msgs */

		put_special(s, "<|start_header_id|>");
		put_plain(s, role_text(r));
		put_special(s, "<|end_header_id|>");
		put_plain(s, "\n\n");
		put_stripped(s, m[i].content, true);
		put_special(s, "<|eot_id|>");
	}
	if (agp)
	{
		put_special(s, "<|start_header_id|>");
		put_plain(s, "assistant");
		put_special(s, "<|end_header_id|>");
		put_plain(s, "\n\n");
	}
	return true;
}

/* Phi-3: <|role|>\ncontent<|end|>\n per message. */
static bool
fmt_phi3(chat_sink *s, const lm_chat_msg *m, int n, bool agp,
		 char *err, size_t errlen)
{
	static const char *const open[] = {"<|system|>", "<|user|>", "<|assistant|>"};

	for (int i = 0; i < n; i++)
	{
		int			r = role_of(&m[i]);	/* valid: checked by check_msgs */

		put_special(s, open[r]);
		put_plain(s, "\n");
		put_plain(s, m[i].content);
		put_special(s, "<|end|>");
		put_plain(s, "\n");
	}
	if (agp)
	{
		put_special(s, "<|assistant|>");
		put_plain(s, "\n");
	}
	return true;
}

/* Run family f over msgs into s; false with a message in err. */
static bool
run_family(lm_chat_family f, const lm_chat_msg *msgs, int n, bool agp, chat_sink *s,
		   char *err, size_t errlen)
{
	bool		ok;

	if (n < 0 || (n > 0 && msgs == NULL))
	{
		lm_set_err(err, errlen, "chat: bad message list (%d messages)", n);
		return false;
	}
	if (f <= LM_CHAT_UNKNOWN || f > LM_CHAT_PHI3)
	{
		lm_set_err(err, errlen, "chat template family is unknown: name one of chatml, gemma, llama2, llama3, phi3");
		return false;
	}
	ok = check_msgs(msgs, n, err, errlen);
	if (ok)
	{
		switch (f)
		{
			case LM_CHAT_CHATML:
				ok = fmt_chatml(s, msgs, n, agp, err, errlen);
				break;
			case LM_CHAT_GEMMA:
				ok = fmt_gemma(s, msgs, n, agp, err, errlen);
				break;
			case LM_CHAT_LLAMA2:
				ok = fmt_llama2(s, msgs, n, agp, err, errlen);
				break;
			case LM_CHAT_LLAMA3:
				ok = fmt_llama3(s, msgs, n, agp, err, errlen);
				break;
			case LM_CHAT_PHI3:
				ok = fmt_phi3(s, msgs, n, agp, err, errlen);
				break;
			default:
				ok = false;
				break;
		}
	}
	if (ok && s->too_long)
	{
		lm_set_err(err, errlen, "chat prompt is longer than %d bytes", INT_MAX);
		ok = false;
	}
	return ok;
}

/* Format msgs into out like snprintf; -1 with a message in err. */
int
lm_chat_format(lm_chat_family f, const lm_chat_msg *msgs, int n, bool add_generation_prompt,
			   char *out, size_t outlen, char *err, size_t errlen)
{
	chat_sink	s = {0};

	s.out = outlen > 0 ? out : NULL;
	s.outlen = outlen;
	if (!run_family(f, msgs, n, add_generation_prompt, &s, err, errlen))
	{
		if (s.out)
			s.out[0] = '\0';
		return -1;
	}
	if (s.out)
		s.out[s.pos < outlen ? s.pos : outlen - 1] = '\0';
	return (int) s.pos;
}

/* Cut the same prompt into special / plain segments; -1 with a message in err. */
int
lm_chat_format_segments(lm_chat_family f, const lm_chat_msg *msgs, int n,
						bool add_generation_prompt, lm_chat_segment *segs, int max_segs,
						char *err, size_t errlen)
{
	chat_sink	s = {0};

	s.segs = max_segs > 0 ? segs : NULL;
	s.max_segs = max_segs > 0 ? max_segs : 0;
	if (!run_family(f, msgs, n, add_generation_prompt, &s, err, errlen))
		return -1;
	return s.n_segs;
}

/* Format into freshly allocated text and segments; false with a message in err. */
bool
lm_chat_build(lm_chat_family f, const lm_chat_msg *msgs, int n, bool add_generation_prompt,
			  lm_chat_prompt *out, char *err, size_t errlen)
{
	chat_sink	s = {0};
	size_t		total;

	memset(out, 0, sizeof(*out));
	/* first pass counts, second pass fills */
	if (!run_family(f, msgs, n, add_generation_prompt, &s, err, errlen))
		return false;
	out->text = malloc(s.pos + 1);
	out->segs = malloc(sizeof(lm_chat_segment) * (size_t) (s.n_segs > 0 ? s.n_segs : 1));
	if (out->text == NULL || out->segs == NULL)
	{
		lm_chat_prompt_free(out);
		lm_set_err(err, errlen, "chat: out of memory for a %zu-byte prompt", s.pos);
		return false;
	}
	total = s.pos;
	memset(&s, 0, sizeof(s));
	s.out = out->text;
	s.outlen = total + 1;
	s.segs = out->segs;
	s.max_segs = INT_MAX;
	if (!run_family(f, msgs, n, add_generation_prompt, &s, err, errlen))
	{
		lm_chat_prompt_free(out);
		return false;
	}
	out->text[s.pos] = '\0';
	out->len = s.pos;
	out->n_segs = s.n_segs;
	return true;
}

/* Free a prompt from lm_chat_build. */
void
lm_chat_prompt_free(lm_chat_prompt *p)
{
	if (p == NULL)
		return;
	free(p->text);
	free(p->segs);
	memset(p, 0, sizeof(*p));
}

/* Names, in enum order. */
static const char *const family_names[] = {"unknown", "chatml", "gemma", "llama2", "llama3", "phi3"};

/* Name of a family. */
const char *
lm_chat_family_name(lm_chat_family f)
{
	if (f < LM_CHAT_UNKNOWN || f > LM_CHAT_PHI3)
		return "unknown";
	return family_names[f];
}

/* Family of a name; UNKNOWN if none. */
lm_chat_family
lm_chat_family_from_name(const char *name)
{
	if (name == NULL)
		return LM_CHAT_UNKNOWN;
	for (int f = LM_CHAT_CHATML; f <= LM_CHAT_PHI3; f++)
		if (strcmp(name, family_names[f]) == 0)
			return (lm_chat_family) f;
	return LM_CHAT_UNKNOWN;
}

/* First occurrence of needle in hay[0..len), or NULL (hay need not be NUL-terminated). */
static const char *
find_in(const char *hay, size_t len, const char *needle)
{
	size_t		nl = strlen(needle);

	if (nl == 0 || nl > len)
		return nl == 0 ? hay : NULL;
	for (size_t i = 0; i + nl <= len; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, nl) == 0)
			return hay + i;
	return NULL;
}

/* True when hay[0..len) contains needle. */
static bool
has(const char *hay, size_t len, const char *needle)
{
	return find_in(hay, len, needle) != NULL;
}

/*
 * Family of a template text.  The marker substrings and their order follow
 * the families' official templates (as llama.cpp's detector also does);
 * look-alike templates of families we do not format (phi4's <|im_sep|>,
 * SmolVLM's <end_of_utterance>, Mistral's [SYSTEM_PROMPT] / [AVAILABLE_TOOLS]
 * / ' [INST] ' + system_message) are refused rather than misformatted.
 */
lm_chat_family
lm_chat_detect(const char *tmpl, size_t len)
{
	bool		mistral;

	if (tmpl == NULL || len == 0)
		return LM_CHAT_UNKNOWN;
	mistral = len >= 7 && memcmp(tmpl, "mistral", 7) == 0;
	/* a bare family name */
	for (int f = LM_CHAT_CHATML; f <= LM_CHAT_PHI3; f++)
		if (len == strlen(family_names[f]) && memcmp(tmpl, family_names[f], len) == 0)
			return (lm_chat_family) f;
	if (has(tmpl, len, "<|im_start|>"))
	{
		if (has(tmpl, len, "<|im_sep|>") || has(tmpl, len, "<end_of_utterance>"))
			return LM_CHAT_UNKNOWN;
		return LM_CHAT_CHATML;
	}
	if (has(tmpl, len, "[INST]") || mistral)
	{
		if (has(tmpl, len, "[SYSTEM_PROMPT]") || has(tmpl, len, "[AVAILABLE_TOOLS]") ||
			has(tmpl, len, "' [INST] ' + system_message") || mistral)
			return LM_CHAT_UNKNOWN;
		return LM_CHAT_LLAMA2;
	}
	if (has(tmpl, len, "<|assistant|>") && has(tmpl, len, "<|end|>"))
		return LM_CHAT_PHI3;
	if (has(tmpl, len, "<start_of_turn>"))
		return LM_CHAT_GEMMA;
	if (has(tmpl, len, "<|start_header_id|>") && has(tmpl, len, "<|end_header_id|>"))
		return LM_CHAT_LLAMA3;
	return LM_CHAT_UNKNOWN;
}

/* Family implied by general.architecture when the GGUF has no template. */
lm_chat_family
lm_chat_detect_arch(const char *arch)
{
	if (arch == NULL)
		return LM_CHAT_UNKNOWN;
	if (strcmp(arch, "gemma") == 0 || strcmp(arch, "gemma2") == 0 ||
		strcmp(arch, "gemma3") == 0 || strcmp(arch, "gemma3n") == 0)
		return LM_CHAT_GEMMA;
	if (strcmp(arch, "phi3") == 0)
		return LM_CHAT_PHI3;
	return LM_CHAT_UNKNOWN;
}

/* Stop lists per family, in enum order. */
static const char *const stop_unknown[] = {NULL};
static const char *const stop_chatml[] = {"<|im_end|>", NULL};
static const char *const stop_gemma[] = {"<end_of_turn>", NULL};
static const char *const stop_llama2[] = {"</s>", NULL};
static const char *const stop_llama3[] = {"<|eot_id|>", NULL};
static const char *const stop_phi3[] = {"<|end|>", NULL};

/* End-of-turn marker texts of a family, NULL-terminated. */
const char *const *
lm_chat_stop_strings(lm_chat_family f)
{
	switch (f)
	{
		case LM_CHAT_CHATML:
			return stop_chatml;
		case LM_CHAT_GEMMA:
			return stop_gemma;
		case LM_CHAT_LLAMA2:
			return stop_llama2;
		case LM_CHAT_LLAMA3:
			return stop_llama3;
		case LM_CHAT_PHI3:
			return stop_phi3;
		default:
			return stop_unknown;
	}
}

/*
 * A chatml template's built-in system prompt: a literal
 * "<|im_start|>system" + newline (real, or the two characters \n inside a
 * Jinja string) followed by text free of quotes, backslashes and Jinja
 * delimiters up to "<|im_end|>".  Text assembled from variables
 * ('<|im_start|>system\n' + messages[0]['content']) does not qualify.
 */
bool
lm_chat_default_system(const char *tmpl, size_t len, const char **sys, size_t *sys_len)
{
	static const char opener[] = "<|im_start|>system";
	const char *end = tmpl + len;
	const char *p = tmpl;

	if (tmpl == NULL || lm_chat_detect(tmpl, len) != LM_CHAT_CHATML)
		return false;
	while (p < end)
	{
		const char *hit = find_in(p, (size_t) (end - p), opener);
		const char *q;
		const char *stop;

		if (hit == NULL)
			return false;
		q = hit + sizeof(opener) - 1;
		p = q;
		if (q < end && *q == '\n')
			q++;
		else if (end - q >= 2 && q[0] == '\\' && q[1] == 'n')
			q += 2;
		else
			continue;
		stop = find_in(q, (size_t) (end - q), "<|im_end|>");
		if (stop == NULL || stop == q)
			continue;
		for (const char *c = q; c < stop; c++)
			if (*c == '\'' || *c == '"' || *c == '\\' || *c == '{' || *c == '}')
				goto next;
		*sys = q;
		*sys_len = (size_t) (stop - q);
		return true;
next:
		;
	}
	return false;
}
