/*
 * chat.h — chat templates written in C: conversations of system / user /
 * assistant messages formatted the way an instruction model was trained on,
 * without a template engine.
 *
 * A family is recognised from the model's tokenizer.chat_template text by
 * marker substrings (lm_chat_detect), or named ("chatml", "gemma", ...).
 * Each family is one small function that writes the prompt as a sequence of
 * pieces; the same pieces feed both outputs below, so they always agree.
 *
 * Families and their layout (S = control-token text, everything else plain):
 *   chatml  S<|im_start|> role\n content S<|im_end|> \n ...
 *           generation prompt: S<|im_start|> assistant\n
 *   gemma   S<start_of_turn> user\n content S<end_of_turn> \n ...
 *           "assistant" is written "model"; content is trimmed; gemma has no
 *           system turn, so system text + "\n\n" opens the next user turn.
 *           generation prompt: S<start_of_turn> model\n
 *   llama2  [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer S</s>
 *           S<s>[INST] user [/INST] ...   (Llama-2-chat; content stripped;
 *           the model's answer follows [/INST], so there is no generation
 *           prompt to add)
 *   llama3  S<|start_header_id|> role S<|end_header_id|> \n\n content S<|eot_id|>
 *           content is trimmed; generation prompt: the assistant header + \n\n
 *   phi3    S<|role|> \n content S<|end|> \n ...
 *           generation prompt: S<|assistant|> \n
 * Gemma and llama2 have no system role: a system message (anywhere) is
 * folded into the next user turn, and it is an error when no user message
 * follows it.  Several system messages in a row are joined by "\n\n".
 * Roles need not alternate (the Jinja templates of gemma and llama2 raise an
 * error there; we format what we are given).
 *
 * BOS is never written by this module.  The Jinja templates of gemma, llama2
 * and llama3 begin with {{ bos_token }}, and those models set
 * tokenizer.ggml.add_bos_token = true, so the tokenizer adds BOS when the
 * caller tokenizes with add_special = true (as llama.cpp does with its own
 * formatter); SmolLM2 (chatml) has add_bos_token = false and no BOS in its
 * template.  So: tokenize the first piece with add_special = true, the rest
 * with add_special = false, and BOS appears exactly once.  The only BOS text
 * written is llama2's "<s>" in front of the second and later [INST] turns,
 * which the Llama-2-chat template puts there; it is a special segment.
 *
 * Default system prompts: a chatml template may add its own system turn when
 * the conversation has none (SmolLM2: "You are a helpful AI assistant named
 * SmolLM, trained by Hugging Face").  lm_chat_format does not invent one;
 * lm_chat_default_system extracts it from the template text so the caller
 * can prepend it and reproduce the template exactly.
 *
 * Injection: lm_chat_format returns one string with the control-token texts
 * in it — right for display, not for tokenizing untrusted content with
 * parse_special = true, because a user who types "<|im_end|>" would close
 * the turn.  lm_chat_format_segments returns the same text cut into
 * segments:
 *   special  exactly one control-token text put there by the template
 *            ("<|im_start|>", "<end_of_turn>", "</s>", ...): tokenize with
 *            parse_special = true; it becomes that one control token;
 *   plain    everything between two special segments (markup such as
 *            "user\n" or "[INST] " together with message content), merged
 *            into one maximal run: tokenize with parse_special = false, so
 *            "<|im_end|>" typed by a user stays ordinary text.
 * Segments cover the text in order without gaps; concatenating them gives
 * exactly lm_chat_format's output.  Because plain segments are maximal runs
 * between control tokens, tokenizing segment by segment gives the same ids
 * as llama.cpp tokenizing the whole string with parse_special = true
 * (including SPM's space prefix, which llama.cpp adds after each control
 * token) whenever the content holds no control-token text.
 *
 * Errors: functions that can fail return -1 (or false) and write one line
 * into err.  Nothing here allocates except lm_chat_build.
 */
#ifndef LM_CHAT_H
#define LM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

/* Supported template families. */
typedef enum lm_chat_family
{
	LM_CHAT_UNKNOWN = 0,
	LM_CHAT_CHATML,
	LM_CHAT_GEMMA,
	LM_CHAT_LLAMA2,
	LM_CHAT_LLAMA3,
	LM_CHAT_PHI3
} lm_chat_family;

/* One message of a conversation. */
typedef struct lm_chat_msg
{
	const char *role;			/* "system" | "user" | "assistant" */
	const char *content;		/* NUL-terminated UTF-8 text */
} lm_chat_msg;

/* One piece of a formatted prompt (see "Injection" above). */
typedef struct lm_chat_segment
{
	size_t		off;			/* byte offset into lm_chat_format's output */
	size_t		len;			/* byte length, > 0 */
	bool		special;		/* true: one control-token text; false: plain text */
} lm_chat_segment;

/* A formatted prompt with its segments, owned by the caller (lm_chat_build). */
typedef struct lm_chat_prompt
{
	char	   *text;			/* NUL-terminated prompt (malloc) */
	size_t		len;			/* strlen(text) */
	lm_chat_segment *segs;		/* n_segs segments covering text (malloc) */
	int			n_segs;			/* number of segments */
} lm_chat_prompt;

/* Family of a tokenizer.chat_template text (or of a family name); UNKNOWN when NULL or unrecognised. */
extern lm_chat_family lm_chat_detect(const char *tmpl, size_t len);

/*
 * Family implied by general.architecture for models whose GGUF has no
 * tokenizer.chat_template (gemma-3-270m): "gemma", "gemma2", "gemma3" and
 * "gemma3n" give GEMMA, "phi3" gives PHI3; anything else UNKNOWN.
 */
extern lm_chat_family lm_chat_detect_arch(const char *arch);

/* Name of a family ("chatml", "gemma", "llama2", "llama3", "phi3"; "unknown"). */
extern const char *lm_chat_family_name(lm_chat_family f);

/* Inverse of lm_chat_family_name; UNKNOWN if name is not a family. */
extern lm_chat_family lm_chat_family_from_name(const char *name);

/*
 * Format msgs[0..n) into out (always NUL-terminated when outlen > 0);
 * add_generation_prompt appends the assistant-turn opener.  Returns the
 * full length needed, excluding the NUL, like snprintf (so a result >=
 * outlen means out was cut), or -1 with a message in err: UNKNOWN family,
 * a role other than system/user/assistant, a NULL role or content, a
 * system message with no user turn after it (gemma, llama2), or a prompt
 * longer than INT_MAX.
 */
extern int	lm_chat_format(lm_chat_family f, const lm_chat_msg *msgs, int n,
						   bool add_generation_prompt, char *out, size_t outlen,
						   char *err, size_t errlen);

/*
 * The same prompt as segments into lm_chat_format's output for the same
 * arguments.  Writes the first min(result, max_segs) segments to segs and
 * returns how many there are, or -1 with a message in err (same errors as
 * lm_chat_format).
 */
extern int	lm_chat_format_segments(lm_chat_family f, const lm_chat_msg *msgs, int n,
									bool add_generation_prompt, lm_chat_segment *segs,
									int max_segs, char *err, size_t errlen);

/* Format into a freshly allocated text and segment list; false with a message in err. */
extern bool lm_chat_build(lm_chat_family f, const lm_chat_msg *msgs, int n,
						  bool add_generation_prompt, lm_chat_prompt *out,
						  char *err, size_t errlen);

/* Free what lm_chat_build allocated and zero *p; NULL is allowed. */
extern void lm_chat_prompt_free(lm_chat_prompt *p);

/*
 * End-of-turn marker texts of a family, NULL-terminated: a generation stops
 * when the model produces one (e.g. {"<|im_end|>", NULL}).  UNKNOWN gives an
 * empty list (never NULL).
 */
extern const char *const *lm_chat_stop_strings(lm_chat_family f);

/*
 * The system prompt a chatml template adds by itself when the conversation
 * has none, as a literal '<|im_start|>system\n...<|im_end|>' in the
 * template text.  True with *sys / *sys_len pointing into tmpl when there
 * is one; false otherwise (other families, or text built from variables).
 */
extern bool lm_chat_default_system(const char *tmpl, size_t len, const char **sys,
								   size_t *sys_len);

#endif							/* LM_CHAT_H */
