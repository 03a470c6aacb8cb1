/*
 * sequence.h — the generation state of one sequence, apart from any forward
 * pass: its sampler (with its own seeded RNG), streaming detokenizer, stop
 * strings, token budget and text.  Whoever runs the model (lm_gen for one
 * sequence, the scheduler for many in one batch) feeds it logits and asks it
 * for the next token; the rules that end a generation live only here.
 *
 * The cycle: create (the prompt goes into the sampler's penalty window),
 * evaluate the prompt, lm_sequence_sample() with the logits of its last
 * token; then repeatedly lm_sequence_next() takes the sampled token, appends
 * its text and checks end-of-generation, stop strings, max_tokens and the
 * context; while the sequence is still running the caller evaluates that
 * token at the position lm_sequence_next() gave and calls
 * lm_sequence_sample() with its logits.
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
#ifndef LM_SEQUENCE_H
#define LM_SEQUENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	LM_GEN_STOP_CANCELLED,		/* the caller asked to stop */
	LM_GEN_STOP_MAX_WORDS		/* max_words words written and another began */
} lm_gen_stop;

/* Settings of one generation. */
typedef struct lm_gen_params
{
	int			max_tokens;		/* tokens to generate at most (> 0) */
	lm_sampler_params sampling; /* sampler settings (greedy by default) */
	const char *const *stop;	/* stop strings (copied when a sequence is created) */
	int			n_stop;			/* number of stop strings */
	bool		ignore_eog;		/* keep going after end-of-generation tokens */
	int			max_words;		/* stop when a word would follow the max_words-th; 0: off */
} lm_gen_params;

typedef struct lm_sequence lm_sequence;

/* Defaults: 128 tokens, greedy, no stop strings, stop on EOG. */
extern lm_gen_params lm_gen_default_params(void);

/*
 * The state of a generation after prompt (n_prompt ids) in a context of
 * n_ctx positions per sequence, for a vocabulary of n_vocab; tok may be NULL
 * (ids only: no text, no stop strings, no EOG check).  Copies the stop
 * strings.  NULL with a message for bad parameters or out of memory.
 */
extern lm_sequence *lm_sequence_create(const lm_tokenizer *tok, int n_vocab, int n_ctx,
									   const int32_t *prompt, int n_prompt, const lm_gen_params *p,
									   char *err, size_t errlen);

/* Free; NULL is allowed. */
extern void lm_sequence_free(lm_sequence *s);

/* Sample the next token from the logits of the last evaluated token. */
extern void lm_sequence_sample(lm_sequence *s, const float *logits);

/* The same, given the logits' argmax when a device computed it (else -1; lm_sampler_sample_hinted). */
extern void lm_sequence_sample_hinted(lm_sequence *s, const float *logits, int32_t argmax);

/*
 * Take the sampled token: record it, append its text, check the stop rules.
 * Returns 1 with *token, and *text / *text_len pointing at the newly
 * printable text (valid until the next call; may be empty); then, if
 * lm_sequence_reason() is still LM_GEN_RUNNING, the caller must evaluate
 * *token at position *pos and call lm_sequence_sample().  Returns 0 when
 * generation had already ended, -1 with a message when out of memory.
 */
extern int	lm_sequence_next(lm_sequence *s, int32_t *token, int32_t *pos, const char **text,
							 size_t *text_len, char *err, size_t errlen);

/* End early (e.g. cancelled); the text keeps what was produced. */
extern void lm_sequence_cancel(lm_sequence *s);

/* The whole generated text so far (stop string excluded), NUL-terminated. */
extern const char *lm_sequence_text(const lm_sequence *s, size_t *len);

/* Generated token ids so far (including a final EOG token, if any). */
extern const int32_t *lm_sequence_tokens(const lm_sequence *s, int *n);

/* Why generation ended (LM_GEN_RUNNING while it has not). */
extern lm_gen_stop lm_sequence_reason(const lm_sequence *s);

/* Name of a stop reason ("eog", "stop string", ...). */
extern const char *lm_gen_stop_name(lm_gen_stop r);

#endif							/* LM_SEQUENCE_H */
