/*
 * attention_simd.h — the two inner loops of attention.c (scores of a group
 * of query rows against the key blocks; the weighted sum of the value
 * blocks), written once over vectors of ATT_VW floats and compiled per
 * instruction set: attention.c (scalar, 4 lanes, fmaf per lane),
 * attention_avx2.c (8) and attention_avx512.c (16) define ATT_VW,
 * ATT_SUFFIX, ATT_FMA and ATT_FMAF (a scalar fma) before including it.
 *
 * Vectors run across positions (scores) or value columns (value lanes),
 * never along one sum, so every score and every value lane is computed with
 * the same operations in the same order as the one-position-at-a-time
 * reference (see attention.c's header), and all instruction sets give the
 * same floats.
 */
#ifndef LM_ATTENTION_SIMD_H
#define LM_ATTENTION_SIMD_H

#include <stddef.h>

#include "kvcache.h"

/* Query rows of one attention item at most (tokens of one tile x heads of one KV head). */
#define LM_ATT_MAX_ROWS 64

/*
 * One attention item: query rows that share a sequence and a KV head, each
 * seeing its own range of positions, over the KV blocks blo .. bhi.
 */
typedef struct lm_att_item
{
	const lm_kv *kv;			/* the cache */
	int			seq;			/* sequence */
	int			layer;			/* layer */
	int			g;				/* KV head */
	int			hdk;			/* key width */
	int			hdv;			/* value width */
	int			nl;				/* value lanes: 16 or 64 */
	float		scale;			/* score multiplier */
	int			n_rows;			/* query rows */
	int			blo;			/* first block any row sees */
	int			bhi;			/* last block any row sees */
	const float *q[LM_ATT_MAX_ROWS];	/* (hdk) query of each row */
	int			lo[LM_ATT_MAX_ROWS];	/* first position each row sees */
	int			hi[LM_ATT_MAX_ROWS];	/* last position each row sees */
	float		max[LM_ATT_MAX_ROWS];	/* largest score of each row (scores pass) */
	float	   *sc;				/* (n_rows, sc_stride) scores, then weights; index pos - 16*blo */
	size_t		sc_stride;		/* floats per row of sc */
	float	   *acc;			/* (n_rows, nl, hdv) value lanes */
	float	   *out[LM_ATT_MAX_ROWS];	/* (hdv) output of each row */
	float	   *tb;				/* (16, hdk) a transposed key block */
} lm_att_item;

/*
 * Scores pass: for every row and every position it sees, sc = F32 dot(q,
 * k) (ggml's 4x16-lane fma order, fmaf tail) * scale; max[r] = the largest.
 */
extern void lm_att_scores_scalar(lm_att_item *it);
extern void lm_att_scores_avx2(lm_att_item *it);
extern void lm_att_scores_avx512(lm_att_item *it);

/*
 * Value pass: acc[r][lane][d] = fma(w, v[d], acc) from zero over the
 * positions row r sees, in position order, where lane = pos % nl, w being
 * sc; then out[r][d] = the lanes combined (att_reduce_rows).
 */
extern void lm_att_values_scalar(lm_att_item *it);
extern void lm_att_values_avx2(lm_att_item *it);
extern void lm_att_values_avx512(lm_att_item *it);

#endif							/* LM_ATTENTION_SIMD_H */

#ifdef ATT_VW

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define ATT_CAT2(a, b) a##b
#define ATT_CAT(a, b) ATT_CAT2(a, b)

/* ATT_VW floats / ints; aligned(4) allows unaligned loads and stores through them. */
typedef float att_v __attribute__((vector_size(ATT_VW * 4), aligned(4)));
typedef int32_t att_vi __attribute__((vector_size(ATT_VW * 4), aligned(4)));

/* Halves (quarters) of a 16-position block one vector covers. */
#define ATT_NV (LM_KV_BLOCK / ATT_VW)

/*
 * Copy a block's 16 rows of n_col columns (rows stride floats apart)
 * column-major: t[c*16 + i].  ATT_TRANSPOSE, when the instruction set
 * defines it, does it with shuffles.
 */
static inline void
att_transpose(float *t, const float *src, int n_col, size_t stride)
{
#ifdef ATT_TRANSPOSE
	ATT_TRANSPOSE(t, src, n_col, stride);
#else
	for (int i = 0; i < LM_KV_BLOCK; i++)
	{
		const float *s = src + (size_t) i * stride;

		for (int c = 0; c < n_col; c++)
			t[(size_t) c * LM_KV_BLOCK + i] = s[c];
	}
#endif
}

/* Lanes whose position base + i lies in [lo, hi]: all ones, else zero. */
static inline att_vi
att_mask(int base, int lo, int hi)
{
	att_vi		m;

	for (int i = 0; i < ATT_VW; i++)
		m[i] = (base + i >= lo && base + i <= hi) ? -1 : 0;
	return m;
}

/*
 * ATT_VW scores of each of nq (1 or 2) queries against transposed keys kt
 * (column e at kt + e*16), sharing the key loads: per position, 4 x 16 fma
 * lanes over the first hdk & ~63 dimensions, combined ((0 + 2) + (1 + 3))
 * then as a 16-lane tree, then an fma chain over the rest — lm_dot_f32's
 * order, position by position.
 */
static inline __attribute__((always_inline)) void
att_dot(const float *const *q, const int nq, const float *kt, int hdk, att_v *s)
{
	int			np = hdk & ~63;

	for (int x = 0; x < nq; x++)
		s[x] = (att_v) {0};
	if (np > 0)
	{
		att_v		t[2][8];

		_Pragma("GCC unroll 8")
		for (int l = 0; l < 8; l++)
		{
			att_v		h[2][2];

			_Pragma("GCC unroll 2")
			for (int k = 0; k < 2; k++)
			{
				int			lane = l + 8 * k;
				att_v		a[2][4] = {{{0}, {0}, {0}, {0}}, {{0}, {0}, {0}, {0}}};

				for (int i = 0; i < np; i += 64)
					_Pragma("GCC unroll 4")
					for (int j = 0; j < 4; j++)
					{
						int			e = i + 16 * j + lane;
						att_v		kv = *(const att_v *) (kt + (size_t) e * LM_KV_BLOCK);

						_Pragma("GCC unroll 2")
						for (int x = 0; x < nq; x++)
							a[x][j] = ATT_FMA((att_v) {0} + q[x][e], kv, a[x][j]);
					}
				_Pragma("GCC unroll 2")
				for (int x = 0; x < nq; x++)
					h[x][k] = (a[x][0] + a[x][2]) + (a[x][1] + a[x][3]);
			}
			_Pragma("GCC unroll 2")
			for (int x = 0; x < nq; x++)
				t[x][l] = h[x][1] + h[x][0];
		}
		_Pragma("GCC unroll 2")
		for (int x = 0; x < nq; x++)
			s[x] = ((t[x][4] + t[x][0]) + (t[x][6] + t[x][2])) + ((t[x][5] + t[x][1]) + (t[x][7] + t[x][3]));
	}
	for (int e = np; e < hdk; e++)
	{
		att_v		kv = *(const att_v *) (kt + (size_t) e * LM_KV_BLOCK);

		for (int x = 0; x < nq; x++)
			s[x] = ATT_FMA((att_v) {0} + q[x][e], kv, s[x]);
	}
}

/* Whether row r sees any of the ATT_VW positions from p. */
static inline bool
att_sees(const lm_att_item *it, int r, int p)
{
	return r < it->n_rows && it->hi[r] >= p && it->lo[r] <= p + ATT_VW - 1;
}

/* Store row r's scores s (times scale) of the positions from p and fold the visible ones into vmax. */
static inline void
att_keep(lm_att_item *it, int r, int p, att_v s, att_v *vmax)
{
	float	   *sc = it->sc + (size_t) r * it->sc_stride + (size_t) (p - it->blo * LM_KV_BLOCK);
	att_vi		gt;

	s = s * it->scale;
	*(att_v *) sc = s;
	gt = s > *vmax;
	if (it->lo[r] > p || it->hi[r] < p + ATT_VW - 1)
		gt &= att_mask(p, it->lo[r], it->hi[r]);
	*vmax = (att_v) (((att_vi) s & gt) | ((att_vi) * vmax & ~gt));
}

/* Scores of every row against the key blocks it sees (two rows per key load), and each row's maximum. */
void
ATT_CAT(lm_att_scores_, ATT_SUFFIX) (lm_att_item *it)
{
	const lm_kv *kv = it->kv;
	att_v		vmax[LM_ATT_MAX_ROWS];

	for (int r = 0; r < it->n_rows; r++)
		vmax[r] = (att_v) {0} - __builtin_inff();
	for (int blk = it->blo; blk <= it->bhi; blk++)
	{
		const float *src = lm_kv_k_block(kv, it->seq, it->layer, blk) + (size_t) it->g * it->hdk;
		int			b0 = blk * LM_KV_BLOCK;

		att_transpose(it->tb, src, it->hdk, kv->k_dim);
		for (int r = 0; r < it->n_rows; r += 2)
			for (int h = 0; h < ATT_NV; h++)
			{
				int			p = b0 + h * ATT_VW;
				bool		s0 = att_sees(it, r, p),
							s1 = att_sees(it, r + 1, p);
				att_v		s[2];

				if (s0 && s1)
				{
					const float *q[2] = {it->q[r], it->q[r + 1]};

					att_dot(q, 2, it->tb + h * ATT_VW, it->hdk, s);
					att_keep(it, r, p, s[0], &vmax[r]);
					att_keep(it, r + 1, p, s[1], &vmax[r + 1]);
				}
				else if (s0 || s1)
				{
					int			rr = s0 ? r : r + 1;

					att_dot(&it->q[rr], 1, it->tb + h * ATT_VW, it->hdk, s);
					att_keep(it, rr, p, s[0], &vmax[rr]);
				}
			}
	}
	for (int r = 0; r < it->n_rows; r++)
	{
		float		m = -__builtin_inff();

		for (int i = 0; i < ATT_VW; i++)
			if (vmax[r][i] > m)
				m = vmax[r][i];
		it->max[r] = m;
	}
}

/* Value-tile columns: ATT_VC vectors (the instruction set may define it by its register count). */
#ifndef ATT_VC
#define ATT_VC 2
#endif

/* Value-tile rows: query rows sharing each value load (a token's heads of one KV head). */
#define ATT_VR 4

/*
 * One value tile: rows r0 .. r0+nr-1, lane `lane`, the nc vectors of value
 * columns from d0.  Each row's accumulators start at zero and take
 * fma(w[p], v[p][d], acc) for the positions p = lane (mod nl) it sees, in
 * position order: one lane's chain, exactly as the reference, but each
 * value row loaded once for all nr rows and held in registers across the
 * whole range.  The sums go to acc[r][lane][d].
 */
static inline __attribute__((always_inline)) void
att_vtile(lm_att_item *it, int r0, const int nr, int lane, int d0, const int nc)
{
	const lm_kv *kv = it->kv;
	int			nl = it->nl,
				hdv = it->hdv,
				ulo = it->lo[r0],
				uhi = it->hi[r0],
				ilo = it->lo[r0],
				ihi = it->hi[r0],
				p;
	size_t		wbase = (size_t) it->blo * LM_KV_BLOCK;
	const float *w[ATT_VR];
	att_v		a[ATT_VR][ATT_VC];

	_Pragma("GCC unroll 4")
	for (int r = 0; r < nr; r++)
	{
		int			lo = it->lo[r0 + r],
					hi = it->hi[r0 + r];

		ulo = lo < ulo ? lo : ulo;
		uhi = hi > uhi ? hi : uhi;
		ilo = lo > ilo ? lo : ilo;
		ihi = hi < ihi ? hi : ihi;
		w[r] = it->sc + (size_t) (r0 + r) * it->sc_stride - wbase;
		_Pragma("GCC unroll 4")
		for (int c = 0; c < nc; c++)
			a[r][c] = (att_v) {0};
	}
	/* first position of the lane at or after ulo */
	p = ulo + ((lane - ulo % nl) + nl) % nl;
	for (; p <= uhi; p += nl)
	{
		const float *vp = lm_kv_v(kv, it->seq, it->layer, p) + (size_t) it->g * hdv + d0;
		att_v		v[ATT_VC];

		_Pragma("GCC unroll 4")
		for (int c = 0; c < nc; c++)
			v[c] = *(const att_v *) (vp + c * ATT_VW);
		if (p >= ilo && p <= ihi)
		{
			_Pragma("GCC unroll 4")
			for (int r = 0; r < nr; r++)
			{
				att_v		wv = (att_v) {0} + w[r][p];

				_Pragma("GCC unroll 4")
				for (int c = 0; c < nc; c++)
					a[r][c] = ATT_FMA(wv, v[c], a[r][c]);
			}
		}
		else
		{
			_Pragma("GCC unroll 4")
			for (int r = 0; r < nr; r++)
				if (p >= it->lo[r0 + r] && p <= it->hi[r0 + r])
				{
					att_v		wv = (att_v) {0} + w[r][p];

					_Pragma("GCC unroll 4")
					for (int c = 0; c < nc; c++)
						a[r][c] = ATT_FMA(wv, v[c], a[r][c]);
				}
		}
	}
	_Pragma("GCC unroll 4")
	for (int r = 0; r < nr; r++)
	{
		float	   *dst = it->acc + ((size_t) (r0 + r) * nl + lane) * hdv + d0;

		_Pragma("GCC unroll 4")
		for (int c = 0; c < nc; c++)
			*(att_v *) (dst + c * ATT_VW) = a[r][c];
	}
}

/* att_vtile for nr (1 .. ATT_VR) rows, with constant row and column counts. */
static inline __attribute__((always_inline)) void
att_vtile_rows(lm_att_item *it, int r0, int nr, int lane, int d0, const int nc)
{
	switch (nr)
	{
		case 4:
			att_vtile(it, r0, 4, lane, d0, nc);
			break;
		case 3:
			att_vtile(it, r0, 3, lane, d0, nc);
			break;
		case 2:
			att_vtile(it, r0, 2, lane, d0, nc);
			break;
		default:
			att_vtile(it, r0, 1, lane, d0, nc);
			break;
	}
}

/* Row r's lanes of the value columns past the last whole vector, one fma chain per lane and column. */
static void
att_vtail(lm_att_item *it, int r, int d0)
{
	const lm_kv *kv = it->kv;
	int			nl = it->nl,
				hdv = it->hdv;
	const float *w = it->sc + (size_t) r * it->sc_stride - (size_t) it->blo * LM_KV_BLOCK;

	for (int lane = 0; lane < nl; lane++)
	{
		float	   *dst = it->acc + ((size_t) r * nl + lane) * hdv;
		int			p = it->lo[r] + ((lane - it->lo[r] % nl) + nl) % nl;

		for (int d = d0; d < hdv; d++)
			dst[d] = 0.0f;
		for (; p <= it->hi[r]; p += nl)
		{
			const float *vp = lm_kv_v(kv, it->seq, it->layer, p) + (size_t) it->g * hdv;

			for (int d = d0; d < hdv; d++)
				dst[d] = ATT_FMAF(w[p], vp[d], dst[d]);
		}
	}
}

/*
 * out[r][d] = row r's lanes combined: with 64 lanes ((0 + 2) + (1 + 3)) by
 * groups of 16, then the 16-lane tree ((4+0)+(6+2))+((5+1)+(7+3)) of
 * l + (l + 8); vectors along d, so each output sees the reference's adds.
 */
static void
att_reduce_rows(lm_att_item *it)
{
	int			hdv = it->hdv,
				nl = it->nl;
	size_t		l16 = (size_t) 16 * hdv;

	for (int r = 0; r < it->n_rows; r++)
	{
		const float *acc = it->acc + (size_t) r * nl * hdv;
		float	   *out = it->out[r];
		int			d = 0;

		for (; d + ATT_VW <= hdv; d += ATT_VW)
		{
			att_v		x[16],
						t[8];

			for (int l = 0; l < 16; l++)
			{
				const float *c = acc + (size_t) l * hdv + d;

				x[l] = nl == 64 ? (*(const att_v *) c + *(const att_v *) (c + 2 * l16)) +
					(*(const att_v *) (c + l16) + *(const att_v *) (c + 3 * l16)) : *(const att_v *) c;
			}
			for (int l = 0; l < 8; l++)
				t[l] = x[8 + l] + x[l];
			*(att_v *) (out + d) = ((t[4] + t[0]) + (t[6] + t[2])) + ((t[5] + t[1]) + (t[7] + t[3]));
		}
		for (; d < hdv; d++)
		{
			float		x[16],
						t[8];

			for (int l = 0; l < 16; l++)
			{
				const float *c = acc + (size_t) l * hdv + d;

				x[l] = nl == 64 ? (c[0] + c[2 * l16]) + (c[l16] + c[3 * l16]) : c[0];
			}
			for (int l = 0; l < 8; l++)
				t[l] = x[8 + l] + x[l];
			out[d] = ((t[4] + t[0]) + (t[6] + t[2])) + ((t[5] + t[1]) + (t[7] + t[3]));
		}
	}
}

/*
 * Value pass and output: every row's lanes in tiles of up to ATT_VR rows x
 * ATT_VC vectors of columns, lane by lane (so a lane's value rows, read
 * for every row group, stay in L1), then each row's lanes combined into
 * its output.  Vectors run along the value columns, never along a sum.
 */
void
ATT_CAT(lm_att_values_, ATT_SUFFIX) (lm_att_item *it)
{
	int			hdv = it->hdv,
				d_vec = hdv - hdv % ATT_VW;		/* columns in whole vectors */

	for (int lane = 0; lane < it->nl; lane++)
	{
		int			d0 = 0;

		for (; d0 + ATT_VC * ATT_VW <= d_vec; d0 += ATT_VC * ATT_VW)
			for (int r0 = 0; r0 < it->n_rows; r0 += ATT_VR)
				att_vtile_rows(it, r0, it->n_rows - r0 < ATT_VR ? it->n_rows - r0 : ATT_VR, lane, d0, ATT_VC);
		for (; d0 < d_vec; d0 += ATT_VW)
			for (int r0 = 0; r0 < it->n_rows; r0 += ATT_VR)
				att_vtile_rows(it, r0, it->n_rows - r0 < ATT_VR ? it->n_rows - r0 : ATT_VR, lane, d0, 1);
	}
	if (d_vec < hdv)
		for (int r = 0; r < it->n_rows; r++)
			att_vtail(it, r, d_vec);
	att_reduce_rows(it);
}

#endif							/* ATT_VW */
