/*
 * test_gemm_i16.c — the 13-bit integer GEMM (gemm_i16.h) that the bert
 * encoder runs on by default: every kernel path (scalar, AVX2, AVX-512)
 * quantizes activations to the same integers and gives the same floats as
 * an independent reference of the header's formula (exact block sums in
 * 64-bit integers, added in float block by block, then the two scales and
 * the bias), for whole and partial panels, odd inner sizes, several blocks,
 * every tile remainder, and a row computed alone; the sums stay exact at
 * the largest magnitudes (no int32 overflow in a block); and the result is
 * close to the float product.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_i16.h"
#include "kernels.h"
#include "unit.h"

/* A reproducible float in [-1, 1) with varied low bits. */
static float
rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float) ((int32_t) (*s >> 8) - (1 << 23)) / (float) (1 << 23) * 1.37f;
}

/* Reference quantization of one row of k floats: the integers and the scale. */
static float
ref_quant(const float *x, int64_t k, int16_t *q)
{
	float		amax = 0.0f,
				inv;

	for (int64_t i = 0; i < k; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	inv = amax > 0.0f ? 4095.0f / amax : 0.0f;
	for (int64_t i = 0; i < k; i++)
	{
		long		v = lrintf(x[i] * inv);

		q[i] = (int16_t) (v > 4095 ? 4095 : v < -4095 ? -4095 : v);
	}
	return amax / 4095.0f;
}

/* Reference product of one weight row and one activation row (quantized), as gemm_i16.h defines it. */
static float
ref_dot(const int16_t *w, float ws, const int16_t *x, float xs, int64_t k, const float *bias)
{
	float		acc = 0.0f,
				y;

	for (int64_t b0 = 0; b0 < k; b0 += 128)
	{
		int64_t		s = 0;

		for (int64_t i = b0; i < k && i < b0 + 128; i++)
			s += (int64_t) w[i] * x[i];
		acc += (float) s;
	}
	y = (acc * ws) * xs;
	return bias ? y + *bias : y;
}

/* Random shapes on every path against the reference. */
static void
test_paths(void)
{
	static const struct
	{
		int64_t		k;			/* inner size */
		int64_t		rows;		/* weight rows */
		int			n;			/* activation rows */
	}			shapes[] = {
		{1, 1, 1}, {7, 5, 3}, {32, 32, 6}, {33, 64, 13}, {129, 70, 25}, {384, 96, 31}, {385, 47, 7}, {1536, 40, 8},
	};
	lm_isa		best = lm_kernels_best_isa(),
				prev = lm_kernels_isa();
	uint32_t	seed = 777;

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
	{
		int64_t		k = shapes[s].k,
					R = shapes[s].rows,
					kp = GEMM_I16_KPAD(k),
					xs = k + 3,
					qs = kp + 4,
					ys = R + 2;
		int			n = shapes[s].n;
		float	   *W = malloc(sizeof(float) * R * k),
				   *X = malloc(sizeof(float) * n * xs),
				   *B = malloc(sizeof(float) * R),
				   *want = calloc((size_t) n * ys, sizeof(float)),
				   *got = calloc((size_t) n * ys, sizeof(float)),
				   *one = calloc((size_t) ys, sizeof(float)),
				   *wsc = malloc(sizeof(float) * R),
				   *xsc = malloc(sizeof(float) * n),
				   *gsc = malloc(sizeof(float) * n);
		int16_t    *Wq = malloc(sizeof(int16_t) * R * k),
				   *Xq = malloc(sizeof(int16_t) * n * k),
				   *Q = malloc(sizeof(int16_t) * n * qs);
		lm_gemm_i16_weight qw;
		double		err = 0.0,
					mag = 0.0;

		for (int64_t i = 0; i < R * k; i++)
			W[i] = rnd(&seed) * (i % 17 == 3 ? 4.0f : 1.0f);
		for (int64_t i = 0; i < n * xs; i++)
			X[i] = (i % xs) < k ? rnd(&seed) : NAN;
		for (int64_t r = 0; r < R; r++)
			B[r] = rnd(&seed);
		X[0] = 0.0f;
		if (n > 1)
			for (int64_t i = 0; i < k; i++)
				X[xs + i] = 0.0f;	/* an all-zero row */
		for (int64_t r = 0; r < R; r++)
			wsc[r] = ref_quant(W + r * k, k, Wq + r * k);
		for (int t = 0; t < n; t++)
			xsc[t] = ref_quant(X + t * xs, k, Xq + t * k);
		CHECK(lm_gemm_i16_weight_make(W, R, k, &qw), "k %lld: weights quantized", (long long) k);
		for (int with_bias = 0; with_bias < 2; with_bias++)
		{
			const float *bias = with_bias ? B : NULL;

			for (int t = 0; t < n; t++)
				for (int64_t r = 0; r < R; r++)
					want[t * ys + r] = ref_dot(Wq + r * k, wsc[r], Xq + t * k, xsc[t], k, bias ? bias + r : NULL);
			for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
			{
				bool		same_q = true,
							same_rows = true,
							same_alone;

				lm_kernels_force_isa((lm_isa) isa);
				memset(Q, 0x55, sizeof(int16_t) * n * qs);
				lm_gemm_i16_quantize_rows(X, xs, k, 0, n, Q, qs, gsc);
				for (int t = 0; t < n; t++)
					same_q &= memcmp(Q + t * qs, Xq + t * k, sizeof(int16_t) * k) == 0 && gsc[t] == xsc[t] &&
						(k % 2 == 0 || Q[t * qs + k] == 0);
				memset(got, 0, sizeof(float) * n * ys);
				/* split at a panel boundary and at the ragged end */
				lm_gemm_i16_rows(&qw, 0, R > 32 ? 32 : R, Q, qs, gsc, n, got, ys, bias);
				if (R > 32)
					lm_gemm_i16_rows(&qw, 32, R, Q, qs, gsc, n, got, ys, bias);
				for (int t = 0; t < n; t++)
					same_rows &= memcmp(got + t * ys, want + t * ys, sizeof(float) * R) == 0;
				lm_gemm_i16_rows(&qw, 0, R, Q + (size_t) (n - 1) * qs, qs, gsc + n - 1, 1, one, ys, bias);
				same_alone = memcmp(one, want + (size_t) (n - 1) * ys, sizeof(float) * R) == 0;
				CHECK(same_q && same_rows && same_alone,
					  "isa %d, k %lld, %lld weight rows, %d activation rows%s: the reference's integers and floats "
					  "(quantized %d, rows %d, alone %d)", isa, (long long) k, (long long) R, n,
					  with_bias ? ", bias" : "", same_q, same_rows, same_alone);
			}
		}
		/* close to the float product: the error is a small part of the output's size */
		for (int t = 0; t < n; t++)
			for (int64_t r = 0; r < R; r++)
			{
				double		d = 0.0;

				for (int64_t i = 0; i < k; i++)
					d += (double) W[r * k + i] * X[t * xs + i];
				err += fabs(d - (got[t * ys + r] - B[r]));
				mag += fabs(d);
			}
		CHECK(err <= 1e-3 * mag + 1e-6, "k %lld: mean |error| %.3g of the float product's mean size %.3g (<= 0.1%%)",
			  (long long) k, err / (n * R), mag / (n * R));
		lm_kernels_force_isa(prev);
		lm_gemm_i16_weight_free(&qw);
		free(W);
		free(X);
		free(B);
		free(want);
		free(got);
		free(one);
		free(wsc);
		free(xsc);
		free(gsc);
		free(Wq);
		free(Xq);
		free(Q);
	}
}

/* All magnitudes at the largest level: every block's sum (128 x 4095^2) is exact in int32 on every path. */
static void
test_extremes(void)
{
	int64_t		k = 1536;
	lm_isa		best = lm_kernels_best_isa(),
				prev = lm_kernels_isa();
	float	   *W = malloc(sizeof(float) * 32 * k),
			   *X = malloc(sizeof(float) * 2 * k),
				Y[2 * 32],
				sc[2];
	int16_t    *Q = malloc(sizeof(int16_t) * 2 * k);
	lm_gemm_i16_weight qw;

	for (int64_t i = 0; i < 32 * k; i++)
		W[i] = (i / k) % 2 ? -1.0f : 1.0f;
	for (int64_t i = 0; i < 2 * k; i++)
		X[i] = i < k ? 1.0f : -1.0f;
	CHECK(lm_gemm_i16_weight_make(W, 32, k, &qw), "extreme weights quantized");
	for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
	{
		bool		exact = true;

		lm_kernels_force_isa((lm_isa) isa);
		lm_gemm_i16_quantize_rows(X, k, k, 0, 2, Q, k, sc);
		lm_gemm_i16_rows(&qw, 0, 32, Q, k, sc, 2, Y, 32, NULL);
		for (int t = 0; t < 2; t++)
			for (int r = 0; r < 32; r++)
				exact &= fabsf(Y[t * 32 + r] - (float) k * (t ? -1.0f : 1.0f) * (r % 2 ? -1.0f : 1.0f)) <= 1e-3f * k;
		CHECK(exact, "isa %d: products at +-4095 over 1536 elements are exact (+-%lld within float scaling)", isa, (long long) k);
	}
	lm_kernels_force_isa(prev);
	lm_gemm_i16_weight_free(&qw);
	free(W);
	free(X);
	free(Q);
}

int
main(void)
{
	test_paths();
	test_extremes();
	return unit_done();
}
