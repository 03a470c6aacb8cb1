/*
 * sampler.h — choosing the next token from logits: greedy (argmax, lowest id
 * on ties) or seeded random sampling after repetition/frequency/presence
 * penalties, temperature, top-k, top-p and min-p.
 *
 * The order is llama.cpp's usual chain: penalties over the last
 * penalty_last_n accepted tokens, then top-k, top-p, min-p on the
 * temperature-scaled distribution, then a draw from what is left.  Each
 * sampler has its own xoshiro256** generator seeded with splitmix64(seed), so
 * the same seed, logits and history always give the same token, on any
 * thread and whatever else runs.  Stop strings are the generation loop's
 * business (generate.h).
 *
 * Copy bias: before everything else, tokens that occur in a source text
 * (copy_ids, e.g. the text being summarised) get copy_bias added to their
 * logits, so decoding prefers the source's own words over invented ones.
 * The bonus is bounded (LM_COPY_BIAS_MAX) and deterministic: it only
 * reorders close candidates, it never makes an unlikely token win alone.
 */
#ifndef LM_SAMPLER_H
#define LM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sampling settings; lm_sampler_default_params() gives "greedy, no penalties". */
typedef struct lm_sampler_params
{
	float		temperature;	/* <= 0: greedy (argmax) */
	int32_t		top_k;			/* keep the k most likely; <= 0: off */
	float		top_p;			/* keep the smallest set with probability >= p; >= 1: off */
	float		min_p;			/* drop tokens below min_p * p(best); <= 0: off */
	float		repeat_penalty; /* divide positive / multiply negative logits of seen tokens; 1: off */
	float		freq_penalty;	/* subtract count * freq_penalty; 0: off */
	float		presence_penalty;	/* subtract presence_penalty once per seen token; 0: off */
	int32_t		penalty_last_n; /* window of accepted tokens the penalties look at; 0: off */
	uint64_t	seed;			/* RNG seed */
	float		copy_bias;		/* logit bonus for tokens of copy_ids, 0..LM_COPY_BIAS_MAX; 0: off */
	const int32_t *copy_ids;	/* source tokens the bonus goes to (read at creation only) */
	int32_t		n_copy_ids;		/* count */
} lm_sampler_params;

/* Largest copy bias accepted (logits). */
#define LM_COPY_BIAS_MAX 10.0f

typedef struct lm_sampler lm_sampler;

/* Greedy, no penalties, seed 0. */
extern lm_sampler_params lm_sampler_default_params(void);

/* Create a sampler for a vocabulary of n_vocab tokens; NULL with a message on failure. */
extern lm_sampler *lm_sampler_create(const lm_sampler_params *p, int n_vocab, char *err, size_t errlen);

/* Free; NULL is allowed. */
extern void lm_sampler_free(lm_sampler *s);

/* Forget the history and reseed (same seed as created). */
extern void lm_sampler_reset(lm_sampler *s);

/* Record a token (prompt or generated) in the penalty window. */
extern void lm_sampler_accept(lm_sampler *s, int32_t token);

/* Choose a token from n_vocab logits (not modified). */
extern int32_t lm_sampler_sample(lm_sampler *s, const float *logits);

/*
 * The same, given the row's lm_argmax when the caller already has it (a
 * compute device computes it beside the logits), else -1: greedy sampling
 * then reads no more of the row than the copy set.
 */
extern int32_t lm_sampler_sample_hinted(lm_sampler *s, const float *logits, int32_t argmax);

/* Index of the largest of n values, the lowest index on ties. */
extern int32_t lm_argmax(const float *x, int n);

/* The log-softmax normaliser of one row of logits (for scoring continuations). */
typedef struct lm_lognorm
{
	float		mx;				/* largest logit */
	double		log_sum;		/* log(sum(exp(logit - mx))), summed in double in id order */
} lm_lognorm;

/* The normaliser of n_vocab logits. */
extern lm_lognorm lm_lognorm_of(const float *logits, int n_vocab);

/* log p(token | logits) given the row's normaliser: logit - mx - log_sum, in double. */
extern double lm_logprob(const float *logits, lm_lognorm z, int32_t token);

/* Next raw 64 random bits of the sampler's generator (for tests). */
extern uint64_t lm_sampler_rand(lm_sampler *s);

#endif							/* LM_SAMPLER_H */
