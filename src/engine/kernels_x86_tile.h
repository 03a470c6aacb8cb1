/*
 * kernels_x86_tile.h — tile sizes and the rows loop shared by the tiled x86 kernels.
 * Included by kernels_x86.h only (which defines LM_X86_VNNI and the
 * helpers); not a public header.
 */
#ifndef LM_KERNELS_X86_TILE_H
#define LM_KERNELS_X86_TILE_H

/* ---------------- weight prefetch ---------------- */

/*
 * Weight rows are read R at a time, R streams side by side, which the
 * hardware prefetcher follows poorly when rows are short (a 640-column Q8_0
 * row is 680 bytes): streaming a tall matrix from DRAM ran at 10 GB/s where
 * a plain linear read does 22.  So each tile prefetches, spread evenly over
 * its blocks and one prefetch per cache line, the bytes a later tile will
 * read: the R*ws bytes that start max(R*ws, X86_PF_MIN) bytes past its own
 * rows.  That takes the rows to lie one after another, ws apart, as the
 * rows of a matrix do; a prefetch past the end is harmless.
 */

/* Least prefetch distance in bytes (Zen 4, one thread, DRAM: best of 1-8 KiB, 2-4 KiB within noise). */
#define X86_PF_MIN 3072

/* State of one tile's weight prefetch. */
typedef struct x86_pf
{
	const uint8_t *base;		/* first byte of the span to prefetch */
	size_t		step16;			/* span bytes per block, 16.16 fixed point, rounded up */
	size_t		next;			/* offset in the span of the next prefetch */
} x86_pf;

/* Prefetch plan for a tile whose rows span span bytes from w, nb blocks per row. */
X86_INLINE x86_pf
x86_prefetch_init(const uint8_t *w, size_t span, int64_t nb)
{
	x86_pf		pf;

	pf.base = w + (span > X86_PF_MIN ? span : X86_PF_MIN);
	pf.step16 = nb > 0 ? (span << 16) / (size_t) nb + 1 : 0;
	pf.next = 0;
	return pf;
}

/* Prefetch the lines of block blk's share of the span (blocks visited in order). */
X86_INLINE void
x86_prefetch_slice(x86_pf *pf, int64_t blk)
{
	size_t		end = ((size_t) (blk + 1) * pf->step16) >> 16;

	for (; pf->next < end; pf->next += 64)
		_mm_prefetch((const char *) (pf->base + pf->next), _MM_HINT_T0);
}

/* ---------------- tile drivers ---------------- */

/* Row tile and batch tile of the quantized kernels (registers: 32 with AVX-512, 16 with AVX2). */
#if LM_X86_VNNI
#define Q32_R 4
#define Q32_B 4
#define QK_R 2
#define QK_B 4
#define QK_R1 4					/* Q4_K/Q5_K row tile at n_batch 1 */
#else
#define Q32_R 2
#define Q32_B 3
#define QK_R 2
#define QK_B 2
#define QK_R1 2
#endif

/* Call TILE(R, b) for a batch tile of nb_ (1..4) rows with the constant R and b that matches. */
#define X86_TILE_SWITCH(TILE, R_, nb_) \
	do { \
		switch (nb_) \
		{ \
			case 4: TILE(R_, 4); break; \
			case 3: TILE(R_, 3); break; \
			case 2: TILE(R_, 2); break; \
			default: TILE(R_, 1); break; \
		} \
	} while (0)

/*
 * Rows loop shared by the quantized types: rows in tiles of RMAX (the
 * remainder one at a time), each against the batch in tiles of BMAX; TILE(R, B)
 * computes out[r*B+b] for the rows at w and the activation rows at x.
 */
#define X86_ROWS_LOOP(RMAX, BMAX, TILE) \
	do { \
		for (int64_t r_ = r0; r_ < r1;) \
		{ \
			const int	rn_ = r1 - r_ >= (RMAX) ? (RMAX) : 1; \
			const uint8_t *w = (const uint8_t *) W + (size_t) r_ * ws; \
			for (int b0_ = 0; b0_ < n_batch; b0_ += (BMAX)) \
			{ \
				const int	bn_ = n_batch - b0_ < (BMAX) ? n_batch - b0_ : (BMAX); \
				const uint8_t *x = (const uint8_t *) Xq + (size_t) b0_ * xs; \
				float		out[4 * 4]; \
				if (rn_ == (RMAX)) \
					X86_TILE_SWITCH(TILE, RMAX, bn_); \
				else \
					X86_TILE_SWITCH(TILE, 1, bn_); \
				for (int i_ = 0; i_ < rn_; i_++) \
					for (int j_ = 0; j_ < bn_; j_++) \
						Y[(int64_t) (b0_ + j_) * y_stride + r_ + i_] = out[i_ * bn_ + j_]; \
			} \
			r_ += rn_; \
		} \
	} while (0)

#endif							/* LM_KERNELS_X86_TILE_H */
