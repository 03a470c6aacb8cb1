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
 * Value pass: acc[r][lane][d] = fma(w, v[d], acc) over the positions row r
 * sees, in position order, where lane = pos % nl, w being sc; acc (nl lanes
 * of hdv floats per row) must be zero on entry.
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

/* Value blocks the value pass runs all rows over before moving on. */
#define ATT_VCHUNK 8

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

/*
 * Add row r's visible positions of blocks rb0..rb1 into its 16 lanes for
 * the ATT_VW value columns from d0: the 16 lane accumulators stay in
 * registers across the blocks (position b*16 + i always goes to lane i).
 */
static inline __attribute__((always_inline)) void
att_wsum16(lm_att_item *it, int r, int rb0, int rb1, int d0)
{
	const lm_kv *kv = it->kv;
	int			hdv = it->hdv,
				lo = it->lo[r],
				hi = it->hi[r];
	const float *w = it->sc + (size_t) r * it->sc_stride;
	float	   *acc = it->acc + (size_t) r * 16 * hdv + d0;
	att_v		a[16];

	_Pragma("GCC unroll 16")
	for (int i = 0; i < 16; i++)
		a[i] = *(const att_v *) (acc + (size_t) i * hdv);
	for (int b = rb0; b <= rb1; b++)
	{
		const float *vb = lm_kv_v_block(kv, it->seq, it->layer, b) + (size_t) it->g * hdv + d0;
		const float *wb = w + (size_t) (b - it->blo) * LM_KV_BLOCK;
		int			b0 = b * LM_KV_BLOCK;
		bool		full = lo <= b0 && hi >= b0 + LM_KV_BLOCK - 1;

		_Pragma("GCC unroll 16")
		for (int i = 0; i < 16; i++)
			if (full || (b0 + i >= lo && b0 + i <= hi))
				a[i] = ATT_FMA((att_v) {0} + wb[i], *(const att_v *) (vb + (size_t) i * kv->v_dim), a[i]);
	}
	_Pragma("GCC unroll 16")
	for (int i = 0; i < 16; i++)
		*(att_v *) (acc + (size_t) i * hdv) = a[i];
}

/*
 * Weighted sum of the value blocks into each row's lanes, ATT_VCHUNK blocks
 * at a time for all rows (so those value rows stay in cache).  Vectors run
 * along the value dimension (lane-major acc, one fma per position and
 * column) rather than across positions: a lane whose sum is subnormal then
 * slows only its own instructions, as in the reference, instead of every
 * instruction of its block.  With 16 lanes the lane accumulators of ATT_VW
 * columns stay in registers (att_wsum16); otherwise, and for the columns
 * left over, they are updated in memory.
 */
void
ATT_CAT(lm_att_values_, ATT_SUFFIX) (lm_att_item *it)
{
	const lm_kv *kv = it->kv;
	int			hdv = it->hdv,
				d_reg = it->nl == 16 ? hdv - hdv % ATT_VW : 0;	/* columns done in registers */

	for (int c0 = it->blo; c0 <= it->bhi; c0 += ATT_VCHUNK)
		for (int r = 0; r < it->n_rows; r++)
		{
			const float *w = it->sc + (size_t) r * it->sc_stride;
			float	   *acc = it->acc + (size_t) r * it->nl * hdv;
			int			rb0 = it->lo[r] / LM_KV_BLOCK > c0 ? it->lo[r] / LM_KV_BLOCK : c0,
						rb1 = it->hi[r] / LM_KV_BLOCK < c0 + ATT_VCHUNK - 1 ? it->hi[r] / LM_KV_BLOCK : c0 + ATT_VCHUNK - 1;

			if (rb0 > rb1)
				continue;
			for (int d0 = 0; d0 < d_reg; d0 += ATT_VW)
				att_wsum16(it, r, rb0, rb1, d0);
			if (d_reg == hdv)
				continue;
			for (int b = rb0; b <= rb1; b++)
			{
				const float *vb = lm_kv_v_block(kv, it->seq, it->layer, b) + (size_t) it->g * hdv;
				int			b0 = b * LM_KV_BLOCK,
							i0 = it->lo[r] > b0 ? it->lo[r] - b0 : 0,
							i1 = it->hi[r] < b0 + LM_KV_BLOCK - 1 ? it->hi[r] - b0 + 1 : LM_KV_BLOCK;

				for (int i = i0; i < i1; i++)
				{
					const float *vp = vb + (size_t) i * kv->v_dim;
					float		wi = w[(size_t) (b - it->blo) * LM_KV_BLOCK + i];
					float	   *a = acc + (size_t) ((b0 + i) % it->nl) * hdv;
					att_v		wv = (att_v) {0} + wi;
					int			d = d_reg;

					for (; d + ATT_VW <= hdv; d += ATT_VW)
						*(att_v *) (a + d) = ATT_FMA(wv, *(const att_v *) (vp + d), *(const att_v *) (a + d));
					for (; d < hdv; d++)
						a[d] = ATT_FMAF(wi, vp[d], a[d]);
				}
			}
		}
}

#endif							/* ATT_VW */
