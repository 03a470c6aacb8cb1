/*
 * test_kernels.c — the matrix kernels: every weight type against an
 * independent double-precision reference, bit equality between the scalar,
 * AVX2 and AVX-512 paths, batch invariance, and ggml's activation rounding.
 */
#include "kernels.h"
#include "quant.h"
#include "unit.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64* random numbers. */
static uint64_t
rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Uniform float in [-1, 1). */
static float
rndf(void)
{
	return (float) ((double) (rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Random fp16 scale of magnitude ~ 2^-8 .. 2^-4, possibly negative when signed_ok. */
static uint16_t
rnd_scale(int signed_ok)
{
	float		v = ldexpf(1.0f + 0.5f * rndf(), -4 - (int) (rnd() % 5));

	if (signed_ok && (rnd() & 1))
		v = -v;
	return lm_fp32_to_fp16(v);
}

/* Fill one row of n_cols weights of type t with random but valid content. */
static void
fill_row(lm_type t, void *row, int64_t n)
{
	const lm_type_traits *tr = lm_type_traits_get(t);
	int64_t		nb = n / tr->block_size;
	uint8_t    *p = row;

	for (size_t i = 0; i < (size_t) nb * tr->type_size; i++)
		p[i] = (uint8_t) rnd();
	for (int64_t b = 0; b < nb; b++)
	{
		switch (t)
		{
			case LM_TYPE_F32:
				((float *) row)[b] = rndf();
				break;
			case LM_TYPE_F16:
				((uint16_t *) row)[b] = lm_fp32_to_fp16(rndf());
				break;
			case LM_TYPE_BF16:
				((uint16_t *) row)[b] = lm_fp32_to_bf16(rndf());
				break;
			case LM_TYPE_Q4_0:
				((lm_block_q4_0 *) row)[b].d = rnd_scale(1);
				break;
			case LM_TYPE_Q5_0:
				((lm_block_q5_0 *) row)[b].d = rnd_scale(1);
				break;
			case LM_TYPE_Q8_0:
				((lm_block_q8_0 *) row)[b].d = rnd_scale(1);
				for (int j = 0; j < 32; j++)
					if (((lm_block_q8_0 *) row)[b].qs[j] == -128)
						((lm_block_q8_0 *) row)[b].qs[j] = -127;
				break;
			case LM_TYPE_Q4_1:
				((lm_block_q4_1 *) row)[b].d = rnd_scale(0);
				((lm_block_q4_1 *) row)[b].m = rnd_scale(1);
				break;
			case LM_TYPE_Q5_1:
				((lm_block_q5_1 *) row)[b].d = rnd_scale(0);
				((lm_block_q5_1 *) row)[b].m = rnd_scale(1);
				break;
			case LM_TYPE_Q4_K:
				((lm_block_q4_K *) row)[b].d = rnd_scale(0);
				((lm_block_q4_K *) row)[b].dmin = rnd_scale(0);
				break;
			case LM_TYPE_Q5_K:
				((lm_block_q5_K *) row)[b].d = rnd_scale(0);
				((lm_block_q5_K *) row)[b].dmin = rnd_scale(0);
				break;
			case LM_TYPE_Q6_K:
				((lm_block_q6_K *) row)[b].d = rnd_scale(0);
				break;
			default:
				break;
		}
	}
}

/* Random activations with a varying scale per 32 (so quantization is exercised). */
static void
fill_act(float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
	{
		float		s = (float) (1 + (i / 32) % 7);

		x[i] = rndf() * s;
		if (rnd() % 97 == 0)
			x[i] = 0.0f;
	}
}

static const lm_type all_types[] = {
	LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16, LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0,
	LM_TYPE_Q5_1, LM_TYPE_Q8_0, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K
};

#define MAXB 5
#define NROWS 7

/* Check one type at one width: reference accuracy, ISA bit equality, batch invariance. */
static void
check_type(lm_type t, int64_t n)
{
	const lm_type_traits *tr = lm_type_traits_get(t);
	lm_type		at = lm_vec_dot_type(t);
	size_t		wrow = (size_t) (n / tr->block_size) * tr->type_size;
	size_t		xrow = lm_act_row_size(t, n);
	uint8_t    *W = malloc(wrow * NROWS);
	uint8_t    *X = malloc(xrow * MAXB);
	float	   *xf = malloc(sizeof(float) * n);
	float	   *wd = malloc(sizeof(float) * n);
	float	   *xd = malloc(sizeof(float) * n);
	float		Yref[MAXB * NROWS],
				Y[MAXB * NROWS],
				Y1[MAXB * NROWS];
	double		worst = 0.0;
	int			ok_acc = 1,
				ok_bits = 1,
				ok_inv = 1;
	lm_isa		best = lm_kernels_best_isa();

	for (int r = 0; r < NROWS; r++)
		fill_row(t, W + r * wrow, n);
	for (int b = 0; b < MAXB; b++)
	{
		fill_act(xf, n);
		lm_act_quantize_row(t, xf, X + b * xrow, n);
	}

	/* accuracy: scalar path vs dequantize-and-dot in double */
	lm_kernels_force_isa(LM_ISA_SCALAR);
	lm_matmul_rows(t, W, wrow, n, 0, NROWS, X, xrow, MAXB, Yref, NROWS);
	for (int r = 0; r < NROWS; r++)
	{
		lm_dequantize_row(t, W + r * wrow, wd, n);
		for (int b = 0; b < MAXB; b++)
		{
			double		ref = 0.0,
						mag = 0.0,
						tol;

			lm_dequantize_row(at, X + b * xrow, xd, n);
			for (int64_t i = 0; i < n; i++)
			{
				ref += (double) wd[i] * xd[i];
				mag += fabs((double) wd[i] * xd[i]);
			}
			tol = 1e-5 * mag + 1e-6;
			if (at == LM_TYPE_Q8_1)
			{
				/* the kernel uses s = fp16(d * sum q), rounded to 11 bits */
				const lm_block_q8_1 *xb = (const lm_block_q8_1 *) (X + b * xrow);

				for (int64_t k = 0; k < n / 32; k++)
				{
					float		m = t == LM_TYPE_Q4_1 ? lm_fp16_to_fp32(((lm_block_q4_1 *) (W + r * wrow))[k].m)
						: lm_fp16_to_fp32(((lm_block_q5_1 *) (W + r * wrow))[k].m);

					tol += fabs(m * lm_fp16_to_fp32(xb[k].s)) * 1e-3;
				}
			}
			if (fabs(Yref[b * NROWS + r] - ref) > tol)
				ok_acc = 0;
			if (fabs(Yref[b * NROWS + r] - ref) / (mag + 1e-30) > worst)
				worst = fabs(Yref[b * NROWS + r] - ref) / (mag + 1e-30);
		}
	}
	CHECK(ok_acc, "%s n=%lld: scalar kernel matches the double reference of the dequantized operands (worst rel %.2g)",
		  lm_type_name(t), (long long) n, worst);

	/* every ISA gives the same bits, for any batch size and row range */
	for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
	{
		lm_kernels_force_isa((lm_isa) isa);
		for (int nb = 1; nb <= MAXB; nb++)
		{
			memset(Y, 0, sizeof(Y));
			lm_matmul_rows(t, W, wrow, n, 1, NROWS, X, xrow, nb, Y, NROWS);
			for (int b = 0; b < nb; b++)
				for (int r = 1; r < NROWS; r++)
					if (memcmp(&Y[b * NROWS + r], &Yref[b * NROWS + r], sizeof(float)) != 0)
						ok_bits = 0;
		}
		/* batch invariance: each activation row alone, each weight row alone */
		for (int b = 0; b < MAXB; b++)
			for (int r = 0; r < NROWS; r++)
			{
				lm_matmul_rows(t, W, wrow, n, r, r + 1, X + b * xrow, xrow, 1, Y1, NROWS);
				if (memcmp(&Y1[r], &Yref[b * NROWS + r], sizeof(float)) != 0)
					ok_inv = 0;
			}
	}
	CHECK(ok_bits, "%s n=%lld: scalar%s%s give bit-identical results for n_batch 1..5 and odd row ranges",
		  lm_type_name(t), (long long) n, best >= LM_ISA_AVX2 ? ", avx2" : "", best >= LM_ISA_AVX512 ? ", avx512" : "");
	CHECK(ok_inv, "%s n=%lld: a (row, batch-row) result is the same alone as inside a batch of 5 (batch invariance)",
		  lm_type_name(t), (long long) n);
	lm_kernels_force_isa(best);
	free(W);
	free(X);
	free(xf);
	free(wd);
	free(xd);
}

/*
 * Batches and row ranges that are not multiples of the SIMD tiles give, on
 * every ISA, the bits of the scalar path run one output at a time: rows x
 * batch operands (13 and 37 activation rows: one panel of the AVX-512
 * batch kernel, tiles of 6 then 1; 101: three panels of 48), whole and
 * partial ranges.
 */
static void
check_tiles(lm_type t, int64_t n, int rows, int batch)
{
	const lm_type_traits *tr = lm_type_traits_get(t);
	size_t		wrow = (size_t) (n / tr->block_size) * tr->type_size;
	size_t		xrow = lm_act_row_size(t, n);
	int			ys = rows + 3;	/* y_stride wider than the row count, as for a padded output */
	uint8_t    *W = malloc(wrow * rows);
	uint8_t    *X = malloc(xrow * batch);
	float	   *xf = malloc(sizeof(float) * n);
	float	   *ref = malloc(sizeof(float) * batch * rows);
	float	   *Y = malloc(sizeof(float) * batch * ys);
	int			ok = 1;
	lm_isa		best = lm_kernels_best_isa();
	const int	cases[][3] = {{0, rows, batch}, {3, rows - 1, batch / 2}, {1, rows - 3, batch - 4},
	{2, 3, batch}, {0, 5, 1}, {1, rows, 4}};

	for (int r = 0; r < rows; r++)
		fill_row(t, W + r * wrow, n);
	for (int b = 0; b < batch; b++)
	{
		fill_act(xf, n);
		lm_act_quantize_row(t, xf, X + b * xrow, n);
	}
	lm_kernels_force_isa(LM_ISA_SCALAR);
	for (int b = 0; b < batch; b++)
		for (int r = 0; r < rows; r++)
			lm_matmul_rows(t, W, wrow, n, r, r + 1, X + b * xrow, xrow, 1, &ref[b * rows + r] - r, rows);
	for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
	{
		lm_kernels_force_isa((lm_isa) isa);
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		{
			int			r0 = cases[c][0],
						r1 = cases[c][1],
						nb = cases[c][2];

			memset(Y, 0, sizeof(float) * batch * ys);
			lm_matmul_rows(t, W, wrow, n, r0, r1, X, xrow, nb, Y, ys);
			for (int b = 0; b < nb; b++)
				for (int r = r0; r < r1; r++)
					if (memcmp(&Y[b * ys + r], &ref[b * rows + r], sizeof(float)) != 0)
						ok = 0;
		}
	}
	CHECK(ok, "%s n=%lld: %d rows x batches up to %d, whole and partial ranges, give on every ISA the bits of the scalar path run one output at a time",
		  lm_type_name(t), (long long) n, rows, batch);
	lm_kernels_force_isa(best);
	free(W);
	free(X);
	free(xf);
	free(ref);
	free(Y);
}

#define TALL_ROWS 67

/* A taller matrix at n_batch 1 and 2 (many row tiles, prefetch running past the range, remainder rows) gives the scalar bits on every ISA. */
static void
check_tall(lm_type t, int64_t n)
{
	const lm_type_traits *tr = lm_type_traits_get(t);
	size_t		wrow = (size_t) (n / tr->block_size) * tr->type_size;
	size_t		xrow = lm_act_row_size(t, n);
	uint8_t    *W = malloc(wrow * TALL_ROWS);
	uint8_t    *X = malloc(xrow * 2);
	float	   *xf = malloc(sizeof(float) * n);
	float		ref[2][TALL_ROWS],
				Y[2 * TALL_ROWS];
	int			ok = 1;
	lm_isa		best = lm_kernels_best_isa();
	static const int cases[][3] = {{0, TALL_ROWS, 1}, {3, TALL_ROWS - 2, 1}, {1, TALL_ROWS, 2}};

	for (int r = 0; r < TALL_ROWS; r++)
		fill_row(t, W + r * wrow, n);
	for (int b = 0; b < 2; b++)
	{
		fill_act(xf, n);
		lm_act_quantize_row(t, xf, X + b * xrow, n);
	}
	lm_kernels_force_isa(LM_ISA_SCALAR);
	for (int b = 0; b < 2; b++)
		lm_matmul_rows(t, W, wrow, n, 0, TALL_ROWS, X + b * xrow, xrow, 1, ref[b], TALL_ROWS);
	for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
	{
		lm_kernels_force_isa((lm_isa) isa);
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		{
			int			r0 = cases[c][0],
						r1 = cases[c][1],
						nb = cases[c][2];

			memset(Y, 0, sizeof(Y));
			lm_matmul_rows(t, W, wrow, n, r0, r1, X, xrow, nb, Y, TALL_ROWS);
			for (int b = 0; b < nb; b++)
				for (int r = r0; r < r1; r++)
					if (memcmp(&Y[b * TALL_ROWS + r], &ref[b][r], sizeof(float)) != 0)
						ok = 0;
		}
	}
	CHECK(ok, "%s n=%lld: %d rows at n_batch 1 and 2, whole and partial ranges, give the scalar bits on every ISA",
		  lm_type_name(t), (long long) n, TALL_ROWS);
	lm_kernels_force_isa(best);
	free(W);
	free(X);
	free(xf);
}

/* lm_dot_f32 is identical on every ISA and close to the double dot. */
static void
check_dot_f32(void)
{
	static const int64_t ns[] = {0, 1, 7, 63, 64, 65, 128, 200, 1000, 4099};
	float		a[4099],
				b[4099];
	int			ok_bits = 1,
				ok_acc = 1;
	lm_isa		best = lm_kernels_best_isa();

	for (int i = 0; i < 4099; i++)
	{
		a[i] = rndf();
		b[i] = rndf();
	}
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
	{
		double		ref = 0.0,
					mag = 0.0;
		float		s0;

		for (int64_t i = 0; i < ns[k]; i++)
		{
			ref += (double) a[i] * b[i];
			mag += fabs((double) a[i] * b[i]);
		}
		lm_kernels_force_isa(LM_ISA_SCALAR);
		s0 = lm_dot_f32(a, b, ns[k]);
		if (fabs(s0 - ref) > 1e-6 * mag + 1e-7)
			ok_acc = 0;
		for (int isa = 1; isa <= (int) best; isa++)
		{
			float		s;

			lm_kernels_force_isa((lm_isa) isa);
			s = lm_dot_f32(a, b, ns[k]);
			if (memcmp(&s, &s0, sizeof(s)) != 0)
				ok_bits = 0;
		}
	}
	lm_kernels_force_isa(best);
	CHECK(ok_acc, "lm_dot_f32 matches a double dot product for n in 0..4099");
	CHECK(ok_bits, "lm_dot_f32 is bit-identical on every available ISA");
}

/* Activation quantization follows ggml's x86 rounding (half to even, 127/amax). */
static void
check_act_rounding(void)
{
	float		x[32] = {0};
	lm_block_q8_0 q;
	lm_block_q8_1 q1;

	x[0] = 127.0f;
	x[1] = 2.5f;
	x[2] = 3.5f;
	x[3] = -2.5f;
	x[4] = -127.0f;
	x[5] = 0.5f;
	lm_act_quantize_row(LM_TYPE_Q4_0, x, &q, 32);
	CHECK(q.qs[0] == 127 && q.qs[1] == 2 && q.qs[2] == 4 && q.qs[3] == -2 && q.qs[4] == -127 && q.qs[5] == 0,
		  "Q8_0 activations round half to even (2.5->2, 3.5->4, -2.5->-2, 0.5->0) like ggml's AVX path");
	CHECK(q.d == lm_fp32_to_fp16(1.0f), "Q8_0 activation scale is fp16(amax/127)");
	lm_act_quantize_row(LM_TYPE_Q4_1, x, &q1, 32);
	CHECK(q1.s == lm_fp32_to_fp16(1.0f * (127 + 2 + 4 - 2 - 127)), "Q8_1 activation s is fp16(d * sum q)");
	memset(x, 0, sizeof(x));
	lm_act_quantize_row(LM_TYPE_Q8_0, x, &q, 32);
	CHECK(q.d == 0 && q.qs[0] == 0 && q.qs[31] == 0, "an all-zero block quantizes to d=0, q=0");
	CHECK(lm_vec_dot_type(LM_TYPE_Q4_0) == LM_TYPE_Q8_0 && lm_vec_dot_type(LM_TYPE_Q5_1) == LM_TYPE_Q8_1 &&
		  lm_vec_dot_type(LM_TYPE_Q6_K) == LM_TYPE_Q8_K && lm_vec_dot_type(LM_TYPE_F16) == LM_TYPE_F16,
		  "activation formats follow ggml's vec_dot_type table");
	CHECK(lm_act_row_size(LM_TYPE_Q4_K, 512) == 2 * 292 && lm_act_row_size(LM_TYPE_Q4_0, 33) == 0 &&
		  lm_act_row_size(LM_TYPE_F16, 7) == 14, "activation row sizes: Q8_K 292 per 256, bad widths give 0");
}

/* Fill n floats of activation kind k: scaled noise, exact ties, zeros, equal +/- maxima, huge, tiny, NaN, infinity. */
static void
fill_act_kind(float *x, int64_t n, int k)
{
	fill_act(x, n);
	for (int64_t i = 0; i < n; i++)
		switch (k)
		{
			case 1:				/* multiples of 0.5 with amax 127: every quant is a tie or exact */
				x[i] = (float) ((int) (rnd() % 255) - 127) * 0.5f;
				if (i % 32 == 5)
					x[i] = 127.0f;
				break;
			case 2:				/* the same magnitude with both signs, negative first in odd blocks */
				if (i % 32 == 3 || i % 32 == 9)
					x[i] = ((i / 32) % 2 == (i % 32 == 3 ? 1 : 0)) ? -9.0f : 9.0f;
				break;
			case 3:				/* huge and tiny (subnormal) values */
				x[i] *= (i / 32) % 2 ? 3e38f : 1e-40f;
				break;
			case 5:				/* only subnormals: 127 / amax overflows */
				x[i] *= 1e-40f;
				break;
			case 4:				/* an all-zero block, a NaN, infinities */
				if (i / 32 == 1)
					x[i] = 0.0f;
				if (i == 70)
					x[i] = NAN;
				if (i == 300)
					x[i] = INFINITY;
				if (i == 700)
					x[i] = -INFINITY;
				break;
			default:
				break;
		}
}

/* Activation quantization (Q8_0, Q8_1, Q8_K) gives the same bytes on every ISA, for ordinary and edge-case inputs. */
static void
check_act_quant_isa(void)
{
	static const lm_type wt[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q4_K};
	enum
	{
		N = 1024
	};
	float		x[N];
	uint8_t		ref[N * 2],
				got[N * 2];
	lm_isa		best = lm_kernels_best_isa();

	for (size_t w = 0; w < sizeof(wt) / sizeof(wt[0]); w++)
	{
		size_t		rs = lm_act_row_size(wt[w], N);
		int			bad = 0;

		for (int rep = 0; rep < 60; rep++)
		{
			fill_act_kind(x, N, rep % 6);
			lm_kernels_force_isa(LM_ISA_SCALAR);
			lm_act_quantize_row(wt[w], x, ref, N);
			for (int isa = 1; isa <= (int) best; isa++)
			{
				lm_kernels_force_isa((lm_isa) isa);
				memset(got, 0xA5, rs);
				lm_act_quantize_row(wt[w], x, got, N);
				bad += memcmp(got, ref, rs) != 0;
			}
		}
		CHECK(bad == 0, "%s activations: the same bytes on scalar%s%s for noise, ties, +/- equal maxima, huge, subnormal-only, zero, NaN and inf blocks (%d rows differ)",
			  lm_type_name(lm_vec_dot_type(wt[w])), best >= LM_ISA_AVX2 ? ", avx2" : "",
			  best >= LM_ISA_AVX512 ? ", avx512" : "", bad);
	}
	lm_kernels_force_isa(best);
}

/* Run every check. */
int
main(void)
{
	lm_isa		isa = lm_kernels_init();

	printf("# kernels: using %s, best %s\n", lm_isa_name(isa), lm_isa_name(lm_kernels_best_isa()));
	CHECK(lm_kernels_force_isa(LM_ISA_SCALAR), "the scalar path can always be forced");
	for (size_t k = 0; k < sizeof(all_types) / sizeof(all_types[0]); k++)
	{
		lm_type		t = all_types[k];

		if (t == LM_TYPE_F32 || t == LM_TYPE_F16 || t == LM_TYPE_BF16)
		{
			static const int64_t ns[] = {1, 7, 33, 64, 65, 200, 1000};

			for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++)
				check_type(t, ns[j]);
		}
		else if (lm_type_traits_get(t)->block_size == 32)
		{
			static const int64_t ns[] = {32, 96, 416, 2080};

			for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++)
				check_type(t, ns[j]);
		}
		else
		{
			static const int64_t ns[] = {256, 768, 2816};

			for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++)
				check_type(t, ns[j]);
		}
	}
	for (size_t k = 0; k < sizeof(all_types) / sizeof(all_types[0]); k++)
	{
		lm_type		t = all_types[k];
		int			bs = (int) lm_type_traits_get(t)->block_size;

		check_tiles(t, bs == 1 ? 200 : bs == 32 ? 160 : 512, 11, 13);
		check_tiles(t, bs == 1 ? 96 : bs == 32 ? 576 : 768, 19, 37);
		check_tiles(t, bs == 1 ? 64 : bs == 32 ? 320 : 512, 9, 101);
		check_tall(t, bs == 1 ? 96 : bs == 32 ? 640 : 768);
		/* the widest rows of the block-32 batch kernel (256 blocks: its largest weight scratch) and the next width, which falls back */
		if (bs == 32)
		{
			check_tiles(t, 8192, 9, 13);
			check_tiles(t, 8224, 5, 6);
		}
		else if (bs == 256)
			check_tiles(t, 8192, 5, 13);
	}
	check_dot_f32();
	check_act_rounding();
	check_act_quant_isa();
	return unit_done();
}
