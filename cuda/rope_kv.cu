/*
 * rope_kv.cu — what happens to one layer's new queries and keys before the
 * attention, per token: gemma3's per-head RMSNorm of queries and keys, RoPE
 * (NORM pairs (2i, 2i+1) or NEOX pairs (i, i + n_rot/2)) with the cos/sin
 * of the token's position from the table the host made with the engine's
 * own lm_op_rope_angles, gemma3's query scale, and the store of the keys
 * and values into the token's KV block (kvcache.h's layout).
 *
 * Order and arithmetic follow model_gemma3.c's stage_qk and model_llama.c's
 * stage_rope_store: norm (lm_op_rmsnorm, the squares summed in double),
 * then rotation x0' = fma(x0, c, -(x1 s)), x1' = fma(x0, s, x1 c), then
 * q *= scale over every query element.  One block per token; its warps take
 * whole heads (query heads, then key heads), so each head's norm, rotation
 * and scale stay inside one warp.
 */
#include "common.cuh"

#include "kvcache.h"

/* Warps per token. */
#define QK_WARPS 4

/* Norm, RoPE and scale of one head of width hd in place, by one warp. */
__device__ __forceinline__ void
qk_head(float *hv, const float *norm, const float *cs, const lmc_qk_params &p, bool is_q)
{
	int			lane = threadIdx.x & 31,
				half = p.n_rot / 2;

	if (norm)
	{
		double		s = 0.0;
		float		sc;

		for (int d = lane; d < p.hdk; d += 32)
			s += (double) __fmul_rn(hv[d], hv[d]);
		s = lmc_warp_sum_d(s);
		sc = 1.0f / sqrtf(__fadd_rn((float) (s / p.hdk), p.eps));
		for (int d = lane; d < p.hdk; d += 32)
			hv[d] = __fmul_rn(__fmul_rn(hv[d], sc), norm[d]);
		__syncwarp();
	}
	for (int i = lane; i < half; i += 32)
	{
		int			i0 = p.neox ? i : 2 * i,
					i1 = p.neox ? i + half : 2 * i + 1;
		float		x0 = hv[i0],
					x1 = hv[i1],
					c = cs[2 * i],
					s = cs[2 * i + 1];

		hv[i0] = __fmaf_rn(x0, c, -__fmul_rn(x1, s));
		hv[i1] = __fmaf_rn(x0, s, __fmul_rn(x1, c));
	}
	if (is_q && p.scale_q)
	{
		__syncwarp();
		for (int d = lane; d < p.hdk; d += 32)
			hv[d] = __fmul_rn(hv[d], p.q_scale);
	}
	__syncwarp();
}

/* One token: its heads, then its keys and values into the cache. */
__global__ void
__launch_bounds__(QK_WARPS * 32)
qk_kernel(lmc_qk_params p)
{
	int			t = blockIdx.x,
				wid = threadIdx.x >> 5,
				pos = p.pos[t],
				kd = p.n_head_kv * p.hdk,
				vd = p.n_head_kv * p.hdv;
	float	   *q = p.q + (size_t) t * p.n_head * p.hdk,
			   *k = p.k + (size_t) t * kd;
	const float *v = p.v + (size_t) t * vd,
			   *cs = p.rope_cs + (size_t) pos * p.n_rot;
	float	   *blk,
			   *kdst,
			   *vdst;
	size_t		slot;

	for (int h = wid; h < p.n_head + p.n_head_kv; h += QK_WARPS)
	{
		if (h < p.n_head)
			qk_head(q + (size_t) h * p.hdk, p.q_norm, cs, p, true);
		else
			qk_head(k + (size_t) (h - p.n_head) * p.hdk, p.k_norm, cs, p, false);
	}
	__syncthreads();

	/* the block of (row, pos) and the position's rows of this layer in it */
	blk = (float *) p.table[(size_t) p.row[t] * p.mb + pos / LM_KV_BLOCK];
	slot = (size_t) p.layer * LM_KV_BLOCK + (size_t) (pos % LM_KV_BLOCK);
	kdst = blk + slot * kd;
	vdst = blk + p.v_off + slot * vd;
	for (int i = threadIdx.x; i < kd; i += blockDim.x)
		kdst[i] = k[i];
	for (int i = threadIdx.x; i < vd; i += blockDim.x)
		vdst[i] = v[i];
}

/* Q/K norms, RoPE, scale and KV store of p->n tokens. */
cudaError_t
lmc_qk_rope_store(cudaStream_t s, const lmc_qk_params *p)
{
	if (!LMC_GRID_OK(p->n, 1, 1) || p->n_rot < 0 || p->n_rot > p->hdk || (p->n_rot & 1))
		return cudaErrorInvalidValue;
	qk_kernel<<<p->n, QK_WARPS * 32, 0, s>>>(*p);
	return cudaGetLastError();
}
