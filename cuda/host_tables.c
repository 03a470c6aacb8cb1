/*
 * host_tables.c — tables the CUDA backend computes on the host with the
 * engine's own functions, so the device uses the very same floats as the
 * CPU: RoPE cos/sin per position (lm_op_rope_angles), gemma3's fp16 GELU
 * table, and the KV block size (kvcache.c).
 */
#include "lmgen_cuda.h"

#include <stdlib.h>

#include "context_impl.h"
#include "kvcache.h"
#include "model_ops.h"

/* Positions per call of lm_op_rope_angles while filling a table. */
#define ROPE_CHUNK 1024

/* cos/sin of positions 0..n_ctx-1 with RoPE base `base`, via the engine's lm_op_rope_angles. */
bool
lmc_rope_table(const lm_model *m, int n_ctx, float base, float *out)
{
	const lm_model_config *c = &m->cfg;
	int32_t    *pos = malloc(sizeof(int32_t) * ROPE_CHUNK);
	lm_batch	b = {0};
	lm_step		st;

	if (!pos)
		return false;
	b.pos = pos;
	st.batch = &b;
	st.i0 = 0;
	for (int p0 = 0; p0 < n_ctx; p0 += ROPE_CHUNK)
	{
		int			n = n_ctx - p0 < ROPE_CHUNK ? n_ctx - p0 : ROPE_CHUNK;

		for (int i = 0; i < n; i++)
			pos[i] = p0 + i;
		b.n_tokens = n;
		b.n_max = n;
		st.n = n;
		lm_op_rope_angles(out + (size_t) p0 * c->n_rot, &st, c->n_rot, base, c->rope_freq_scale, m->rope_freqs);
	}
	free(pos);
	return true;
}

/* gemma3's GELU table (model_gemma3.c). */
const uint16_t *
lmc_gelu_table(void)
{
	return lm_op_gelu_table();
}

/* kvcache.c's block size. */
size_t
lmc_kv_block_bytes(const lm_model *m)
{
	return lm_kv_block_bytes(m);
}
