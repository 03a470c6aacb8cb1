/*
 * attention_avx512.c — attention.c's score and value loops, 16 positions per
 * 512-bit vector (bodies in attention_simd.h); called only after a CPUID check.
 */
#include <immintrin.h>
#include <stddef.h>

/*
 * One KV block column-major: t[c*16 + i] = src[i*stride + c] for 16 rows and
 * n_col columns, by 16 x 16 tiles of in-register shuffles (a gather is
 * slower here).  Exact copies.
 */
static inline void
att_transpose_avx512(float *t, const float *src, int n_col, size_t stride)
{
	for (int c0 = 0; c0 < n_col; c0 += 16)
	{
		__mmask16	mk = n_col - c0 >= 16 ? 0xffff : (__mmask16) ((1u << (n_col - c0)) - 1);
		__m512		r[16],
					u[16];

		for (int i = 0; i < 16; i++)
			r[i] = _mm512_maskz_loadu_ps(mk, src + (size_t) i * stride + c0);
		for (int i = 0; i < 16; i += 2)
		{
			u[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
			u[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
		}
		/* r[4q + m], 128-bit lane k: column 4k + m of rows 4q .. 4q+3 */
		for (int i = 0; i < 16; i += 4)
		{
			r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u[i]), _mm512_castps_pd(u[i + 2])));
			r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u[i]), _mm512_castps_pd(u[i + 2])));
			r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u[i + 1]), _mm512_castps_pd(u[i + 3])));
			r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u[i + 1]), _mm512_castps_pd(u[i + 3])));
		}
		for (int m = 0; m < 4; m++)
		{
			__m512		a01 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44),
						b01 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44),
						a23 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xee),
						b23 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xee),
						col[4];

			col[0] = _mm512_shuffle_f32x4(a01, b01, 0x88);
			col[1] = _mm512_shuffle_f32x4(a01, b01, 0xdd);
			col[2] = _mm512_shuffle_f32x4(a23, b23, 0x88);
			col[3] = _mm512_shuffle_f32x4(a23, b23, 0xdd);
			for (int k = 0; k < 4; k++)
				if (c0 + 4 * k + m < n_col)
					_mm512_storeu_ps(t + (size_t) (c0 + 4 * k + m) * 16, col[k]);
		}
	}
}

#define ATT_VW 16
#define ATT_VC 4
#define ATT_SUFFIX avx512
#define ATT_FMA(a, b, c) ((att_v) _mm512_fmadd_ps((__m512) (a), (__m512) (b), (__m512) (c)))
#define ATT_TRANSPOSE att_transpose_avx512
#define ATT_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#include "attention_simd.h"
