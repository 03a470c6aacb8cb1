/*
 * test_quant.c — fp16/bf16 conversion edge cases and the reference
 * dequantizers of every format, checked against independent computations
 * from hand-built blocks; activation quantizers round-trip.
 */
#include "kernels.h"
#include "kernels_impl.h"
#include "quant.h"
#include "unit.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Float from bits. */
static float
fb(uint32_t u)
{
	float		f;

	memcpy(&f, &u, 4);
	return f;
}

/* Independent fp16 decode: sign * 2^(e-15) * (1 + m/1024), subnormals m * 2^-24. */
static double
fp16_value(uint16_t h)
{
	int			e = (h >> 10) & 31,
				m = h & 1023;
	double		v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);

	return (h & 0x8000) ? -v : v;
}

static uint64_t rs = 88172645463325252ull;

/* xorshift64 random bits. */
static uint64_t
rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* fp16 conversion edge cases and exhaustive decode. */
static void
check_fp16(void)
{
	int			ok = 1,
				ok_rt = 1,
				ok_rand = 1;

	CHECK(lm_fp32_to_fp16(0.0f) == 0x0000 && lm_fp32_to_fp16(-0.0f) == 0x8000, "fp16: +0 and -0 keep their sign");
	CHECK(lm_fp32_to_fp16(INFINITY) == 0x7c00 && lm_fp32_to_fp16(-INFINITY) == 0xfc00, "fp16: +-inf map to +-inf");
	CHECK((lm_fp32_to_fp16(NAN) & 0x7c00) == 0x7c00 && (lm_fp32_to_fp16(NAN) & 0x3ff) != 0, "fp16: NaN stays NaN");
	CHECK(isnan(lm_fp16_to_fp32(0x7e00)) && isinf(lm_fp16_to_fp32(0xfc00)) && lm_fp16_to_fp32(0xfc00) < 0,
		  "fp16 -> fp32: NaN and -inf decode as such");
	CHECK(lm_fp32_to_fp16(65504.0f) == 0x7bff && lm_fp32_to_fp16(65519.0f) == 0x7bff && lm_fp32_to_fp16(65520.0f) == 0x7c00,
		  "fp16: max 65504 kept, 65519 rounds down to max, 65520 (tie, odd) overflows to inf");
	CHECK(lm_fp32_to_fp16(1.0f) == 0x3c00 && lm_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00 &&
		  lm_fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02, "fp16: ties round to even in the normal range");
	CHECK(lm_fp32_to_fp16(0x1p-24f) == 0x0001 && lm_fp32_to_fp16(0x1p-25f) == 0x0000 &&
		  lm_fp32_to_fp16(1.5f * 0x1p-25f) == 0x0001 && lm_fp32_to_fp16(3 * 0x1p-25f) == 0x0002 &&
		  lm_fp32_to_fp16(-0x1p-26f) == 0x8000, "fp16: subnormals round to nearest even, tiny values to signed zero");
	CHECK(lm_fp32_to_fp16(1023 * 0x1p-24f) == 0x03ff && lm_fp32_to_fp16(0x1p-14f) == 0x0400 &&
		  lm_fp32_to_fp16(1023.5f * 0x1p-24f) == 0x0400, "fp16: largest subnormal, smallest normal and the rounding between");
	CHECK(lm_fp16_to_fp32(0x0001) == 0x1p-24f && lm_fp16_to_fp32(0x8000) == 0.0f && signbit(lm_fp16_to_fp32(0x8000)),
		  "fp16 -> fp32: smallest subnormal and -0 decode exactly");

	for (uint32_t h = 0; h < 65536; h++)
	{
		float		f = lm_fp16_to_fp32((uint16_t) h);
		int			isnanh = ((h >> 10) & 31) == 31 && (h & 1023) != 0;
		int			isinfh = ((h >> 10) & 31) == 31 && (h & 1023) == 0;

		if (isnanh)
		{
			if (!isnan(f))
				ok = 0;
			continue;
		}
		if (isinfh ? !isinf(f) : (double) f != fp16_value((uint16_t) h))
			ok = 0;
		if (lm_fp32_to_fp16(f) != h)
			ok_rt = 0;
	}
	CHECK(ok, "fp16 -> fp32 is exact for all 65536 values (against sign*2^e*(1+m/1024))");
	CHECK(ok_rt, "fp16 -> fp32 -> fp16 round-trips every non-NaN fp16 value");

	/* random floats around the fp16 range: result must be the nearest fp16 (ties to even) */
	for (int i = 0; i < 200000; i++)
	{
		float		f = fb((uint32_t) rnd());
		uint16_t	h;
		double		v,
					err;

		if (isnan(f) || fabsf(f) > 65504.0f || fabsf(f) < 0x1p-26f)
			f = ldexpf((float) (rnd() % 100000) / 100000.0f, (int) (rnd() % 42) - 26);
		h = lm_fp32_to_fp16(f);
		v = fp16_value(h);
		err = fabs(v - f);
		/* neighbours of h must not be strictly closer */
		for (int dlt = -1; dlt <= 1; dlt += 2)
		{
			uint16_t	nh = (uint16_t) (h + dlt);

			if (((nh >> 10) & 31) == 31 || ((h & 0x7fff) == 0 && dlt < 0))
				continue;
			if (fabs(fp16_value(nh) - f) < err || (fabs(fp16_value(nh) - f) == err && (h & 1)))
				ok_rand = 0;
		}
	}
	CHECK(ok_rand, "fp32 -> fp16 picks the nearest fp16, ties to even, on 200000 random floats");

	if (lm_kernels_best_isa() >= LM_ISA_AVX2)
	{
		float		src[4096];
		uint16_t	a[4096],
					b[4096];

		for (int i = 0; i < 4096; i++)
		{
			src[i] = fb((uint32_t) rnd());
			if (i % 3 == 0)
				src[i] = ldexpf((float) (rnd() % 100000) / 100000.0f, (int) (rnd() % 50) - 30);
			if (i % 17 == 0)
				src[i] = -src[i];
		}
		src[0] = NAN;
		src[1] = 65520.0f;
		src[2] = 0x1p-25f;
		lm_fp32_to_fp16_row(src, a, 4096);
		lm_fp32_to_fp16_row_f16c(src, b, 4096);
		CHECK(memcmp(a, b, sizeof(a)) == 0, "fp32 -> fp16 is bit-identical to the F16C instruction (incl. NaN, overflow, subnormals)");
	}
}

/* bf16 conversion as ggml does it. */
static void
check_bf16(void)
{
	CHECK(lm_fp32_to_bf16(1.0f) == 0x3f80 && lm_bf16_to_fp32(0x3f80) == 1.0f, "bf16: 1.0 <-> 0x3f80");
	CHECK(lm_fp32_to_bf16(fb(0x3f808000)) == 0x3f80 && lm_fp32_to_bf16(fb(0x3f818000)) == 0x3f82 &&
		  lm_fp32_to_bf16(fb(0x3f808001)) == 0x3f81, "bf16: nearest even (ties to even, above tie rounds up)");
	CHECK(lm_fp32_to_bf16(-0.0f) == 0x8000 && lm_fp32_to_bf16(0.0f) == 0, "bf16: signed zeros");
	CHECK(lm_fp32_to_bf16(INFINITY) == 0x7f80 && lm_fp32_to_bf16(-INFINITY) == 0xff80, "bf16: infinities");
	CHECK(lm_fp32_to_bf16(fb(0x7f800001)) == 0x7fc0 && isnan(lm_bf16_to_fp32(lm_fp32_to_bf16(NAN))),
		  "bf16: a signalling NaN becomes a quiet NaN");
	CHECK(lm_fp32_to_bf16(fb(0x00010000)) == 0x0001 && lm_bf16_to_fp32(0x0001) == fb(0x00010000),
		  "bf16: subnormals are kept, not flushed");
	CHECK(lm_fp32_to_bf16(fb(0x7f7fffff)) == 0x7f80, "bf16: FLT_MAX rounds to inf");
}

/* Compare a dequantized row with expected doubles. */
static int
close_row(const float *got, const double *want, int n, double tol)
{
	for (int i = 0; i < n; i++)
		if (fabs(got[i] - want[i]) > tol * (1.0 + fabs(want[i])))
			return 0;
	return 1;
}

/* Pack 8 six-bit scales and mins into the 12-byte Q4_K/Q5_K layout. */
static void
pack_k4(const int sc[8], const int mn[8], uint8_t out[12])
{
	for (int j = 0; j < 4; j++)
	{
		out[j] = (uint8_t) ((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
		out[j + 4] = (uint8_t) ((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
		out[j + 8] = (uint8_t) ((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
	}
}

/* Every dequantizer against element-by-element formulas. */
static void
check_dequant(void)
{
	float		out[512];
	double		want[512];

	{							/* Q4_0 */
		lm_block_q4_0 b;

		b.d = lm_fp32_to_fp16(0.5f);
		for (int j = 0; j < 16; j++)
			b.qs[j] = (uint8_t) (j | ((15 - j) << 4));
		for (int i = 0; i < 32; i++)
			want[i] = 0.5 * ((i < 16 ? i : 15 - (i - 16)) - 8);
		CHECK(lm_dequantize_row(LM_TYPE_Q4_0, &b, out, 32) && close_row(out, want, 32, 0),
			  "Q4_0: w = d*(q-8), low nibbles are elements 0..15, high nibbles 16..31");
	}
	{							/* Q4_1 */
		lm_block_q4_1 b;

		b.d = lm_fp32_to_fp16(0.25f);
		b.m = lm_fp32_to_fp16(-1.0f);
		for (int j = 0; j < 16; j++)
			b.qs[j] = (uint8_t) (((j * 3) & 15) | (j << 4));
		for (int i = 0; i < 32; i++)
			want[i] = 0.25 * (i < 16 ? (i * 3) & 15 : i - 16) - 1.0;
		CHECK(lm_dequantize_row(LM_TYPE_Q4_1, &b, out, 32) && close_row(out, want, 32, 0), "Q4_1: w = d*q + m");
	}
	{							/* Q5_0 and Q5_1 */
		lm_block_q5_0 b;
		lm_block_q5_1 b1;
		uint32_t	qh = 0xA5A5F00Fu;

		b.d = lm_fp32_to_fp16(0.125f);
		memcpy(b.qh, &qh, 4);
		for (int j = 0; j < 16; j++)
			b.qs[j] = (uint8_t) (((j + 5) & 15) | (((j * 7) & 15) << 4));
		for (int i = 0; i < 32; i++)
		{
			int			lo = i < 16 ? (i + 5) & 15 : ((i - 16) * 7) & 15;

			want[i] = 0.125 * ((lo + 16 * (int) ((qh >> i) & 1)) - 16);
		}
		CHECK(lm_dequantize_row(LM_TYPE_Q5_0, &b, out, 32) && close_row(out, want, 32, 0),
			  "Q5_0: w = d*(q-16) with bit i of qh as the 5th bit of element i");
		b1.d = b.d;
		b1.m = lm_fp32_to_fp16(0.5f);
		memcpy(b1.qh, b.qh, 4);
		memcpy(b1.qs, b.qs, 16);
		for (int i = 0; i < 32; i++)
			want[i] = want[i] + 0.125 * 16 + 0.5;
		CHECK(lm_dequantize_row(LM_TYPE_Q5_1, &b1, out, 32) && close_row(out, want, 32, 0), "Q5_1: w = d*q + m");
	}
	{							/* Q8_0 */
		lm_block_q8_0 b[2];

		for (int k = 0; k < 2; k++)
		{
			b[k].d = lm_fp32_to_fp16(k ? -0.125f : 2.0f);
			for (int j = 0; j < 32; j++)
				b[k].qs[j] = (int8_t) (j * 7 - 100 + k);
		}
		for (int i = 0; i < 64; i++)
			want[i] = (i < 32 ? 2.0 : -0.125) * ((i % 32) * 7 - 100 + i / 32);
		CHECK(lm_dequantize_row(LM_TYPE_Q8_0, b, out, 64) && close_row(out, want, 64, 0), "Q8_0: w = d*q over two blocks");
	}
	{							/* Q4_K and Q5_K */
		lm_block_q4_K b;
		lm_block_q5_K b5;
		int			sc[8],
					mn[8];
		double		d = 0.0625,
					dmin = 0.03125;

		for (int i = 0; i < 8; i++)
		{
			sc[i] = 1 + i * 8 + (i == 7 ? 6 : 0);	/* up to 63 */
			mn[i] = 63 - i * 5;
		}
		b.d = lm_fp32_to_fp16((float) d);
		b.dmin = lm_fp32_to_fp16((float) dmin);
		pack_k4(sc, mn, b.scales);
		for (int j = 0; j < 128; j++)
			b.qs[j] = (uint8_t) (rnd() & 0xff);
		for (int i = 0; i < 256; i++)
		{
			int			g = i / 64,
						l = i % 64;
			int			q = l < 32 ? b.qs[32 * g + l] & 15 : b.qs[32 * g + l - 32] >> 4;

			want[i] = d * sc[i / 32] * q - dmin * mn[i / 32];
		}
		CHECK(lm_dequantize_row(LM_TYPE_Q4_K, &b, out, 256) && close_row(out, want, 256, 1e-6),
			  "Q4_K: w = d*sc[s]*q - dmin*m[s] with 6-bit packed scales/mins");
		b5.d = b.d;
		b5.dmin = b.dmin;
		memcpy(b5.scales, b.scales, 12);
		memcpy(b5.qs, b.qs, 128);
		for (int j = 0; j < 32; j++)
			b5.qh[j] = (uint8_t) (rnd() & 0xff);
		for (int i = 0; i < 256; i++)
		{
			int			g = i / 64,
						l = i % 64;
			int			hi = l < 32 ? (b5.qh[l] >> (2 * g)) & 1 : (b5.qh[l - 32] >> (2 * g + 1)) & 1;

			want[i] += d * sc[i / 32] * 16 * hi;
		}
		CHECK(lm_dequantize_row(LM_TYPE_Q5_K, &b5, out, 256) && close_row(out, want, 256, 1e-6),
			  "Q5_K: as Q4_K plus 16*bit from qh (bit 2g / 2g+1 for the low / high half of group g)");
	}
	{							/* Q6_K */
		lm_block_q6_K b;
		double		d = 0.01;

		b.d = lm_fp32_to_fp16((float) d);
		d = lm_fp16_to_fp32(b.d);
		for (int j = 0; j < 128; j++)
			b.ql[j] = (uint8_t) (rnd() & 0xff);
		for (int j = 0; j < 64; j++)
			b.qh[j] = (uint8_t) (rnd() & 0xff);
		for (int j = 0; j < 16; j++)
			b.scales[j] = (int8_t) (j * 9 - 70);
		for (int i = 0; i < 256; i++)
		{
			int			h = i / 128,
						r = i % 128,
						t = r / 32,
						l = r % 32;
			int			lb = b.ql[64 * h + (t & 1) * 32 + l];
			int			q = (t < 2 ? lb & 15 : lb >> 4) | (((b.qh[32 * h + l] >> (2 * t)) & 3) << 4);

			want[i] = d * b.scales[8 * h + 2 * t + l / 16] * (q - 32);
		}
		CHECK(lm_dequantize_row(LM_TYPE_Q6_K, &b, out, 256) && close_row(out, want, 256, 1e-6),
			  "Q6_K: w = d*scale[g]*(q-32) with 4+2 bit quants and 16 groups of 16");
	}
	{							/* float formats */
		uint16_t	h[3] = {0x3c00, 0xc000, 0x0001};
		uint16_t	bb[3] = {0x3f80, 0xc040, 0x0000};
		float		f[3] = {1.5f, -2.0f, 3.0f};

		CHECK(lm_dequantize_row(LM_TYPE_F16, h, out, 3) && out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p-24f,
			  "F16 rows decode exactly");
		CHECK(lm_dequantize_row(LM_TYPE_BF16, bb, out, 3) && out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.0f,
			  "BF16 rows decode exactly");
		CHECK(lm_dequantize_row(LM_TYPE_F32, f, out, 3) && out[1] == -2.0f, "F32 rows copy");
	}
	CHECK(!lm_dequantize_row(LM_TYPE_Q2_K, out, out, 256) && !lm_dequantize_row(LM_TYPE_Q4_0, out, out, 33) &&
		  !lm_dequantize_row((lm_type) 99, out, out, 32), "unsupported types, bad widths and bad ids return false");
}

/* Activation quantizers reproduce their input within half a step. */
static void
check_act_quant(void)
{
	float		x[512],
				y[512];
	lm_block_q8_K k[2];
	lm_block_q8_0 q0[16];
	int			ok = 1,
				ok_bs = 1;

	for (int i = 0; i < 512; i++)
		x[i] = (float) ((int) (rnd() % 2001) - 1000) / 300.0f;
	x[3] = 5.0f;				/* positive extreme in block 0: d < 0 */
	x[300] = -5.0f;				/* negative extreme in block 1 */
	lm_quantize_row_q8_K(x, k, 512);
	lm_dequantize_row(LM_TYPE_Q8_K, k, y, 512);
	for (int i = 0; i < 512; i++)
		if (fabsf(y[i] - x[i]) > fabsf(k[i / 256].d) * 0.5f * 1.0001f)
			ok = 0;
	for (int b = 0; b < 2; b++)
		for (int j = 0; j < 16; j++)
		{
			int			s = 0;

			for (int l = 0; l < 16; l++)
				s += k[b].qs[16 * j + l];
			if (s != k[b].bsums[j])
				ok_bs = 0;
		}
	CHECK(ok && k[0].qs[3] == -127 && k[1].qs[300 - 256] == -127 && k[0].d < 0 && k[1].d > 0,
		  "Q8_K: d*q is within d/2 of x, the extreme value maps to -127 whatever its sign (ggml's -127/max scale)");
	CHECK(ok_bs, "Q8_K: bsums are the sums of each 16 quants");
	lm_quantize_row_q8_0(x, q0, 512);
	lm_dequantize_row(LM_TYPE_Q8_0, q0, y, 512);
	ok = 1;
	for (int i = 0; i < 512; i++)
		if (fabsf(y[i] - x[i]) > lm_fp16_to_fp32(q0[i / 32].d) * 0.5f + 1e-3f * fabsf(x[i]))
			ok = 0;
	CHECK(ok, "Q8_0 activations reproduce x within half a step (plus fp16 scale rounding)");
}

/* Run every check. */
int
main(void)
{
	check_fp16();
	check_bf16();
	check_dequant();
	check_act_quant();
	return unit_done();
}
