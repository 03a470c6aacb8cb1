/*
 * sampler.c — greedy and seeded random sampling (see sampler.h for the order
 * of the steps).
 */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A candidate token. */
typedef struct cand
{
	int32_t		id;				/* token id */
	float		logit;			/* (penalised) logit, then probability */
} cand;

/* A sampler. */
struct lm_sampler
{
	lm_sampler_params p;		/* settings */
	int			n_vocab;		/* logits per call */
	uint64_t	rng[4];			/* xoshiro256** state */
	int32_t    *hist;			/* ring of the last penalty_last_n tokens */
	int			hist_n;			/* tokens in the ring */
	int			hist_pos;		/* next write index */
	int32_t    *counts;			/* (n_vocab) scratch, all zero between calls */
	float	   *work;			/* (n_vocab) penalised logits */
	cand	   *cands;			/* (n_vocab) candidates */
	int32_t    *copy;			/* distinct in-vocabulary copy_ids, ascending */
	int			n_copy;			/* count */
};

/* splitmix64 step, used to seed the generator. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Rotate left. */
static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** next value. */
uint64_t
lm_sampler_rand(lm_sampler *s)
{
	uint64_t   *r = s->rng;
	uint64_t	result = rotl(r[1] * 5, 7) * 9;
	uint64_t	t = r[1] << 17;

	r[2] ^= r[0];
	r[3] ^= r[1];
	r[1] ^= r[2];
	r[0] ^= r[3];
	r[2] ^= t;
	r[3] = rotl(r[3], 45);
	return result;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double
rand_unit(lm_sampler *s)
{
	return (double) (lm_sampler_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Greedy, no penalties. */
lm_sampler_params
lm_sampler_default_params(void)
{
	lm_sampler_params p = {0.0f, 0, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0, 0, 0.0f, NULL, 0};

	return p;
}

/* The distinct in-vocabulary tokens of ids as s->copy, ascending (counts is scratch, left zero). */
static bool
copy_set_build(lm_sampler *s, const int32_t *ids, int n)
{
	s->n_copy = 0;
	for (int i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < s->n_vocab && s->counts[ids[i]]++ == 0)
			s->n_copy++;
	s->copy = malloc(sizeof(int32_t) * (s->n_copy > 0 ? s->n_copy : 1));
	if (!s->copy)
		return false;
	s->n_copy = 0;
	for (int32_t t = 0; t < s->n_vocab; t++)
		if (s->counts[t])
		{
			s->copy[s->n_copy++] = t;
			s->counts[t] = 0;
		}
	return true;
}

/* Create a sampler. */
lm_sampler *
lm_sampler_create(const lm_sampler_params *p, int n_vocab, char *err, size_t errlen)
{
	lm_sampler *s;

	if (n_vocab <= 0)
	{
		snprintf(err, errlen, "sampler needs a vocabulary of at least one token");
		return NULL;
	}
	if (p->penalty_last_n < 0 || p->penalty_last_n > (1 << 24) ||
		!isfinite(p->temperature) || !isfinite(p->top_p) || !isfinite(p->min_p) ||
		!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f ||
		!isfinite(p->freq_penalty) || !isfinite(p->presence_penalty) ||
		!(p->copy_bias >= 0.0f && p->copy_bias <= LM_COPY_BIAS_MAX) || p->n_copy_ids < 0 ||
		(p->n_copy_ids > 0 && p->copy_ids == NULL))
	{
		snprintf(err, errlen, "invalid sampling parameters (penalty window %d, repeat penalty %g)",
				 p->penalty_last_n, p->repeat_penalty);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->hist = malloc(sizeof(int32_t) * (p->penalty_last_n > 0 ? p->penalty_last_n : 1));
	s->counts = calloc(n_vocab, sizeof(int32_t));
	s->work = malloc(sizeof(float) * n_vocab);
	s->cands = malloc(sizeof(cand) * n_vocab);
	if (!s->hist || !s->counts || !s->work || !s->cands)
		goto oom;
	s->p.copy_ids = NULL;		/* borrowed: not kept */
	if (p->copy_bias > 0.0f && p->n_copy_ids > 0 && !copy_set_build(s, p->copy_ids, p->n_copy_ids))
		goto oom;
	lm_sampler_reset(s);
	return s;
oom:
	snprintf(err, errlen, "out of memory creating a sampler for %d tokens", n_vocab);
	lm_sampler_free(s);
	return NULL;
}

/* Free a sampler. */
void
lm_sampler_free(lm_sampler *s)
{
	if (!s)
		return;
	free(s->hist);
	free(s->counts);
	free(s->work);
	free(s->cands);
	free(s->copy);
	free(s);
}

/* Forget history; reseed. */
void
lm_sampler_reset(lm_sampler *s)
{
	uint64_t	x = s->p.seed;

	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->hist_n = 0;
	s->hist_pos = 0;
}

/* Record a token in the penalty window. */
void
lm_sampler_accept(lm_sampler *s, int32_t token)
{
	int			cap = s->p.penalty_last_n;

	if (cap <= 0 || token < 0 || token >= s->n_vocab)
		return;
	s->hist[s->hist_pos] = token;
	s->hist_pos = (s->hist_pos + 1) % cap;
	if (s->hist_n < cap)
		s->hist_n++;
}

/* 16 floats, and 16 ints for their comparison masks; aligned(4) reads any address. */
typedef float smp_vf __attribute__((vector_size(64), aligned(4)));
typedef int32_t smp_vi __attribute__((vector_size(64), aligned(4)));

/*
 * Index of the largest value, lowest index on ties: the loop "best = i when
 * x[i] > x[best]", computed in vectors.  That loop never leaves a NaN x[0]
 * and never takes a NaN, and two zeros compare equal; so the answer is 0
 * when x[0] is NaN, else the first index holding the largest of the other
 * values (found as the lane maxima by the same ">", then the first equal).
 */
int32_t
lm_argmax(const float *x, int n)
{
	float		best;
	int			i = 0;

	if (n <= 1 || isnan(x[0]))
		return 0;
	best = x[0];
	if (n >= 16)
	{
		smp_vf		m = (smp_vf) {0} + x[0];

		for (; i + 16 <= n; i += 16)
		{
			smp_vf		v = *(const smp_vf *) (x + i);
			smp_vi		gt = v > m;

			m = (smp_vf) (((smp_vi) v & gt) | ((smp_vi) m & ~gt));
		}
		for (int l = 0; l < 16; l++)
			if (m[l] > best)
				best = m[l];
	}
	for (int k = i; k < n; k++)
		if (x[k] > best)
			best = x[k];
	/* the first position holding it (x[0] when best never rose above it) */
	for (i = 0; i + 16 <= n; i += 16)
	{
		smp_vi		eq = *(const smp_vf *) (x + i) == ((smp_vf) {0} + best);
		bool		any = false;

		for (int l = 0; l < 16; l++)
			any |= eq[l] != 0;
		if (any)
			break;
	}
	for (; i < n; i++)
		if (x[i] == best)
			return i;
	return 0;
}

/* Order: higher logit first, then lower id (deterministic). */
static int
cand_cmp(const void *a, const void *b)
{
	const cand *x = a,
			   *y = b;

	if (x->logit != y->logit)
		return x->logit > y->logit ? -1 : 1;
	return x->id - y->id;
}

/* Whether the penalties change any logit now. */
static bool
penalties_active(const lm_sampler *s)
{
	const lm_sampler_params *p = &s->p;

	return s->hist_n > 0 &&
		(p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f);
}

/* Apply repetition/frequency/presence penalties to s->work. */
static void
apply_penalties(lm_sampler *s)
{
	const lm_sampler_params *p = &s->p;

	if (!penalties_active(s))
		return;
	for (int i = 0; i < s->hist_n; i++)
		s->counts[s->hist[i]]++;
	for (int i = 0; i < s->hist_n; i++)
	{
		int32_t		t = s->hist[i];
		int			c = s->counts[t];
		float	   *l = &s->work[t];

		if (c == 0)
			continue;			/* already penalised */
		if (*l <= 0.0f)
			*l *= p->repeat_penalty;
		else
			*l /= p->repeat_penalty;
		*l -= (float) c * p->freq_penalty + p->presence_penalty;
		s->counts[t] = 0;
	}
}

/* Move the k best candidates of n to the front, sorted (quickselect, then sort). */
static void
select_top(cand *c, int n, int k)
{
	int			lo = 0,
				hi = n - 1;

	while (lo < hi)
	{
		cand		pivot = c[(lo + hi) / 2];
		int			i = lo,
					j = hi;

		while (i <= j)
		{
			while (cand_cmp(&c[i], &pivot) < 0)
				i++;
			while (cand_cmp(&c[j], &pivot) > 0)
				j--;
			if (i <= j)
			{
				cand		t = c[i];

				c[i] = c[j];
				c[j] = t;
				i++;
				j--;
			}
		}
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
	qsort(c, k, sizeof(cand), cand_cmp);
}

/*
 * Greedy with a copy bias and no penalties, without copying the logits:
 * the token lm_argmax would pick over the biased logits (the bias is > 0),
 * given best, the plain argmax.  No token outside the copy set can beat
 * best, so the winner is best or a copy token: the largest of their
 * biased values, the lowest index among equals (when best is itself a copy
 * token the loop meets it with its bias).  A batch of hundreds of
 * sequences a step (the worker on a GPU) samples this way in a fraction of
 * a full copy and second pass over the vocabulary.
 */
static int32_t
greedy_copy(const lm_sampler *s, const float *logits, int32_t best)
{
	float		bv = logits[best];

	if (isnan(logits[0]))
		return 0;				/* lm_argmax's answer for a row starting with NaN */
	for (int i = 0; i < s->n_copy; i++)
	{
		int32_t		c = s->copy[i];
		float		v = logits[c] + s->p.copy_bias;

		if (v > bv || (v == bv && c < best))
		{
			best = c;
			bv = v;
		}
	}
	return best;
}

/* Choose the next token. */
int32_t
lm_sampler_sample(lm_sampler *s, const float *logits)
{
	return lm_sampler_sample_hinted(s, logits, -1);
}

/* Choose the next token, given the row's argmax when known (-1: not known). */
int32_t
lm_sampler_sample_hinted(lm_sampler *s, const float *logits, int32_t argmax)
{
	const lm_sampler_params *p = &s->p;
	cand	   *c = s->cands;
	int			n = s->n_vocab;
	double		sum = 0.0,
				u,
				acc = 0.0;
	float		max;

	/* greedy on logits nothing changes: no copy */
	/* a hint is lm_argmax's answer but for a row starting with NaN (lm_argmax says 0 there) */
	if (argmax < 0 || argmax >= n || isnan(logits[0]))
		argmax = -1;
	if (p->temperature <= 0.0f && s->n_copy == 0 && !penalties_active(s))
		return argmax >= 0 ? argmax : lm_argmax(logits, n);
	if (p->temperature <= 0.0f && !penalties_active(s))
		return greedy_copy(s, logits, argmax >= 0 ? argmax : lm_argmax(logits, n));
	memcpy(s->work, logits, sizeof(float) * n);
	for (int i = 0; i < s->n_copy; i++)
		s->work[s->copy[i]] += p->copy_bias;
	apply_penalties(s);
	if (p->temperature <= 0.0f)
		return lm_argmax(s->work, n);

	for (int i = 0; i < n; i++)
	{
		c[i].id = i;
		c[i].logit = s->work[i];
	}
	/* top-k: keep the k best, sorted; otherwise sort only when top-p needs it */
	if (p->top_k > 0 && p->top_k < n)
	{
		select_top(c, n, p->top_k);
		n = p->top_k;
	}
	else if (p->top_p < 1.0f)
		qsort(c, n, sizeof(cand), cand_cmp);

	/* temperature and softmax (in double, max subtracted) */
	max = c[0].logit;
	for (int i = 1; i < n; i++)
		if (c[i].logit > max)
			max = c[i].logit;
	for (int i = 0; i < n; i++)
	{
		double		e = exp(((double) c[i].logit - max) / p->temperature);

		c[i].logit = (float) e;
		sum += e;
	}
	for (int i = 0; i < n; i++)
		c[i].logit = (float) (c[i].logit / sum);

	/* top-p: the shortest sorted prefix reaching probability top_p */
	if (p->top_p < 1.0f)
	{
		double		cum = 0.0;
		int			keep = n;

		for (int i = 0; i < n; i++)
		{
			cum += c[i].logit;
			if (cum >= p->top_p)
			{
				keep = i + 1;
				break;
			}
		}
		n = keep;
	}
	/* min-p: drop tokens less likely than min_p times the best */
	if (p->min_p > 0.0f)
	{
		float		best = 0.0f;
		int			w = 0;

		for (int i = 0; i < n; i++)
			if (c[i].logit > best)
				best = c[i].logit;
		for (int i = 0; i < n; i++)
			if (c[i].logit >= p->min_p * best)
				c[w++] = c[i];
		n = w;
	}

	/* draw */
	sum = 0.0;
	for (int i = 0; i < n; i++)
		sum += c[i].logit;
	u = rand_unit(s) * sum;
	for (int i = 0; i < n; i++)
	{
		acc += c[i].logit;
		if (u < acc)
			return c[i].id;
	}
	return c[n - 1].id;
}

/* The log-softmax normaliser of a row: its max, then the log of the sum of exp(l - max) in double. */
lm_lognorm
lm_lognorm_of(const float *logits, int n_vocab)
{
	lm_lognorm	z = {logits[0], 0.0};
	double		sum = 0.0;

	for (int i = 1; i < n_vocab; i++)
		z.mx = z.mx > logits[i] ? z.mx : logits[i];
	for (int i = 0; i < n_vocab; i++)
		sum += exp((double) logits[i] - z.mx);
	z.log_sum = log(sum);
	return z;
}

/* log p(token | logits). */
double
lm_logprob(const float *logits, lm_lognorm z, int32_t token)
{
	return (double) logits[token] - z.mx - z.log_sum;
}
