/*
 * generate.h — the text generation loop shared by lmgen-cli and the SQL
 * functions: prompt prefill, then one token per forward pass, stopping on an
 * end-of-generation token, a stop string, max_tokens or a full context.
 *
 * The loop is driven one token at a time by the caller (lm_gen_next), so a
 * Postgres backend can run CHECK_FOR_INTERRUPTS() between tokens, and all of
 * its state lives in one lm_gen object that a memory-context reset callback
 * can free even if an ERROR unwinds in the middle.  lm_generate() wraps the
 * loop with a per-token callback for simple callers.
 *
 * Stop strings are matched on the detokenized text.  Text that could be the
 * beginning of a stop string is held back until it is known not to be, so a
 * streaming caller never prints (part of) a stop string; the final text ends
 * just before the first stop string found.
 *
 * A word limit (max_words) counts runs of non-space characters in the
 * text: when a word begins after the max_words-th, generation ends and the
 * text is cut at the end of the max_words-th word (trailing spaces too).
 */
#ifndef LM_GENERATE_H
#define LM_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "sampler.h"
#include "tokenizer.h"

/* Why generation ended. */
typedef enum lm_gen_stop
{
	LM_GEN_RUNNING = 0,			/* not finished */
	LM_GEN_STOP_EOG,			/* the model produced an end-of-generation token */
	LM_GEN_STOP_STRING,			/* a stop string appeared */
	LM_GEN_STOP_MAX_TOKENS,		/* max_tokens generated */
	LM_GEN_STOP_CONTEXT,		/* the sequence filled the context */
	LM_GEN_STOP_CANCELLED,		/* the callback asked to stop */
	LM_GEN_STOP_MAX_WORDS		/* max_words words written and another began */
} lm_gen_stop;

/* Settings of one generation. */
typedef struct lm_gen_params
{
	int			max_tokens;		/* tokens to generate at most (> 0) */
	lm_sampler_params sampling; /* sampler settings (greedy by default) */
	const char *const *stop;	/* stop strings (borrowed; must outlive the lm_gen) */
	int			n_stop;			/* number of stop strings */
	bool		ignore_eog;		/* keep going after end-of-generation tokens */
	int			max_words;		/* stop when a word would follow the max_words-th; 0: off */
} lm_gen_params;

typedef struct lm_gen lm_gen;

/* Defaults: 128 tokens, greedy, no stop strings, stop on EOG. */
extern lm_gen_params lm_gen_default_params(void);

/*
 * Start generating in sequence seq of ctx after the prompt (token ids,
 * usually starting with BOS): clears the sequence and evaluates the prompt.
 * tok may be NULL (then no text and no stop strings, ids only).  NULL with a
 * message on failure (bad ids, prompt longer than the context, out of memory).
 */
extern lm_gen *lm_gen_start(lm_context *ctx, const lm_tokenizer *tok, int seq,
							const int32_t *prompt, int n_prompt, const lm_gen_params *p,
							char *err, size_t errlen);

/*
 * Produce the next token.  Returns 1 with *token set and *text / *text_len
 * pointing at the newly printable text (valid until the next call; may be
 * empty); 0 when generation has ended (see lm_gen_stop_reason); -1 with a
 * message on error.
 */
extern int	lm_gen_next(lm_gen *g, int32_t *token, const char **text, size_t *text_len,
						char *err, size_t errlen);

/* End early (e.g. cancelled); the text keeps what was produced. */
extern void lm_gen_cancel(lm_gen *g);

/* The whole generated text so far (stop string excluded), NUL-terminated. */
extern const char *lm_gen_text(const lm_gen *g, size_t *len);

/* Generated token ids so far (including a final EOG token, if any). */
extern const int32_t *lm_gen_tokens(const lm_gen *g, int *n);

/* Why generation ended (LM_GEN_RUNNING while it has not). */
extern lm_gen_stop lm_gen_stop_reason(const lm_gen *g);

/* Name of a stop reason ("eog", "stop string", ...). */
extern const char *lm_gen_stop_name(lm_gen_stop r);

/* Seconds spent on the prompt and on generated tokens so far. */
extern void lm_gen_timing(const lm_gen *g, double *prompt_s, double *gen_s);

/* Free; NULL is allowed. */
extern void lm_gen_free(lm_gen *g);

/* Per-token callback of lm_generate: return false to stop (cancel). */
typedef bool (*lm_gen_token_fn) (void *arg, int32_t token, const char *text, size_t text_len);

/*
 * Run a whole generation, calling cb (may be NULL) after every token.
 * Returns the finished lm_gen (read its text, tokens and stop reason, then
 * free it) or NULL with a message.
 */
extern lm_gen *lm_generate(lm_context *ctx, const lm_tokenizer *tok, int seq,
						   const int32_t *prompt, int n_prompt, const lm_gen_params *p,
						   lm_gen_token_fn cb, void *arg, char *err, size_t errlen);

#endif							/* LM_GENERATE_H */
