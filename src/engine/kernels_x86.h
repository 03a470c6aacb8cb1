/*
 * kernels_x86.h — the x86 SIMD kernel bodies, included by kernels_avx2.c
 * (LM_X86_VNNI 0) and kernels_avx512.c (LM_X86_VNNI 1, 256-bit VNNI for the
 * integer dots, 512-bit registers for F32/F16).  Not a public header.
 *
 * Each kernel follows the canonical order documented in kernels.h and
 * implemented in scalar form in kernels.c; only the integer parts (which are
 * exact) differ between the two instantiations.
 *
 * Speed comes from tiles (kernels_x86_tile.h): R weight rows x B activation
 * rows at once, every output with its own accumulators, so that a weight
 * block is decoded once per tile, an activation block loaded once per tile,
 * and R*B independent float chains are in flight.  Every (row, batch-row)
 * result still goes through exactly the float operations of the canonical
 * order, whatever the tile it falls in, so results are the same bits for
 * any n_batch, row range or ISA.  Weights stream from DRAM through a
 * linear software prefetch a few KiB ahead (kernels_x86_tile.h).  Per type: kernels_x86_q32.h (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0), kernels_x86_k.h (Q4_K, Q5_K, Q6_K); F32/F16 below.
 * The AVX-512 build adds kernels_x86_q32p.h for block-32 types on batches
 * of 4 or more activation rows (two weight rows per 512-bit register).
 */
#ifndef LM_KERNELS_X86_H
#define LM_KERNELS_X86_H

#include "kernels_impl.h"
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define X86_INLINE static inline __attribute__((always_inline))

/* fp16 bits to float with F16C (exact). */
X86_INLINE float
h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* Sum 8 lanes as ggml's hsum_float_8: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
X86_INLINE float
x86_hsum8(__m256 x)
{
	__m128		r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));

	r = _mm_add_ps(r, _mm_movehl_ps(r, r));
	r = _mm_add_ss(r, _mm_movehdup_ps(r));
	return _mm_cvtss_f32(r);
}

/* int32 lanes: lane k = sum of u[i]*s[i] over bytes 4k..4k+3 (u unsigned, s signed). */
X86_INLINE __m256i
dot_us(__m256i u, __m256i s)
{
#if LM_X86_VNNI
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* As dot_us for two signed operands (|a| times b with a's sign). */
X86_INLINE __m256i
dot_ss(__m256i a, __m256i b)
{
	return dot_us(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* 32 nibbles of 16 bytes as bytes 0..15: low nibbles first, then high. */
X86_INLINE __m256i
nibbles32(const uint8_t *p)
{
	__m256i		b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) p));

	/* shift the upper copy right by 4, then keep the low nibble of every byte */
	b = _mm256_srlv_epi64(b, _mm256_set_epi64x(4, 4, 0, 0));
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* Byte i = 0x10 if bit i of the 32-bit little-endian word at p is set, else 0. */
X86_INLINE __m256i
bits32_to_0x10(const uint8_t *p)
{
	uint32_t	w;
	__m256i		v,
				sel;

	memcpy(&w, p, 4);
	v = _mm256_set1_epi32((int) w);
	/* byte i takes source byte i/8 */
	v = _mm256_shuffle_epi8(v, _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
												0x0101010101010101LL, 0x0000000000000000LL));
	sel = _mm256_set1_epi64x(0x8040201008040201LL);
	v = _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ---------------- F32 / F16 / BF16 ---------------- */

/* Load 8 fp16 as floats. */
X86_INLINE __m256
ld_f16(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
}

/* Load 8 bf16 as floats. */
X86_INLINE __m256
ld_bf16(const uint16_t *p)
{
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p)), 16));
}

/* Fold emulated 4x16 accumulators (a[2j] lanes 0..7, a[2j+1] lanes 8..15) and reduce as _mm512_reduce_add_ps. */
X86_INLINE float
fold4x16(__m256 a[8])
{
	__m256		lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
	__m256		hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));

	return x86_hsum8(_mm256_add_ps(hi, lo));
}

/* Canonical F32 dot. */
static float
x86_dot_f32(const float *x, const float *y, int64_t n)
{
	int64_t		np = n & ~(int64_t) 63;
	float		s;

#if LM_X86_VNNI
	__m512		a0 = _mm512_setzero_ps(),
				a1 = _mm512_setzero_ps(),
				a2 = _mm512_setzero_ps(),
				a3 = _mm512_setzero_ps();

	for (int64_t i = 0; i < np; i += 64)
	{
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
	}
	a0 = _mm512_add_ps(a0, a2);
	a1 = _mm512_add_ps(a1, a3);
	s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#else
	__m256		a[8];

	for (int j = 0; j < 8; j++)
		a[j] = _mm256_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 8; j++)
			a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), _mm256_loadu_ps(y + i + 8 * j), a[j]);
	s = fold4x16(a);
#endif
	for (int64_t i = np; i < n; i++)
		s = fmaf(x[i], y[i], s);
	return s;
}

/* Canonical F16 dot (both fp16). */
static float
x86_dot_f16(const uint16_t *x, const uint16_t *y, int64_t n)
{
	int64_t		np = n & ~(int64_t) 63;
	double		s;

#if LM_X86_VNNI
	__m512		a[4];

	for (int j = 0; j < 4; j++)
		a[j] = _mm512_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 4; j++)
			a[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (x + i + 16 * j))),
								   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (y + i + 16 * j))), a[j]);
	a[0] = _mm512_add_ps(a[0], a[2]);
	a[1] = _mm512_add_ps(a[1], a[3]);
	s = (double) _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]));
#else
	__m256		a[8];

	for (int j = 0; j < 8; j++)
		a[j] = _mm256_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
		for (int j = 0; j < 8; j++)
			a[j] = _mm256_fmadd_ps(ld_f16(x + i + 8 * j), ld_f16(y + i + 8 * j), a[j]);
	s = (double) fold4x16(a);
#endif
	for (int64_t i = np; i < n; i++)
		s += (double) (h2f(x[i]) * h2f(y[i]));
	return (float) s;
}

/* Canonical BF16 dot (both bf16): 2x16 lanes over steps of 32. */
static float
x86_dot_bf16(const uint16_t *x, const uint16_t *y, int64_t n)
{
	int64_t		np = n & ~(int64_t) 31;
	__m256		a[4];
	double		s;

	for (int j = 0; j < 4; j++)
		a[j] = _mm256_setzero_ps();
	for (int64_t i = 0; i < np; i += 32)
		for (int j = 0; j < 4; j++)
			a[j] = _mm256_fmadd_ps(ld_bf16(x + i + 8 * j), ld_bf16(y + i + 8 * j), a[j]);
	s = (double) x86_hsum8(_mm256_add_ps(a[1], a[0]));
	s += (double) x86_hsum8(_mm256_add_ps(a[3], a[2]));
	for (int64_t i = np; i < n; i++)
	{
		float		xf,
					yf;
		uint32_t	xb = (uint32_t) x[i] << 16,
					yb = (uint32_t) y[i] << 16;

		memcpy(&xf, &xb, 4);
		memcpy(&yf, &yb, 4);
		s += (double) (xf * yf);
	}
	return (float) s;
}

/* Float-type matrix product: rows outer, batch inner. */
X86_INLINE void
rows_float(int kind, const void *W, size_t w_row_bytes, int64_t n_cols, int64_t r0, int64_t r1,
		   const void *Xq, size_t xq_row_bytes, int n_batch, float *Y, int64_t y_stride)
{
	for (int64_t r = r0; r < r1; r++)
	{
		const void *w = (const char *) W + (size_t) r * w_row_bytes;

		for (int b = 0; b < n_batch; b++)
		{
			const void *x = (const char *) Xq + (size_t) b * xq_row_bytes;
			float		v;

			if (kind == 0)
				v = x86_dot_f32(w, x, n_cols);
			else if (kind == 1)
				v = x86_dot_f16(w, x, n_cols);
			else
				v = x86_dot_bf16(w, x, n_cols);
			Y[(int64_t) b * y_stride + r] = v;
		}
	}
}

#include "kernels_x86_tile.h"
#include "kernels_x86_q32.h"
#include "kernels_x86_k.h"
#if LM_X86_VNNI
#include "kernels_x86_q32p.h"
#include "kernels_x86_kp.h"
#endif

/* K-quant matrix product: the paired 512-bit kernel for Q4_K/Q6_K batches (AVX-512), the 256-bit tiles otherwise. */
X86_INLINE void
rows_k_any(lm_type t, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
		   const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
#if LM_X86_VNNI
	if (n_batch >= 4 && t != LM_TYPE_Q5_K && rows_kp(t, W, ws, n_cols, r0, r1, Xq, xs, n_batch, Y, y_stride))
		return;
#endif
	rows_k(t, W, ws, n_cols, r0, r1, Xq, xs, n_batch, Y, y_stride);
}

/* Block-32 matrix product: the paired 512-bit kernel for batches (AVX-512), tile32 otherwise. */
X86_INLINE void
rows_q32_any(lm_type t, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
			 const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
#if LM_X86_VNNI
	if (n_batch >= 4 && n_cols >= 32 && n_cols / 32 <= Q32P_MAXNB)
	{
		rows_q32p(t, W, ws, n_cols, r0, r1, Xq, xs, n_batch, Y, y_stride);
		return;
	}
#endif
	rows_q32(t, W, ws, n_cols, r0, r1, Xq, xs, n_batch, Y, y_stride);
}

/* ---------------- F32 / F16, tiled (AVX-512) ---------------- */

#if LM_X86_VNNI
/*
 * R weight rows x B activation rows with the canonical 4 x 16-lane
 * accumulators per output; each weight vector is loaded (converted) once
 * per tile and each activation vector once per tile.  Tails as in
 * x86_dot_f32 / x86_dot_f16.
 */
X86_INLINE void
tile_f(int f16, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, int64_t n,
	   float *out, const int R, const int B)
{
	const int64_t np = n & ~(int64_t) 63;
	const size_t es = f16 ? 2 : 4;
	__m512		a[4][4][4];

	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
			_Pragma("GCC unroll 4")
			for (int j = 0; j < 4; j++)
				a[r][b][j] = _mm512_setzero_ps();
	for (int64_t i = 0; i < np; i += 64)
	{
		_Pragma("GCC unroll 4")
		for (int j = 0; j < 4; j++)
		{
			__m512		wv[4];

			_Pragma("GCC unroll 4")
			for (int r = 0; r < R; r++)
			{
				const uint8_t *p = w + (size_t) r * ws + (size_t) (i + 16 * j) * es;

				wv[r] = f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p)) : _mm512_loadu_ps((const float *) p);
			}
			_Pragma("GCC unroll 4")
			for (int b = 0; b < B; b++)
			{
				const uint8_t *p = x + (size_t) b * xs + (size_t) (i + 16 * j) * es;
				__m512		xv = f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p)) : _mm512_loadu_ps((const float *) p);

				_Pragma("GCC unroll 4")
				for (int r = 0; r < R; r++)
					a[r][b][j] = _mm512_fmadd_ps(wv[r], xv, a[r][b][j]);
			}
		}
	}
	_Pragma("GCC unroll 4")
	for (int r = 0; r < R; r++)
		_Pragma("GCC unroll 4")
		for (int b = 0; b < B; b++)
		{
			const uint8_t *wr = w + (size_t) r * ws;
			const uint8_t *xr = x + (size_t) b * xs;
			float		s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][b][0], a[r][b][2]),
															   _mm512_add_ps(a[r][b][1], a[r][b][3])));

			if (f16)
			{
				double		d = (double) s;

				for (int64_t k = np; k < n; k++)
					d += (double) (h2f(((const uint16_t *) wr)[k]) * h2f(((const uint16_t *) xr)[k]));
				out[r * B + b] = (float) d;
			}
			else
			{
				for (int64_t k = np; k < n; k++)
					s = fmaf(((const float *) wr)[k], ((const float *) xr)[k], s);
				out[r * B + b] = s;
			}
		}
}

/* F32 (f16=0) or F16 (f16=1) matrix product in tiles. */
X86_INLINE void
rows_f_tiled(int f16, const void *W, size_t ws, int64_t n_cols, int64_t r0, int64_t r1,
			 const void *Xq, size_t xs, int n_batch, float *Y, int64_t y_stride)
{
#define TILEF(R_, B_) tile_f(f16, w, ws, x, xs, n_cols, out, R_, B_)
	/* one row stream at a time when there is nothing to share a weight load with */
	if (n_batch == 1)
		X86_ROWS_LOOP(1, 1, TILEF);
	else
		X86_ROWS_LOOP(2, 3, TILEF);
#undef TILEF
}
#endif

/* F32 weights. */
static void
rows_f32(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys)
{
#if LM_X86_VNNI
	rows_f_tiled(0, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
#else
	rows_float(0, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
#endif
}

/* F16 weights. */
static void
rows_f16(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys)
{
#if LM_X86_VNNI
	rows_f_tiled(1, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
#else
	rows_float(1, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
#endif
}

/* BF16 weights. */
static void
rows_bf16(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys)
{
	rows_float(2, W, wb, n, r0, r1, X, xb, nbt, Y, ys);
}

/* Define the rows function of one quantized type through its family's driver. */
#define X86_ROWS_FN(name, T, driver) \
static void \
name(const void *W, size_t wb, int64_t n, int64_t r0, int64_t r1, const void *X, size_t xb, int nbt, float *Y, int64_t ys) \
{ \
	driver(T, W, wb, n, r0, r1, X, xb, nbt, Y, ys); \
}

X86_ROWS_FN(rows_q4_0, LM_TYPE_Q4_0, rows_q32_any)
X86_ROWS_FN(rows_q4_1, LM_TYPE_Q4_1, rows_q32_any)
X86_ROWS_FN(rows_q5_0, LM_TYPE_Q5_0, rows_q32_any)
X86_ROWS_FN(rows_q5_1, LM_TYPE_Q5_1, rows_q32_any)
X86_ROWS_FN(rows_q8_0, LM_TYPE_Q8_0, rows_q32_any)
X86_ROWS_FN(rows_q4_K, LM_TYPE_Q4_K, rows_k_any)
X86_ROWS_FN(rows_q5_K, LM_TYPE_Q5_K, rows_k)
X86_ROWS_FN(rows_q6_K, LM_TYPE_Q6_K, rows_k_any)

/* Fill a kernel table with this file's kernels. */
static void
x86_fill(lm_kernel_table *t)
{
	t->rows[LM_TYPE_F32] = rows_f32;
	t->rows[LM_TYPE_F16] = rows_f16;
	t->rows[LM_TYPE_BF16] = rows_bf16;
	t->rows[LM_TYPE_Q4_0] = rows_q4_0;
	t->rows[LM_TYPE_Q4_1] = rows_q4_1;
	t->rows[LM_TYPE_Q5_0] = rows_q5_0;
	t->rows[LM_TYPE_Q5_1] = rows_q5_1;
	t->rows[LM_TYPE_Q8_0] = rows_q8_0;
	t->rows[LM_TYPE_Q4_K] = rows_q4_K;
	t->rows[LM_TYPE_Q5_K] = rows_q5_K;
	t->rows[LM_TYPE_Q6_K] = rows_q6_K;
	t->dot_f32 = x86_dot_f32;
}

#endif							/* LM_KERNELS_X86_H */
