/*
 * attention.cu — causal grouped-query attention of one layer over the paged
 * KV pool, for many sequences of different lengths in one launch
 * (flash-decoding).
 *
 * Work: a token at position p of sequence row r sees positions
 * first .. p (first = max(0, p - n_swa + 1) on a sliding-window layer,
 * else 0), read through row r's block table (block p / 16, slot p % 16 of
 * kvcache.h's layout).  Query head h reads KV head h / group.  Those
 * positions are cut into splits of `split` positions; one block of
 * ATT_WARPS warps per (token, head, split), grid (n, n_head, n_splits).
 *
 * Block: the query goes to shared memory; warp w takes positions
 * lo + w, lo + w + ATT_WARPS, ... of the split; per position the lanes
 * compute the score dot(q, k) * scale (a shuffle tree over the head's
 * dimensions) and fold it into an online softmax (running max m, sum l,
 * and the weighted value sums acc, lane-strided over the value dimensions;
 * exponentials are the engine's lm_op_expf).  The warps' states are then
 * merged through shared memory.  With one split the block writes the
 * output acc / l; with several it writes (acc, m, l) to the partials and a
 * second kernel merges the splits of each (token, head).
 *
 * Differences from the CPU (attention.c): the same scores, softmax and
 * weights mathematically, but sums in another order (online rescaling,
 * warp trees) — the results agree to rounding, not bit for bit.
 *
 * Bounds: head widths <= LMC_MAX_HEAD_DIM (checked at upload), splits <=
 * LMC_ATT_MAX_SPLITS (the partials buffer), every block address checked on
 * the host (host_plan.c) before the launch.
 */
#include "common.cuh"

#include <math.h>

#include "kvcache.h"

/* Warps per (token, head, split). */
#define ATT_WARPS 4

/* Value dimensions per lane. */
#define ATT_VPL (LMC_MAX_HEAD_DIM / 32)

/* Weight of a state with max m in a merge with max M (0 for a state that saw nothing). */
__device__ __forceinline__ float
att_rescale(float m, float M)
{
	return m == -INFINITY ? 0.0f : lmc_expf(m - M);
}

/* One (token, head, split). */
__global__ void
__launch_bounds__(ATT_WARPS * 32)
att_kernel(lmc_att_params p)
{
	__shared__ float qs[LMC_MAX_HEAD_DIM];
	__shared__ float wacc[ATT_WARPS][LMC_MAX_HEAD_DIM];
	__shared__ float wm[ATT_WARPS],
				wl[ATT_WARPS];
	int			t = blockIdx.x,
				h = blockIdx.y,
				sp = blockIdx.z,
				lane = threadIdx.x & 31,
				wid = threadIdx.x >> 5,
				pos = p.pos[t],
				kvh = h / p.group,
				kd = (p.n_head / p.group) * p.hdk,
				vd = (p.n_head / p.group) * p.hdv,
				first = (p.n_swa > 0 && pos - p.n_swa + 1 > 0) ? pos - p.n_swa + 1 : 0,
				lo = first + sp * p.split,
				hi = lo + p.split < pos + 1 ? lo + p.split : pos + 1;
	const uint64_t *tab = p.table + (size_t) p.row[t] * p.mb;
	float		m = -INFINITY,
				l = 0.0f,
				acc[ATT_VPL];

	for (int d = threadIdx.x; d < p.hdk; d += blockDim.x)
		qs[d] = p.q[((size_t) t * p.n_head + h) * p.hdk + d];
#pragma unroll
	for (int i = 0; i < ATT_VPL; i++)
		acc[i] = 0.0f;
	__syncthreads();

	for (int ps = lo + wid; ps < hi; ps += ATT_WARPS)
	{
		const float *blk = (const float *) tab[ps / LM_KV_BLOCK];
		size_t		slot = (size_t) p.layer * LM_KV_BLOCK + (size_t) (ps % LM_KV_BLOCK);
		const float *kp = blk + slot * kd + (size_t) kvh * p.hdk,
				   *vp = blk + p.v_off + slot * vd + (size_t) kvh * p.hdv;
		float		sc = 0.0f,
					m_new,
					corr,
					e;

		for (int d = lane; d < p.hdk; d += 32)
			sc = __fmaf_rn(qs[d], kp[d], sc);
		sc = __fmul_rn(lmc_warp_sum(sc), p.scale);
		m_new = fmaxf(m, sc);
		corr = att_rescale(m, m_new);
		e = lmc_expf(sc - m_new);
		l = __fmaf_rn(l, corr, e);
#pragma unroll
		for (int i = 0; i < ATT_VPL; i++)
		{
			int			d = lane + 32 * i;

			if (d < p.hdv)
				acc[i] = __fmaf_rn(e, vp[d], __fmul_rn(acc[i], corr));
		}
		m = m_new;
	}

	/* merge the warps */
#pragma unroll
	for (int i = 0; i < ATT_VPL; i++)
		if (lane + 32 * i < p.hdv)
			wacc[wid][lane + 32 * i] = acc[i];
	if (lane == 0)
	{
		wm[wid] = m;
		wl[wid] = l;
	}
	__syncthreads();
	{
		float		M = -INFINITY,
					L = 0.0f,
					c[ATT_WARPS];

		for (int w = 0; w < ATT_WARPS; w++)
			M = fmaxf(M, wm[w]);
		for (int w = 0; w < ATT_WARPS; w++)
		{
			c[w] = att_rescale(wm[w], M);
			L = __fmaf_rn(wl[w], c[w], L);
		}
		for (int d = threadIdx.x; d < p.hdv; d += blockDim.x)
		{
			float		a = 0.0f;

			for (int w = 0; w < ATT_WARPS; w++)
				a = __fmaf_rn(wacc[w][d], c[w], a);
			if (p.n_splits == 1)
				p.out[((size_t) t * p.n_head + h) * p.hdv + d] = a / L;
			else
				p.part[(((size_t) t * p.n_head + h) * p.n_splits + sp) * (p.hdv + 2) + d] = a;
		}
		if (p.n_splits > 1 && threadIdx.x == 0)
		{
			float	   *ml = p.part + (((size_t) t * p.n_head + h) * p.n_splits + sp) * (p.hdv + 2) + p.hdv;

			ml[0] = M;
			ml[1] = L;
		}
	}
}

/* Merge the splits of one (token, head). */
__global__ void
att_merge_kernel(lmc_att_params p)
{
	int			t = blockIdx.x,
				h = blockIdx.y;
	const float *base = p.part + ((size_t) t * p.n_head + h) * p.n_splits * (p.hdv + 2);
	float		M = -INFINITY,
				L = 0.0f;

	for (int sp = 0; sp < p.n_splits; sp++)
		M = fmaxf(M, base[(size_t) sp * (p.hdv + 2) + p.hdv]);
	for (int sp = 0; sp < p.n_splits; sp++)
	{
		const float *ml = base + (size_t) sp * (p.hdv + 2) + p.hdv;

		L = __fmaf_rn(ml[1], att_rescale(ml[0], M), L);
	}
	for (int d = threadIdx.x; d < p.hdv; d += blockDim.x)
	{
		float		a = 0.0f;

		for (int sp = 0; sp < p.n_splits; sp++)
		{
			const float *ps = base + (size_t) sp * (p.hdv + 2);

			a = __fmaf_rn(ps[d], att_rescale(ps[p.hdv], M), a);
		}
		p.out[((size_t) t * p.n_head + h) * p.hdv + d] = a / L;
	}
}

/* Attention of one layer. */
cudaError_t
lmc_attention(cudaStream_t s, const lmc_att_params *p)
{
	dim3		grid((unsigned) p->n, (unsigned) p->n_head, (unsigned) p->n_splits);

	if (!LMC_GRID_OK(p->n, p->n_head, p->n_splits) || p->n_splits > LMC_ATT_MAX_SPLITS ||
		p->hdk < 1 || p->hdk > LMC_MAX_HEAD_DIM || p->hdv < 1 || p->hdv > LMC_MAX_HEAD_DIM ||
		p->group < 1 || p->n_head % p->group != 0 || p->split < 1)
		return cudaErrorInvalidValue;
	att_kernel<<<grid, ATT_WARPS * 32, 0, s>>>(*p);
	if (p->n_splits > 1)
	{
		cudaError_t e = cudaGetLastError();

		if (e != cudaSuccess)
			return e;
		att_merge_kernel<<<dim3((unsigned) p->n, (unsigned) p->n_head), 128, 0, s>>>(*p);
	}
	return cudaGetLastError();
}
