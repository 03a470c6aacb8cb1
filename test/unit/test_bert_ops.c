/*
 * test_bert_ops.c — the bert encoder's element-wise operations
 * (bert_ops.h): GELU, a row's maximum and LayerNorm give the same floats on
 * the scalar, AVX2 and AVX-512 paths for every row length (whole vectors
 * and tails), GELU stays within 1e-6 of the exact erf form, and LayerNorm
 * of a row has mean 0 and variance 1 before its weight and bias.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bert_ops.h"
#include "kernels.h"
#include "unit.h"

#define MAXN 80

/* A reproducible float in [-scale, scale). */
static float
rnd(uint32_t *s, float scale)
{
	*s = *s * 1664525u + 1013904223u;
	return (float) ((int32_t) (*s >> 8) - (1 << 23)) / (float) (1 << 23) * scale;
}

int
main(void)
{
	lm_isa		best = lm_kernels_best_isa(),
				prev = lm_kernels_isa();
	uint32_t	seed = 777;
	bool		gelu_same = true,
				max_same = true,
				norm_same = true;
	double		gelu_err = 0.0,
				norm_dev = 0.0;

	for (int n = 1; n <= MAXN; n++)
	{
		float		x[MAXN],
					d[MAXN],
					w[MAXN],
					b[MAXN],
					ref_g[MAXN],
					ref_n[MAXN],
					g[MAXN],
					nx[MAXN],
					ref_max = 0.0f;

		for (int i = 0; i < n; i++)
		{
			x[i] = rnd(&seed, 6.0f);
			d[i] = rnd(&seed, 2.0f);
			w[i] = rnd(&seed, 1.5f);
			b[i] = rnd(&seed, 0.5f);
		}
		for (int isa = LM_ISA_SCALAR; isa <= (int) best; isa++)
		{
			float		mx;

			lm_kernels_force_isa((lm_isa) isa);
			memcpy(g, x, sizeof(float) * n);
			lm_bert_gelu_row(g, n);
			mx = lm_bert_max_row(x, n);
			memcpy(nx, x, sizeof(float) * n);
			lm_bert_add_norm_row(nx, (n & 1) ? d : NULL, w, b, n, 1e-12f);
			if (isa == LM_ISA_SCALAR)
			{
				memcpy(ref_g, g, sizeof(float) * n);
				memcpy(ref_n, nx, sizeof(float) * n);
				ref_max = mx;
			}
			else
			{
				gelu_same &= memcmp(g, ref_g, sizeof(float) * n) == 0;
				norm_same &= memcmp(nx, ref_n, sizeof(float) * n) == 0;
				max_same &= mx == ref_max;
			}
		}
		lm_kernels_force_isa(prev);
		for (int i = 0; i < n; i++)
		{
			double		u = x[i],
						want = 0.5 * u * (1.0 + erf(u / sqrt(2.0)));

			gelu_err = fmax(gelu_err, fabs(ref_g[i] - want));
		}
		/* undo weight and bias: what is left has mean 0 and variance 1 */
		if (n >= 2)
		{
			double		mean = 0.0,
						var = 0.0;

			for (int i = 0; i < n; i++)
				mean += (ref_n[i] - b[i]) / w[i];
			mean /= n;
			for (int i = 0; i < n; i++)
				var += pow((ref_n[i] - b[i]) / w[i] - mean, 2);
			var /= n;
			norm_dev = fmax(norm_dev, fmax(fabs(mean), fabs(var - 1.0)));
		}
	}
	CHECK(gelu_same, "GELU: the same floats on every kernel path, rows of 1..%d", MAXN);
	CHECK(max_same, "row maximum: the same on every kernel path");
	CHECK(norm_same, "LayerNorm (with and without a residual): the same floats on every kernel path");
	CHECK(gelu_err < 1e-6, "GELU within 1e-6 of 0.5 u (1 + erf(u / sqrt 2)) on [-6, 6] (max error %.2g)", gelu_err);
	CHECK(norm_dev < 1e-4, "LayerNorm output has mean 0 and variance 1 before weight and bias (max deviation %.2g)",
		  norm_dev);
	return unit_done();
}
