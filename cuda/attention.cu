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
 * ATT_WARPS warps per (token, G query heads of one KV head, split), G =
 * lmc_att_heads_per_block(group), so each key and value row is read once
 * for the G heads that share it (decode is bound by these reads).
 *
 * Block: the G queries go to shared memory; see att_kernel for how a warp
 * walks its positions (lanes over positions for the scores, lanes over
 * value dimensions for the sums, an online softmax per head; exponentials
 * are the engine's lm_op_expf).  The warps' states are then merged through
 * shared memory.  With one split the block writes the output acc / l; with
 * several it writes (acc, m, l) to the partials and a second kernel merges
 * the splits of each (token, head).
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

/* Warps per block. */
#define ATT_WARPS 4

/* Value dimensions per lane. */
#define ATT_VPL (LMC_MAX_HEAD_DIM / 32)

/* Weight of a state with max m in a merge with max M (0 for a state that saw nothing). */
__device__ __forceinline__ float
att_rescale(float m, float M)
{
	return m == -INFINITY ? 0.0f : lmc_expf(m - M);
}

/* Largest of a warp's values, every lane gets it. */
__device__ __forceinline__ float
att_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Score of one key row against G queries in shared memory (sequential over the dimensions). */
template <int G>
__device__ __forceinline__ void
att_scores(const float *kp, const float (*qs)[LMC_MAX_HEAD_DIM], int hdk, float *sc)
{
#pragma unroll
	for (int g = 0; g < G; g++)
		sc[g] = 0.0f;
	if ((hdk & 3) == 0)
	{
		const float4 *k4 = (const float4 *) kp;

		for (int d4 = 0; d4 < hdk / 4; d4++)
		{
			float4		k = k4[d4];

#pragma unroll
			for (int g = 0; g < G; g++)
			{
				sc[g] = __fmaf_rn(qs[g][4 * d4], k.x, sc[g]);
				sc[g] = __fmaf_rn(qs[g][4 * d4 + 1], k.y, sc[g]);
				sc[g] = __fmaf_rn(qs[g][4 * d4 + 2], k.z, sc[g]);
				sc[g] = __fmaf_rn(qs[g][4 * d4 + 3], k.w, sc[g]);
			}
		}
	}
	else
		for (int d = 0; d < hdk; d++)
		{
			float		k = kp[d];

#pragma unroll
			for (int g = 0; g < G; g++)
				sc[g] = __fmaf_rn(qs[g][d], k, sc[g]);
		}
}

/*
 * One (token, G query heads sharing a KV head, split).  Warp w takes
 * chunks w, w + ATT_WARPS, ... of 32 consecutive positions; lane j of a
 * chunk scores position c0 + j against the G queries (its key row read
 * once for all of them), the chunk's max updates the warp's running max,
 * and each position's weights are broadcast by shuffles while the lanes,
 * over the value dimensions, accumulate its value row (read once for the G
 * heads).  Sums of weights stay per lane until the end.
 */
template <int G>
__global__ void
__launch_bounds__(ATT_WARPS * 32)
att_kernel(lmc_att_params p)
{
	__shared__ __align__(16) float qs[G][LMC_MAX_HEAD_DIM];
	__shared__ float wacc[ATT_WARPS][G][LMC_MAX_HEAD_DIM];
	__shared__ float wm[ATT_WARPS][G],
				wl[ATT_WARPS][G];
	int			t = blockIdx.x,
				h0 = blockIdx.y * G,
				sp = blockIdx.z,
				lane = threadIdx.x & 31,
				wid = threadIdx.x >> 5,
				pos = p.pos[t],
				kvh = h0 / p.group,
				kd = (p.n_head / p.group) * p.hdk,
				vd = (p.n_head / p.group) * p.hdv,
				first = (p.n_swa > 0 && pos - p.n_swa + 1 > 0) ? pos - p.n_swa + 1 : 0,
				lo = first + sp * p.split,
				hi = lo + p.split < pos + 1 ? lo + p.split : pos + 1;
	const uint64_t *tab = p.table + (size_t) p.row[t] * p.mb;
	float		m[G],
				l[G],
				acc[G][ATT_VPL];

	for (int i = threadIdx.x; i < G * p.hdk; i += blockDim.x)
		qs[i / p.hdk][i % p.hdk] = p.q[((size_t) t * p.n_head + h0 + i / p.hdk) * p.hdk + i % p.hdk];
#pragma unroll
	for (int g = 0; g < G; g++)
	{
		m[g] = -INFINITY;
		l[g] = 0.0f;
#pragma unroll
		for (int i = 0; i < ATT_VPL; i++)
			acc[g][i] = 0.0f;
	}
	__syncthreads();

	for (int c0 = lo + 32 * wid; c0 < hi; c0 += 32 * ATT_WARPS)
	{
		int			ps = c0 + lane < hi ? c0 + lane : c0,
					nv = hi - c0 < 32 ? hi - c0 : 32;
		const float *blk = (const float *) tab[ps / LM_KV_BLOCK];
		size_t		slot = (size_t) p.layer * LM_KV_BLOCK + (size_t) (ps % LM_KV_BLOCK);
		const float *vrow = blk + p.v_off + slot * vd + (size_t) kvh * p.hdv;
		float		sc[G];

		att_scores<G>(blk + slot * kd + (size_t) kvh * p.hdk, qs, p.hdk, sc);
#pragma unroll
		for (int g = 0; g < G; g++)
		{
			float		s = lane < nv ? __fmul_rn(sc[g], p.scale) : -INFINITY,
						m_new = fmaxf(m[g], att_warp_max(s)),
						corr = att_rescale(m[g], m_new);

			sc[g] = lane < nv ? lmc_expf(s - m_new) : 0.0f;
			l[g] = __fmaf_rn(l[g], corr, sc[g]);
#pragma unroll
			for (int i = 0; i < ATT_VPL; i++)
				acc[g][i] = __fmul_rn(acc[g][i], corr);
			m[g] = m_new;
		}
		for (int j = 0; j < nv; j++)
		{
			const float *vj = (const float *) __shfl_sync(0xffffffffu, (unsigned long long) vrow, j);
			float		e[G];

#pragma unroll
			for (int g = 0; g < G; g++)
				e[g] = __shfl_sync(0xffffffffu, sc[g], j);
#pragma unroll
			for (int i = 0; i < ATT_VPL; i++)
			{
				int			d = lane + 32 * i;

				if (d < p.hdv)
				{
					float		v = vj[d];

#pragma unroll
					for (int g = 0; g < G; g++)
						acc[g][i] = __fmaf_rn(e[g], v, acc[g][i]);
				}
			}
		}
	}

	/* merge the warps */
#pragma unroll
	for (int g = 0; g < G; g++)
	{
		float		lsum = lmc_warp_sum(l[g]);

#pragma unroll
		for (int i = 0; i < ATT_VPL; i++)
			if (lane + 32 * i < p.hdv)
				wacc[wid][g][lane + 32 * i] = acc[g][i];
		if (lane == 0)
		{
			wm[wid][g] = m[g];
			wl[wid][g] = lsum;
		}
	}
	__syncthreads();
	for (int g = 0; g < G; g++)
	{
		float		M = -INFINITY,
					L = 0.0f,
					c[ATT_WARPS];
		size_t		th = (size_t) t * p.n_head + h0 + g;

		for (int w = 0; w < ATT_WARPS; w++)
			M = fmaxf(M, wm[w][g]);
		for (int w = 0; w < ATT_WARPS; w++)
		{
			c[w] = att_rescale(wm[w][g], M);
			L = __fmaf_rn(wl[w][g], c[w], L);
		}
		for (int d = threadIdx.x; d < p.hdv; d += blockDim.x)
		{
			float		a = 0.0f;

			for (int w = 0; w < ATT_WARPS; w++)
				a = __fmaf_rn(wacc[w][g][d], c[w], a);
			if (p.n_splits == 1)
				p.out[th * p.hdv + d] = a / L;
			else
				p.part[(th * p.n_splits + sp) * (p.hdv + 2) + d] = a;
		}
		if (p.n_splits > 1 && threadIdx.x == 0)
		{
			float	   *ml = p.part + (th * p.n_splits + sp) * (p.hdv + 2) + p.hdv;

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
	int			G = p->group >= 1 ? lmc_att_heads_per_block(p->group) : 1;
	dim3		grid((unsigned) p->n, (unsigned) (p->n_head / G), (unsigned) p->n_splits);

	if (!LMC_GRID_OK(p->n, p->n_head / G, p->n_splits) || p->n_splits > LMC_ATT_MAX_SPLITS ||
		p->hdk < 1 || p->hdk > LMC_MAX_HEAD_DIM || p->hdv < 1 || p->hdv > LMC_MAX_HEAD_DIM ||
		p->group < 1 || p->n_head % p->group != 0 || p->split < 1)
		return cudaErrorInvalidValue;
	switch (G)
	{
		case 4:
			att_kernel<4><<<grid, ATT_WARPS * 32, 0, s>>>(*p);
			break;
		case 3:
			att_kernel<3><<<grid, ATT_WARPS * 32, 0, s>>>(*p);
			break;
		case 2:
			att_kernel<2><<<grid, ATT_WARPS * 32, 0, s>>>(*p);
			break;
		default:
			att_kernel<1><<<grid, ATT_WARPS * 32, 0, s>>>(*p);
			break;
	}
	if (p->n_splits > 1)
	{
		cudaError_t e = cudaGetLastError();

		if (e != cudaSuccess)
			return e;
		att_merge_kernel<<<dim3((unsigned) p->n, (unsigned) p->n_head), 128, 0, s>>>(*p);
	}
	return cudaGetLastError();
}
