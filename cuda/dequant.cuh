/*
 * dequant.cuh — device dequantizers of ggml's block formats, 32 elements
 * (one "chunk") at a time, for the dequantize, embedding and fused
 * matrix-vector kernels.
 *
 * Every format is read as quant.h lays it out (bytes, not structs: block
 * sizes 18, 20, 22, 24, 34 are not multiples of 4, so scales are assembled
 * from bytes), and every value is computed with the very operations of
 * quant.c's reference dequantizers: the same products, the same fmaf where
 * quant.c uses fmaf (Q4_1, Q5_1, Q4_K, Q5_K), no contraction elsewhere
 * (LMC_MUL), so the device's floats equal lm_dequantize_row's bit for bit.
 * The functions are __host__ __device__: test/unit/test_cuda_dequant.cu runs
 * them on the CPU against quant.c for every format (where nvcc is found),
 * and test/gpu/device_check.c compares the device's results for every
 * tensor of the shipped models.
 *
 * Chunk c of a row holds elements 32c .. 32c+31.  The _0/_1 formats have
 * one block per chunk; the K formats (256 per super-block) eight chunks per
 * super-block; F32/F16/BF16 rows may end inside their last chunk (only
 * elements below n_cols are valid: the rest come back 0).
 */
#ifndef LMGEN_CUDA_DEQUANT_CUH
#define LMGEN_CUDA_DEQUANT_CUH

#include "common.cuh"

/* Little-endian fp16 at p (any alignment) as a float, exactly. */
__host__ __device__ __forceinline__ float
lmc_ld_f16(const uint8_t *p)
{
	return __half2float(__ushort_as_half((unsigned short) (p[0] | (p[1] << 8))));
}

/* Q4_K/Q5_K scale and min of sub-block j, times d and dmin (quant.c's k4_scale_min). */
__host__ __device__ __forceinline__ void
lmc_k4_scale_min(int j, const uint8_t *q, float d, float dmin, float *dl, float *ml)
{
	int			sc,
				m;

	if (j < 4)
	{
		sc = q[j] & 63;
		m = q[j + 4] & 63;
	}
	else
	{
		sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
	*dl = LMC_MUL(d, (float) sc);
	*ml = LMC_MUL(dmin, (float) m);
}

/* Elements 32c .. 32c+31 of a row of type T into v (see the file header). */
template <int T>
__host__ __device__ __forceinline__ void
lmc_deq32(const uint8_t *row, int64_t c, int64_t n_cols, float v[32])
{
	if constexpr (T == LM_TYPE_F32)
	{
		const float *f = (const float *) row + c * 32;

LMC_UNROLL
		for (int j = 0; j < 32; j++)
			v[j] = c * 32 + j < n_cols ? f[j] : 0.0f;
	}
	else if constexpr (T == LM_TYPE_F16)
	{
		const __half *h = (const __half *) row + c * 32;

LMC_UNROLL
		for (int j = 0; j < 32; j++)
			v[j] = c * 32 + j < n_cols ? __half2float(h[j]) : 0.0f;
	}
	else if constexpr (T == LM_TYPE_BF16)
	{
		const uint16_t *h = (const uint16_t *) row + c * 32;

LMC_UNROLL
		for (int j = 0; j < 32; j++)
			v[j] = c * 32 + j < n_cols ? LMC_F32_BITS((uint32_t) h[j] << 16) : 0.0f;
	}
	else if constexpr (T == LM_TYPE_Q4_0)
	{
		const uint8_t *b = row + c * 18;
		float		d = lmc_ld_f16(b);

LMC_UNROLL
		for (int j = 0; j < 16; j++)
		{
			v[j] = LMC_MUL((float) ((b[2 + j] & 0xF) - 8), d);
			v[j + 16] = LMC_MUL((float) ((b[2 + j] >> 4) - 8), d);
		}
	}
	else if constexpr (T == LM_TYPE_Q4_1)
	{
		const uint8_t *b = row + c * 20;
		float		d = lmc_ld_f16(b),
					m = lmc_ld_f16(b + 2);

LMC_UNROLL
		for (int j = 0; j < 16; j++)
		{
			v[j] = LMC_FMA((float) (b[4 + j] & 0xF), d, m);
			v[j + 16] = LMC_FMA((float) (b[4 + j] >> 4), d, m);
		}
	}
	else if constexpr (T == LM_TYPE_Q5_0)
	{
		const uint8_t *b = row + c * 22;
		float		d = lmc_ld_f16(b);
		uint32_t	qh = (uint32_t) b[2] | ((uint32_t) b[3] << 8) | ((uint32_t) b[4] << 16) | ((uint32_t) b[5] << 24);

LMC_UNROLL
		for (int j = 0; j < 16; j++)
		{
			int			x0 = (b[6 + j] & 0xF) | (((qh >> j) & 1) << 4);
			int			x1 = (b[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);

			v[j] = LMC_MUL((float) (x0 - 16), d);
			v[j + 16] = LMC_MUL((float) (x1 - 16), d);
		}
	}
	else if constexpr (T == LM_TYPE_Q5_1)
	{
		const uint8_t *b = row + c * 24;
		float		d = lmc_ld_f16(b),
					m = lmc_ld_f16(b + 2);
		uint32_t	qh = (uint32_t) b[4] | ((uint32_t) b[5] << 8) | ((uint32_t) b[6] << 16) | ((uint32_t) b[7] << 24);

LMC_UNROLL
		for (int j = 0; j < 16; j++)
		{
			int			x0 = (b[8 + j] & 0xF) | (((qh >> j) & 1) << 4);
			int			x1 = (b[8 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4);

			v[j] = LMC_FMA((float) x0, d, m);
			v[j + 16] = LMC_FMA((float) x1, d, m);
		}
	}
	else if constexpr (T == LM_TYPE_Q8_0)
	{
		const uint8_t *b = row + c * 34;
		float		d = lmc_ld_f16(b);

LMC_UNROLL
		for (int j = 0; j < 32; j++)
			v[j] = LMC_MUL((float) (int8_t) b[2 + j], d);
	}
	else if constexpr (T == LM_TYPE_Q4_K)
	{
		/* super-block c/8 (144 bytes: d, dmin, 12 scale bytes, 128 quant bytes); sub-block j = c%8 */
		const uint8_t *b = row + (c >> 3) * 144;
		int			j = (int) (c & 7);
		float		d = lmc_ld_f16(b),
					dmin = lmc_ld_f16(b + 2),
					dl,
					ml;
		const uint8_t *q = b + 16 + 32 * (j >> 1);
		int			sh = (j & 1) ? 4 : 0;

		lmc_k4_scale_min(j, b + 4, d, dmin, &dl, &ml);
LMC_UNROLL
		for (int l = 0; l < 32; l++)
			v[l] = LMC_FMA(dl, (float) ((q[l] >> sh) & 0xF), -ml);
	}
	else if constexpr (T == LM_TYPE_Q5_K)
	{
		/* super-block c/8 (176 bytes: d, dmin, 12 scale bytes, 32 high-bit bytes, 128 quant bytes) */
		const uint8_t *b = row + (c >> 3) * 176;
		int			j = (int) (c & 7);
		float		d = lmc_ld_f16(b),
					dmin = lmc_ld_f16(b + 2),
					dl,
					ml;
		const uint8_t *qh = b + 16;
		const uint8_t *ql = b + 48 + 32 * (j >> 1);
		int			sh = (j & 1) ? 4 : 0;

		lmc_k4_scale_min(j, b + 4, d, dmin, &dl, &ml);
LMC_UNROLL
		for (int l = 0; l < 32; l++)
			v[l] = LMC_FMA(dl, (float) (((ql[l] >> sh) & 0xF) | (((qh[l] >> j) & 1) << 4)), -ml);
	}
	else if constexpr (T == LM_TYPE_Q6_K)
	{
		/* super-block c/8 (210 bytes: ql[128], qh[64], scales[16], d); chunk j = c%8 is quarter j%4 of half j/4 */
		const uint8_t *b = row + (c >> 3) * 210;
		int			j = (int) (c & 7),
					half = j >> 2,
					w = j & 3;
		float		d = lmc_ld_f16(b + 208);
		const uint8_t *ql = b + 64 * half + ((w & 1) ? 32 : 0);
		const uint8_t *qh = b + 128 + 32 * half;
		const int8_t *sc = (const int8_t *) (b + 192) + 8 * half + 2 * w;
		int			lsh = (w & 2) ? 4 : 0,
					hsh = 2 * w;

LMC_UNROLL
		for (int l = 0; l < 32; l++)
		{
			int			q = (((ql[l] >> lsh) & 0xF) | (((qh[l] >> hsh) & 3) << 4)) - 32;

			v[l] = LMC_MUL(LMC_MUL(d, (float) sc[l / 16]), (float) q);
		}
	}
	else
		static_assert(T < 0, "no device dequantizer for this type");
}

/* Call F<T>::run(args...) for the runtime type t; false for types without a dequantizer. */
template <template <int> class F, typename... A>
static bool
lmc_dispatch_type(lm_type t, A... args)
{
	switch (t)
	{
		case LM_TYPE_F32:
			F<LM_TYPE_F32>::run(args...);
			return true;
		case LM_TYPE_F16:
			F<LM_TYPE_F16>::run(args...);
			return true;
		case LM_TYPE_BF16:
			F<LM_TYPE_BF16>::run(args...);
			return true;
		case LM_TYPE_Q4_0:
			F<LM_TYPE_Q4_0>::run(args...);
			return true;
		case LM_TYPE_Q4_1:
			F<LM_TYPE_Q4_1>::run(args...);
			return true;
		case LM_TYPE_Q5_0:
			F<LM_TYPE_Q5_0>::run(args...);
			return true;
		case LM_TYPE_Q5_1:
			F<LM_TYPE_Q5_1>::run(args...);
			return true;
		case LM_TYPE_Q8_0:
			F<LM_TYPE_Q8_0>::run(args...);
			return true;
		case LM_TYPE_Q4_K:
			F<LM_TYPE_Q4_K>::run(args...);
			return true;
		case LM_TYPE_Q5_K:
			F<LM_TYPE_Q5_K>::run(args...);
			return true;
		case LM_TYPE_Q6_K:
			F<LM_TYPE_Q6_K>::run(args...);
			return true;
		default:
			return false;
	}
}

#endif							/* LMGEN_CUDA_DEQUANT_CUH */
