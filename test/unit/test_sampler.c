/*
 * test_sampler.c — greedy ties, temperature, top-k, top-p, min-p, the three
 * penalties and their window, and seeded reproducibility.
 */
#include <math.h>
#include <string.h>

#include "sampler.h"
#include "unit.h"

#define NV 8

/* The loop lm_argmax must agree with: best = i when x[i] > x[best]. */
static int32_t
argmax_reference(const float *x, int n)
{
	int32_t		best = 0;

	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

/*
 * lm_argmax against the reference loop on many lengths and values drawn
 * from a small set (ties, zeros of both signs, infinities, NaN anywhere,
 * x[0] included): the number of disagreements.
 */
static int
argmax_mismatches(void)
{
	static const float pool[] = {1.0f, 2.0f, 2.0f, -0.0f, 0.0f, -1.0f, INFINITY, -INFINITY, NAN, 3.0f};
	float		x[300];
	uint64_t	r = 12345;
	int			bad = 0;

	for (int trial = 0; trial < 20000; trial++)
	{
		int			n = 1 + trial % 300;

		for (int i = 0; i < n; i++)
		{
			r = r * 6364136223846793005ULL + 1442695040888963407ULL;
			/* mostly finite values, rarely infinities or NaN */
			x[i] = (r >> 60) < 14 ? pool[(r >> 33) % 6] : pool[6 + (r >> 33) % 4];
		}
		if (lm_argmax(x, n) != argmax_reference(x, n))
			bad++;
	}
	return bad;
}

/* Sample `draws` times and count how often each token comes out. */
static void
histogram(lm_sampler_params *p, const float *logits, int draws, int *count)
{
	char		err[128];
	lm_sampler *s = lm_sampler_create(p, NV, err, sizeof(err));

	memset(count, 0, sizeof(int) * NV);
	for (int i = 0; i < draws; i++)
		count[lm_sampler_sample(s, logits)]++;
	lm_sampler_free(s);
}

int
main(void)
{
	char		err[128];
	float		logits[NV] = {1.0f, 3.0f, 3.0f, 2.0f, 0.5f, -1.0f, 2.5f, 0.0f};
	lm_sampler_params p = lm_sampler_default_params();
	lm_sampler *s;
	int			count[NV];

	/* greedy */
	s = lm_sampler_create(&p, NV, err, sizeof(err));
	CHECK(s && lm_sampler_sample(s, logits) == 1, "greedy picks the largest logit, the lowest id on a tie (1 over 2)");
	CHECK(lm_argmax(logits, NV) == 1, "lm_argmax breaks ties toward the lowest id");
	{
		int			bad = argmax_mismatches();

		CHECK(bad == 0, "lm_argmax (vectorised) equals the one-by-one loop on 20000 arrays of 1..300 values "
			  "with ties, signed zeros, infinities and NaN (%d differ)", bad);
	}
	lm_sampler_free(s);

	/* repetition penalty inside and outside the window */
	p = lm_sampler_default_params();
	p.repeat_penalty = 2.0f;
	p.penalty_last_n = 2;
	s = lm_sampler_create(&p, NV, err, sizeof(err));
	lm_sampler_accept(s, 1);
	CHECK(lm_sampler_sample(s, logits) == 2, "repeat penalty 2 halves token 1's logit (3 -> 1.5), so greedy picks 2");
	lm_sampler_accept(s, 2);
	CHECK(lm_sampler_sample(s, logits) == 6, "with 1 and 2 both penalised greedy picks 6 (2.5)");
	lm_sampler_accept(s, 3);
	lm_sampler_accept(s, 6);
	CHECK(lm_sampler_sample(s, logits) == 1, "tokens that left the window (last_n = 2) are no longer penalised");
	lm_sampler_free(s);
	{
		float		neg[NV] = {-1.0f, -1.2f, -5, -5, -5, -5, -5, -5};

		p = lm_sampler_default_params();
		p.repeat_penalty = 1.5f;
		p.penalty_last_n = 4;
		s = lm_sampler_create(&p, NV, err, sizeof(err));
		lm_sampler_accept(s, 0);
		CHECK(lm_sampler_sample(s, neg) == 1, "repeat penalty multiplies a negative logit (-1 -> -1.5 < -1.2)");
		lm_sampler_free(s);
	}

	/* frequency and presence penalties */
	p = lm_sampler_default_params();
	p.freq_penalty = 0.4f;
	p.penalty_last_n = 8;
	s = lm_sampler_create(&p, NV, err, sizeof(err));
	lm_sampler_accept(s, 1);
	lm_sampler_accept(s, 2);
	lm_sampler_accept(s, 2);
	lm_sampler_accept(s, 2);
	CHECK(lm_sampler_sample(s, logits) == 1, "frequency penalty scales with the count (1: 3-0.4, 2: 3-1.2)");
	lm_sampler_free(s);
	p = lm_sampler_default_params();
	p.presence_penalty = 0.7f;
	p.penalty_last_n = 8;
	s = lm_sampler_create(&p, NV, err, sizeof(err));
	lm_sampler_accept(s, 1);
	lm_sampler_accept(s, 2);
	lm_sampler_accept(s, 2);
	CHECK(lm_sampler_sample(s, logits) == 6, "presence penalty subtracts once per seen token (1, 2: 2.3 < 2.5)");
	lm_sampler_free(s);

	/* same seed, same tokens; another seed, another sequence */
	{
		int			a[64],
					b[64],
					c[64],
					same_ab = 1,
					same_ac = 1;
		lm_sampler *s1,
				   *s2,
				   *s3;

		p = lm_sampler_default_params();
		p.temperature = 1.0f;
		p.seed = 42;
		s1 = lm_sampler_create(&p, NV, err, sizeof(err));
		s2 = lm_sampler_create(&p, NV, err, sizeof(err));
		p.seed = 43;
		s3 = lm_sampler_create(&p, NV, err, sizeof(err));
		for (int i = 0; i < 64; i++)
		{
			a[i] = lm_sampler_sample(s1, logits);
			b[i] = lm_sampler_sample(s2, logits);
			c[i] = lm_sampler_sample(s3, logits);
			same_ab &= a[i] == b[i];
			same_ac &= a[i] == c[i];
		}
		CHECK(same_ab, "two samplers with the same seed draw the same 64 tokens");
		CHECK(!same_ac, "a different seed draws a different sequence");
		lm_sampler_reset(s1);
		same_ab = 1;
		for (int i = 0; i < 64; i++)
			same_ab &= lm_sampler_sample(s1, logits) == a[i];
		CHECK(same_ab, "reset replays the same draws");
		lm_sampler_free(s1);
		lm_sampler_free(s2);
		lm_sampler_free(s3);
	}

	/* temperature 1 follows softmax; low temperature concentrates */
	p = lm_sampler_default_params();
	p.temperature = 1.0f;
	p.seed = 7;
	histogram(&p, logits, 40000, count);
	{
		double		z = 0;
		int			ok = 1;

		for (int i = 0; i < NV; i++)
			z += exp(logits[i]);
		for (int i = 0; i < NV; i++)
		{
			double		want = exp(logits[i]) / z * 40000;

			if (fabs(count[i] - want) > 5 * sqrt(want) + 5)
				ok = 0;
		}
		CHECK(ok, "temperature 1 draws each token with its softmax probability (40000 draws, 5 sigma)");
	}
	p.temperature = 0.05f;
	histogram(&p, logits, 2000, count);
	CHECK(count[1] + count[2] == 2000 && count[1] > 800 && count[2] > 800,
		  "temperature 0.05 leaves only the two tied best tokens, about evenly (%d / %d)", count[1], count[2]);

	/* top-k */
	p = lm_sampler_default_params();
	p.temperature = 1.0f;
	p.top_k = 3;
	histogram(&p, logits, 5000, count);
	CHECK(count[1] > 0 && count[2] > 0 && count[6] > 0 && count[1] + count[2] + count[6] == 5000,
		  "top-k 3 draws only the three best tokens (1, 2, 6)");
	p.top_k = 1;
	histogram(&p, logits, 500, count);
	CHECK(count[1] == 500, "top-k 1 is greedy (lowest id on the tie)");

	/* top-p: p(1)=p(2)~0.30, p(6)~0.18, p(3)~0.11: top_p 0.6 keeps 1 and 2 only */
	p = lm_sampler_default_params();
	p.temperature = 1.0f;
	p.top_p = 0.6f;
	histogram(&p, logits, 5000, count);
	CHECK(count[1] + count[2] == 5000 && count[1] > 0 && count[2] > 0, "top-p 0.6 keeps the smallest set reaching 0.6 (tokens 1, 2)");
	p.top_p = 0.7f;
	histogram(&p, logits, 5000, count);
	CHECK(count[1] + count[2] + count[6] == 5000 && count[6] > 0, "top-p 0.7 adds the next token (6)");

	/* min-p: p(6)/p(1) = e^-0.5 = 0.61, p(3)/p(1) = e^-1 = 0.37 */
	p = lm_sampler_default_params();
	p.temperature = 1.0f;
	p.min_p = 0.5f;
	histogram(&p, logits, 5000, count);
	CHECK(count[1] + count[2] + count[6] == 5000 && count[6] > 0, "min-p 0.5 keeps tokens at least half as likely as the best (1, 2, 6)");

	/* copy bias: logits {1, 3, 3, 2, 0.5, -1, 2.5, 0}; source tokens 3 and 7 (7 twice, 99 out of range) */
	{
		int32_t		src[] = {7, 3, 7, 99, -1};

		p = lm_sampler_default_params();
		p.copy_bias = 1.5f;
		p.copy_ids = src;
		p.n_copy_ids = 5;
		s = lm_sampler_create(&p, NV, err, sizeof(err));
		CHECK(s && lm_sampler_sample(s, logits) == 3, "a copy bias of 1.5 lets source token 3 (2 + 1.5) beat token 1 (3)");
		lm_sampler_free(s);
		p.copy_bias = 0.5f;
		s = lm_sampler_create(&p, NV, err, sizeof(err));
		CHECK(s && lm_sampler_sample(s, logits) == 1, "a copy bias of 0.5 is not enough: it only reorders close candidates");
		lm_sampler_free(s);
		p.copy_bias = LM_COPY_BIAS_MAX + 1.0f;
		s = lm_sampler_create(&p, NV, err, sizeof(err));
		CHECK(s == NULL, "a copy bias above LM_COPY_BIAS_MAX is refused");
		p.copy_bias = 1.0f;
		p.copy_ids = NULL;
		s = lm_sampler_create(&p, NV, err, sizeof(err));
		CHECK(s == NULL, "copy ids counted but missing are refused");
	}

	/*
	 * Greedy with a copy bias takes a short path (no copy of the logits):
	 * the same token as the argmax of the biased logits, on random rows
	 * with many ties (values on a coarse grid), NaNs and +-inf.
	 */
	{
		enum {V = 300, ROWS = 3000};
		float		row[V],
					biased[V];
		int32_t		src[40];
		bool		all = true;
		uint32_t	x = 12345;

		for (int r = 0; r < ROWS && all; r++)
		{
			bool		in[V] = {false};
			int			n_src = 1 + r % 40;

			for (int i = 0; i < V; i++)
			{
				x = x * 1664525u + 1013904223u;
				row[i] = (float) ((x >> 20) % 16) * 0.25f;
				if (r % 7 == 0 && (x >> 8) % 97 == 0)
					row[i] = (x >> 9) % 2 ? NAN : INFINITY;
			}
			for (int k = 0; k < n_src; k++)
			{
				x = x * 1664525u + 1013904223u;
				src[k] = (int32_t) ((x >> 12) % V);
				in[src[k]] = true;
			}
			p = lm_sampler_default_params();
			p.copy_bias = r % 3 == 0 ? 0.25f : r % 3 == 1 ? 0.5f : 2.0f;
			p.copy_ids = src;
			p.n_copy_ids = n_src;
			for (int i = 0; i < V; i++)
				biased[i] = in[i] ? row[i] + p.copy_bias : row[i];
			s = lm_sampler_create(&p, V, err, sizeof(err));
			if (!s || lm_sampler_sample(s, row) != lm_argmax(biased, V) ||
				lm_sampler_sample_hinted(s, row, lm_argmax(row, V)) != lm_argmax(biased, V))
			{
				all = false;
				printf("# row %d: sampler %d, argmax of the biased logits %d\n", r, s ? lm_sampler_sample(s, row) : -1,
					   lm_argmax(biased, V));
			}
			lm_sampler_free(s);
		}
		CHECK(all, "greedy with a copy bias picks the argmax of the biased logits (%d random rows with ties, NaN, inf), "
			  "with the row's argmax given or not", ROWS);
	}

	/* a given argmax is taken as it is for plain greedy, but not for a row starting with NaN, nor out of range */
	{
		float		row[4] = {1.0f, 5.0f, 2.0f, 5.0f};

		p = lm_sampler_default_params();
		s = lm_sampler_create(&p, 4, err, sizeof(err));
		CHECK(s && lm_sampler_sample_hinted(s, row, 1) == 1 && lm_sampler_sample_hinted(s, row, 7) == 1 &&
			  lm_sampler_sample_hinted(s, row, -1) == 1, "plain greedy takes a given argmax; an out-of-range one is ignored");
		row[0] = NAN;
		CHECK(s && lm_sampler_sample_hinted(s, row, 3) == 0, "a row starting with NaN gives 0, as lm_argmax does");
		lm_sampler_free(s);
	}

	/* bad parameters */
	p = lm_sampler_default_params();
	p.repeat_penalty = 0.0f;
	s = lm_sampler_create(&p, NV, err, sizeof(err));
	CHECK(s == NULL && err[0], "a repeat penalty of 0 is refused (%s)", err);
	p = lm_sampler_default_params();
	s = lm_sampler_create(&p, 0, err, sizeof(err));
	CHECK(s == NULL, "an empty vocabulary is refused");
	return unit_done();
}
