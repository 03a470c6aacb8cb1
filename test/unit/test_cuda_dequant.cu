/*
 * test_cuda_dequant.cu — the CUDA backend's dequantizers (cuda/dequant.cuh),
 * exponential and feed-forward gates (cuda/common.cuh) run on the CPU: they
 * are __host__ __device__ code, so the same source that the GPU runs is
 * checked here against quant.c's lm_dequantize_row, model_ops.c's
 * lm_op_expf and lm_op_swiglu_row, and model_gemma3.c's GELU table path,
 * bit for bit, without a GPU.  Random blocks of every format (scales finite),
 * then every weight tensor of the real models and stories260K files found.
 * Built only where nvcc is found (it compiles this file's host code).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.cuh"

/* quant.h is C11: its block-size checks read as C++'s static_assert here */
#define _Static_assert static_assert
extern "C"
{
#include "model.h"
#include "quant.h"

/* model_ops.c's exponential and SwiGLU (model_ops.h itself pulls in the context's C-only headers). */
extern float lm_op_expf(float x);
extern void lm_op_swiglu_row(float *g, const float *u, int n);
extern const uint16_t *lm_op_gelu_table(void);
}
#include "unit.h"

/* Dequantize a row of type T with the device code (on the host). */
template <int T>
struct host_row
{
	/* Every chunk of the row into out. */
	static void run(const uint8_t *row, int64_t n_cols, float *out)
	{
		for (int64_t c = 0; c * 32 < n_cols; c++)
		{
			float		v[32];

			lmc_deq32<T>(row, c, n_cols, v);
			for (int j = 0; j < 32 && c * 32 + j < n_cols; j++)
				out[c * 32 + j] = v[j];
		}
	}
};

/* Compare both dequantizers on n_rows rows; index of the first differing element, or -1. */
static int64_t
compare_rows(lm_type t, const uint8_t *data, int64_t n_rows, int64_t n_cols, size_t row_bytes)
{
	float	   *a = (float *) malloc(sizeof(float) * n_cols),
			   *b = (float *) malloc(sizeof(float) * n_cols);
	int64_t		bad = -1;

	for (int64_t r = 0; r < n_rows && bad < 0; r++)
	{
		const uint8_t *row = data + (size_t) r * row_bytes;

		lm_dequantize_row(t, row, a, n_cols);
		if (!lmc_dispatch_type<host_row>(t, row, n_cols, b))
		{
			bad = 0;
			break;
		}
		for (int64_t i = 0; i < n_cols; i++)
			if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
			{
				bad = r * n_cols + i;
				break;
			}
	}
	free(a);
	free(b);
	return bad;
}

/* A random finite fp16 of moderate size. */
static uint16_t
rand_half(void)
{
	float		f = ((float) rand() / RAND_MAX - 0.5f) * 0.1f;

	return lm_fp32_to_fp16(f);
}

/* Random blocks of every format, scales made finite. */
static void
test_random_blocks(void)
{
	static const lm_type types[] = {LM_TYPE_F32, LM_TYPE_F16, LM_TYPE_BF16, LM_TYPE_Q4_0, LM_TYPE_Q4_1,
		LM_TYPE_Q5_0, LM_TYPE_Q5_1, LM_TYPE_Q8_0, LM_TYPE_Q4_K, LM_TYPE_Q5_K, LM_TYPE_Q6_K};
	const int64_t n_cols = 512,
				n_rows = 64;

	srand(12345);
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
	{
		const lm_type_traits *tr = lm_type_traits_get(types[k]);
		size_t		row_bytes = (size_t) (n_cols / tr->block_size) * tr->type_size;
		uint8_t    *d = (uint8_t *) malloc(row_bytes * n_rows);
		int64_t		bad;

		for (size_t i = 0; i < row_bytes * n_rows; i++)
			d[i] = (uint8_t) rand();
		/* finite scales where the format has them */
		for (int64_t b = 0; b < (int64_t) (row_bytes * n_rows / tr->type_size); b++)
		{
			uint8_t    *blk = d + b * tr->type_size;
			uint16_t	h1 = rand_half(),
						h2 = rand_half();

			switch (types[k])
			{
				case LM_TYPE_F32:
					for (uint32_t e = 0; e < tr->type_size; e += 4)
					{
						float		f = ((float) rand() / RAND_MAX - 0.5f);

						memcpy(blk + e, &f, 4);
					}
					break;
				case LM_TYPE_F16:
				case LM_TYPE_BF16:
					memcpy(blk, &h1, 2);
					if (types[k] == LM_TYPE_BF16)
						blk[1] &= 0x3f;	/* exponent below the all-ones of inf/NaN */
					break;
				case LM_TYPE_Q6_K:
					memcpy(blk + 208, &h1, 2);
					break;
				case LM_TYPE_Q4_1:
				case LM_TYPE_Q5_1:
				case LM_TYPE_Q4_K:
				case LM_TYPE_Q5_K:
					memcpy(blk, &h1, 2);
					memcpy(blk + 2, &h2, 2);
					break;
				default:
					memcpy(blk, &h1, 2);
			}
		}
		bad = compare_rows(types[k], d, n_rows, n_cols, row_bytes);
		CHECK(bad < 0, "random %s blocks: the device dequantizer gives quant.c's floats (first difference at %lld)",
			  tr->name, (long long) bad);
		free(d);
	}
}

/* Rows whose length is not a multiple of 32 (F32/F16 tensors such as stories260K's ffn_down). */
static void
test_partial_chunks(void)
{
	float		row[172];
	uint16_t	hrow[172];

	for (int i = 0; i < 172; i++)
	{
		row[i] = (float) i * 0.25f - 3.0f;
		hrow[i] = lm_fp32_to_fp16(row[i]);
	}
	CHECK(compare_rows(LM_TYPE_F32, (const uint8_t *) row, 1, 172, sizeof(row)) < 0,
		  "an F32 row of 172 elements (last chunk partial) matches");
	CHECK(compare_rows(LM_TYPE_F16, (const uint8_t *) hrow, 1, 172, sizeof(hrow)) < 0,
		  "an F16 row of 172 elements matches");
}

/* Every weight tensor of one model file. */
static void
test_model_file(const char *path)
{
	char		err[256];
	lm_model   *m;
	int			n = 0,
				bad = 0;

	if (!unit_readable(path))
	{
		SKIP("%s not found", path);
		return;
	}
	m = lm_model_open(path, err, sizeof(err));
	CHECK(m != NULL, "%s opens (%s)", path, m ? "ok" : err);
	if (!m)
		return;
	for (int l = -1; l < m->cfg.n_layer; l++)
	{
		const lm_weight *ws[7];
		int			nw = 0;

		if (l < 0)
		{
			ws[nw++] = &m->tok_embd;
			if (m->output.data != m->tok_embd.data)
				ws[nw++] = &m->output;
		}
		else
		{
			const lm_layer_weights *L = &m->layers[l];

			ws[nw++] = &L->wq;
			ws[nw++] = &L->wk;
			ws[nw++] = &L->wv;
			ws[nw++] = &L->wo;
			ws[nw++] = &L->ffn_gate;
			ws[nw++] = &L->ffn_up;
			ws[nw++] = &L->ffn_down;
		}
		for (int j = 0; j < nw; j++, n++)
			if (compare_rows(ws[j]->type, (const uint8_t *) ws[j]->data, ws[j]->n_rows, ws[j]->n_cols,
							 ws[j]->row_bytes) >= 0)
			{
				if (!bad)
					printf("# first difference in a %s tensor of layer %d\n", lm_type_name(ws[j]->type), l);
				bad++;
			}
	}
	CHECK(bad == 0, "%s: all %d weight tensors dequantize to quant.c's floats (%d differ)", path, n, bad);
	lm_model_free(m);
}

/* lmc_expf against lm_op_expf over a sweep of inputs. */
static void
test_expf(void)
{
	int			bad = 0,
				n = 0;

	for (float x = -200.0f; x <= 100.0f; x += 0.0137f, n++)
	{
		float		a = lm_op_expf(x),
					b = lmc_expf(x);

		if (memcmp(&a, &b, sizeof a) != 0)
			bad++;
	}
	for (uint32_t u = 0; u < 0xffffffffu - 0x10000u; u += 0x10000u, n++)
	{
		float		x,
					a,
					b;

		memcpy(&x, &u, sizeof x);
		a = lm_op_expf(x);
		b = lmc_expf(x);
		if (memcmp(&a, &b, sizeof a) != 0 && !(isnan(a) && isnan(b)))
			bad++;
	}
	CHECK(bad == 0, "the device exponential equals lm_op_expf on %d inputs (%d differ)", n, bad);
}

/* SwiGLU and GEGLU elements against the engine. */
static void
test_gates(void)
{
	enum
	{
		N = 4099				/* not a multiple of 16: the libm tail is exercised */
	};
	static float g[N],
				u[N],
				ref[N];
	const uint16_t *table = lm_op_gelu_table();
	int			bad_swi = 0,
				bad_gelu = 0,
				bad_tail = 0;

	for (int i = 0; i < N; i++)
	{
		g[i] = ((float) i - N / 2) * 0.0071f;
		u[i] = 1.0f + (float) (i % 13) * 0.37f;
		ref[i] = g[i];
	}
	lm_op_swiglu_row(ref, u, N);
	for (int i = 0; i < N; i++)
	{
		float		d = lmc_swiglu1(g[i], u[i], i < (N & ~15));

		if (memcmp(&d, &ref[i], sizeof d) != 0)
			(i < (N & ~15) ? bad_swi : bad_tail)++;
	}
	CHECK(bad_swi == 0, "SwiGLU elements equal lm_op_swiglu_row's vector part (%d of %d differ)", bad_swi, N & ~15);
	CHECK(bad_tail == 0, "SwiGLU elements of the row's tail equal libm's (%d differ; the GPU's expf may differ here)",
		  bad_tail);
	for (int i = 0; i < N; i++)
	{
		float		x = ((float) i - N / 2) * 0.0067f,
					want = x <= -10.0f ? 0.0f : x >= 10.0f ? x * u[i] :
			lm_fp16_to_fp32(table[lm_fp32_to_fp16(x)]) * u[i],
					got = lmc_geglu1(x, u[i], table);

		if (memcmp(&want, &got, sizeof got) != 0)
			bad_gelu++;
	}
	CHECK(bad_gelu == 0, "GEGLU elements through the fp16 table equal model_gemma3.c's (%d of %d differ)", bad_gelu, N);
}

/* Run the checks. */
int
main(void)
{
	char		path[1024];
	static const char *const shared[] = {"stories260K.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf",
		"stories260K-Q4_K_M.gguf", "stories260K-Q6_K.gguf"};

	test_random_blocks();
	test_partial_chunks();
	test_expf();
	test_gates();
	snprintf(path, sizeof(path), "%s/default.gguf", unit_models_dir());
	test_model_file(path);
	snprintf(path, sizeof(path), "%s/gemma-3-270m-q4_k_m.gguf", unit_models_dir());
	test_model_file(path);
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
	{
		snprintf(path, sizeof(path), "%s/models/%s", unit_shared_dir(), shared[i]);
		test_model_file(path);
	}
	return unit_done();
}
