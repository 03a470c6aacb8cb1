/*
 * attention_avx2.c — attention.c's score and value loops, 8 positions per
 * 256-bit vector (bodies in attention_simd.h); called only after a CPUID check.
 */
#include <immintrin.h>
#include <stddef.h>

/*
 * One KV block column-major: t[c*16 + i] = src[i*stride + c] for 16 rows and
 * n_col columns, by 8 x 8 tiles of in-register shuffles.  Exact copies.
 */
static inline void
att_transpose_avx2(float *t, const float *src, int n_col, size_t stride)
{
	for (int h = 0; h < 16; h += 8)
		for (int c0 = 0; c0 < n_col; c0 += 8)
		{
			int			nc = n_col - c0 < 8 ? n_col - c0 : 8;
			__m256i		mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
			__m256		r[8],
						u[8],
						s[8];

			for (int i = 0; i < 8; i++)
				r[i] = _mm256_maskload_ps(src + (size_t) (h + i) * stride + c0, mk);
			for (int i = 0; i < 8; i += 2)
			{
				u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
				u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
			}
			/* s[4q + m], 128-bit lane k: column 4k + m of rows 4q .. 4q+3 */
			for (int q = 0; q < 8; q += 4)
			{
				s[q] = _mm256_shuffle_ps(u[q], u[q + 2], 0x44);
				s[q + 1] = _mm256_shuffle_ps(u[q], u[q + 2], 0xee);
				s[q + 2] = _mm256_shuffle_ps(u[q + 1], u[q + 3], 0x44);
				s[q + 3] = _mm256_shuffle_ps(u[q + 1], u[q + 3], 0xee);
			}
			for (int m = 0; m < 4; m++)
			{
				if (m < nc)
					_mm256_storeu_ps(t + (size_t) (c0 + m) * 16 + h, _mm256_permute2f128_ps(s[m], s[4 + m], 0x20));
				if (4 + m < nc)
					_mm256_storeu_ps(t + (size_t) (c0 + 4 + m) * 16 + h, _mm256_permute2f128_ps(s[m], s[4 + m], 0x31));
			}
		}
}

#define ATT_VW 8
#define ATT_SUFFIX avx2
#define ATT_FMA(a, b, c) ((att_v) _mm256_fmadd_ps((__m256) (a), (__m256) (b), (__m256) (c)))
#define ATT_TRANSPOSE att_transpose_avx2
#define ATT_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#include "attention_simd.h"
