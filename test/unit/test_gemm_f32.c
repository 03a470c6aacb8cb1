/*
 * test_gemm_f32.c — the outer-product F32 GEMM (gemm_f32.h) that the bert
 * encoder runs on: every kernel path (scalar, AVX2, AVX-512) gives the same
 * floats as an fmaf chain over k in order (plus a bias added to the
 * finished sum, with or without), for whole and partial panels,
 * tiles of every activation-row count, strided weights (the packing that
 * attention uses on keys) and packed panels handed in directly; and an
 * output row does not depend on the other rows in the call.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_f32.h"
#include "kernels.h"
#include "unit.h"

/* A reproducible float in [-1, 1) with varied low bits. */
static float
rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float) ((int32_t) (*s >> 8) - (1 << 23)) / (float) (1 << 23) * 1.37f;
}

/* The reference: Y[t][r] = fmaf chain over i of W[r][i] * X[t][i], then + bias[r] if any. */
static void
reference(const float *W, int64_t ws, int64_t k, int64_t r0, int64_t r1, const float *X, int64_t xs, int n,
		  float *Y, int64_t ys, const float *bias)
{
	for (int t = 0; t < n; t++)
		for (int64_t r = r0; r < r1; r++)
		{
			float		a = 0.0f;

			for (int64_t i = 0; i < k; i++)
				a = fmaf(W[r * ws + i], X[t * xs + i], a);
			Y[t * ys + r] = bias ? a + bias[r] : a;
		}
}

/* Rows [r0, r1) of a strided W through pack + panel, as attention uses them. */
static void
strided(const float *W, int64_t ws, int64_t k, int64_t r0, int64_t r1, const float *X, int64_t xs, int n,
		float *Y, int64_t ys, const float *bias, float *P)
{
	for (int64_t r = r0; r < r1; r += GEMM_F32_PANEL)
	{
		int			nr = (int) (r1 - r < GEMM_F32_PANEL ? r1 - r : GEMM_F32_PANEL);

		lm_gemm_f32_pack(W, ws, k, r, nr, P);
		lm_gemm_f32_panel(P, k, nr, X, xs, n, Y + r, ys, bias ? bias + r : NULL);
	}
}

int
main(void)
{
	static const struct
	{
		int64_t		k;			/* inner size */
		int64_t		rows;		/* weight rows */
		int			n;			/* activation rows */
	}			shapes[] = {
		{1, 1, 1}, {7, 5, 3}, {32, 32, 12}, {33, 64, 13}, {96, 70, 25}, {384, 96, 31}, {100, 47, 7}, {64, 128, 24},
	};
	lm_isa		best = lm_kernels_best_isa(),
				prev = lm_kernels_isa();
	uint32_t	seed = 12345;

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
	{
		int64_t		k = shapes[s].k,
					R = shapes[s].rows,
					ws = k + 3,		/* strided copy of W, as keys sit in a wider row */
					xs = k + 5,
					ys = R + 2;
		int			n = shapes[s].n;
		float	   *W = malloc(sizeof(float) * R * k),
				   *Ws = malloc(sizeof(float) * R * ws),
				   *X = malloc(sizeof(float) * n * xs),
				   *want = calloc((size_t) n * ys, sizeof(float)),
				   *got = calloc((size_t) n * ys, sizeof(float)),
				   *one = calloc((size_t) ys, sizeof(float)),
				   *B = malloc(sizeof(float) * R),
				   *P = malloc(sizeof(float) * GEMM_F32_SCRATCH(k));

		for (int64_t i = 0; i < R * k; i++)
			W[i] = rnd(&seed);
		for (int64_t r = 0; r < R; r++)
			for (int64_t i = 0; i < ws; i++)
				Ws[r * ws + i] = i < k ? W[r * k + i] : NAN;
		for (int64_t i = 0; i < n * xs; i++)
			X[i] = (i % xs) < k ? rnd(&seed) : NAN;
		for (int64_t r = 0; r < R; r++)
			B[r] = rnd(&seed);
		for (int with_bias = 0; with_bias < 2; with_bias++)
		for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
		{
			const float *bias = with_bias ? B : NULL;
			bool		same_rows = true,
						same_strided = true,
						same_alone = true;

			reference(W, k, k, 0, R, X, xs, n, want, ys, bias);
			lm_kernels_force_isa((lm_isa) isa);
			/* whole matrix, split at a panel boundary and at a ragged end */
			memset(got, 0, sizeof(float) * n * ys);
			lm_gemm_f32_rows(W, k, 0, R > 32 ? 32 : R, X, xs, n, got, ys, bias, P);
			if (R > 32)
				lm_gemm_f32_rows(W, k, 32, R, X, xs, n, got, ys, bias, P);
			for (int t = 0; t < n; t++)
				same_rows &= memcmp(got + t * ys, want + t * ys, sizeof(float) * R) == 0;
			/* strided weights through pack + panel */
			memset(got, 0, sizeof(float) * n * ys);
			strided(Ws, ws, k, 0, R, X, xs, n, got, ys, bias, P);
			for (int t = 0; t < n; t++)
				same_strided &= memcmp(got + t * ys, want + t * ys, sizeof(float) * R) == 0;
			/* the last activation row alone */
			lm_gemm_f32_rows(W, k, 0, R, X + (size_t) (n - 1) * xs, xs, 1, one, ys, bias, P);
			same_alone = memcmp(one, want + (size_t) (n - 1) * ys, sizeof(float) * R) == 0;
			CHECK(same_rows && same_strided && same_alone,
				  "isa %d, k %lld, %lld weight rows, %d activation rows%s: the fmaf chain's floats (rows %d, strided %d, alone %d)",
				  isa, (long long) k, (long long) R, n, with_bias ? ", bias" : "", same_rows, same_strided, same_alone);
		}
		lm_kernels_force_isa(prev);
		free(W);
		free(Ws);
		free(X);
		free(want);
		free(got);
		free(one);
		free(P);
		free(B);
	}
	return unit_done();
}
