/*
 * generate.h — one generation on a context of its own sequence: prompt
 * prefill, then one token per forward pass, stopping on an end-of-generation
 * token, a stop string, max_tokens or a full context.  The per-sequence
 * rules (sampler, detokenizer, stop strings, budget, text) are
 * lm_sequence's (sequence.h), shared with the batching scheduler
 * (scheduler.h), so both give the same tokens and text.
 *
 * The loop is driven one token at a time by the caller (lm_gen_next), so a
 * Postgres backend can run CHECK_FOR_INTERRUPTS() between tokens, and all of
 * its state lives in one lm_gen object that a memory-context reset callback
 * can free even if an ERROR unwinds in the middle.  lm_generate() wraps the
 * loop with a per-token callback for simple callers.
 *
 * Stop strings: see sequence.h.
 */
#ifndef LM_GENERATE_H
#define LM_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "sampler.h"
#include "sequence.h"
#include "tokenizer.h"

typedef struct lm_gen lm_gen;

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
 * lm_gen_start for a prompt whose first n_prompt - 1 positions sequence
 * from of ctx already holds (an earlier generation after the same prompt,
 * running or finished): seq shares them (copy-on-write blocks) and only
 * the last prompt token is evaluated.  The same bits as lm_gen_start.
 * NULL with a message when from does not hold them.
 */
extern lm_gen *lm_gen_start_after(lm_context *ctx, const lm_tokenizer *tok, int seq, int from,
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
