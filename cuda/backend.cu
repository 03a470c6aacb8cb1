/*
 * backend.cu — the CUDA device backend: the lm_device_ops table that
 * lmgen_cuda.so exports (device.h), built from the kernels of the other
 * .cu files.
 *
 * Upload.  A model's tensors go to one device allocation (the "arena"):
 * every weight raw, as in the file (the decode path reads these), a dense
 * copy of every matrix in the GEMM mode's element type (F32, or BF16/FP16;
 * made on the device by the dequantize kernel), the F32 norm vectors, the
 * RoPE cos/sin tables of every position (computed on the host by the
 * engine's own lm_op_rope_angles, so the angles are the CPU's floats) and
 * gemma3's GELU table.  Then the scratch of one step of n_batch tokens,
 * pinned host staging, and last the KV pool: one allocation of whole
 * blocks, kv_fraction of what is then free (less a reserve of
 * LMC_RESERVE_BYTES for the runtime), capped at kv_bytes_max.
 *
 * Forward.  The batch is checked on the host (host_plan.c: every id,
 * position, row and block address) and its block table re-strided and
 * uploaded; then it runs in steps of at most n_batch tokens, each step
 * one upload of its int32 arrays and the layers in the order of
 * model_llama.c / model_gemma3.c: embeddings (gemma3: times sqrt(n_embd)),
 * the first attention norm, then per layer Q/K/V products, Q/K norms,
 * RoPE, query scale and the KV store, attention, the output product, the
 * (post-)norm and residual, the FFN products and gate, the down product,
 * its (post-)norm and residual with the next layer's norm.  Outputs: the
 * final norm of the rows that want outputs, copied to the caller's hidden
 * rows; for the logits rows, in chunks of LMC_LOGIT_CHUNK, the classifier,
 * the soft-cap where the CPU applies it, the argmax on the device, and the
 * copies to the caller.  Products over at most mv_max tokens take the fused
 * dequantize + matrix-vector kernel on the raw weights; larger ones cuBLAS
 * on the dense copies.
 *
 * Errors.  Every CUDA and cuBLAS call is checked; the message names the
 * call and the runtime's error string.  Errors CUDA makes sticky (a fault
 * in a kernel) mark the device unhealthy: forward then refuses, and the
 * owner closes the device (device.h).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.cuh"
#include "kvcache.h"

/* Device memory left free when the KV pool is sized (cuBLAS, the runtime, other models' growth). */
#define LMC_RESERVE_BYTES ((size_t) 256 << 20)

/* Bytes of the cuBLAS workspace set at open. */
#define LMC_BLAS_WORKSPACE ((size_t) 32 << 20)

/* Alignment of every sub-allocation of an arena. */
#define LMC_ALIGN 256

/* Op classes timed under LMGEN_CUDA_PROFILE. */
enum
{
	LMC_PROF_UPLOAD, LMC_PROF_EMBED, LMC_PROF_NORM, LMC_PROF_QKV, LMC_PROF_ROPE_KV, LMC_PROF_ATTN, LMC_PROF_WO,
	LMC_PROF_GATE_UP, LMC_PROF_ACT, LMC_PROF_DOWN, LMC_PROF_OUT_NORM, LMC_PROF_LOGITS, LMC_PROF_ARGMAX,
	LMC_PROF_COPY_OUT, LMC_PROF_N
};

/* Names of the op classes, in enum order. */
static const char *const prof_names[LMC_PROF_N] = {
	"upload ints", "embed", "residual+norm", "q/k/v products", "qk norm+rope+kv", "attention", "output product",
	"gate/up products", "swiglu/geglu", "down product", "final norm", "logits product", "argmax", "copies to host"
};

/* Event pairs per step at most (more ops go untimed). */
#define LMC_PROF_EVENTS 2048

/* Steps of at most this many tokens run as captured graphs (decode; prefill steps launch directly). */
#define LMC_GRAPH_MAX_TOKENS 512


/* An opened device. */
struct lm_device
{
	int			ordinal;		/* device number */
	cudaStream_t stream;		/* every kernel and copy runs on it */
	cublasHandle_t blas;		/* bound to stream */
	void	   *blas_ws;		/* cuBLAS workspace */
	bool		healthy;		/* false after a sticky error */
	char		name[128];		/* device name */
	int			cc_major;		/* compute capability */
	int			cc_minor;
	int			n_sm;			/* multiprocessors */
	size_t		used;			/* bytes allocated by us */
};

/* A weight on the device. */
typedef struct dweight
{
	const void *raw;			/* as in the file */
	void	   *dense;			/* (n_rows, n_cols) in the GEMM element type, NULL for vectors */
	lm_type		type;			/* raw type */
	int			n_rows;			/* rows */
	int			n_cols;			/* elements per row */
	size_t		row_bytes;		/* raw bytes per row */
} dweight;

/* One layer's tensors on the device. */
typedef struct dlayer
{
	const float *attn_norm;		/* (E) */
	const float *ffn_norm;		/* (E) */
	const float *q_norm;		/* (hdk) gemma3, else NULL */
	const float *k_norm;		/* (hdk) gemma3, else NULL */
	const float *post_attn;		/* (E) gemma3, else NULL */
	const float *post_ffn;		/* (E) gemma3, else NULL */
	dweight		wq,
				wk,
				wv,
				wo,
				gate,
				up,
				down;
} dlayer;

/* A model on a device. */
struct lm_device_model
{
	lm_device  *dev;			/* owner */
	lm_model_config cfg;		/* copy of the blueprint */
	bool		gemma;			/* gemma3 (else llama) */
	lmc_gemm_mode mode;			/* GEMM path's arithmetic */
	int			mv_max;			/* tokens at most on the matrix-vector path */
	char		describe[96];	/* "gemm f32, matvec <= 8 tokens, step graphs on" */

	void	   *arena;			/* weights, norms, tables */
	size_t		arena_bytes;
	dweight		tok_embd;		/* embeddings (raw used; dense when tied, for logits) */
	dweight		output;			/* classifier */
	const float *output_norm;	/* (E) */
	dlayer	   *layers;			/* (n_layer) host array of device pointers */
	const float *rope_cs[2];	/* (n_ctx, n_rot): [0] global base, [1] local (sliding-window) base */
	const uint16_t *gelu;		/* (65536) gemma3 */

	void	   *scratch;		/* one step's buffers */
	size_t		scratch_bytes;
	float	   *x,
			   *xb,
			   *xb2,
			   *q,
			   *k,
			   *v,
			   *att,
			   *hb,
			   *hb2,
			   *hid,
			   *lg_in,
			   *lg,
			   *part;
	void	   *act16;			/* half-precision GEMM inputs */
	int32_t    *d_ints;			/* a step's uploaded int32 arrays */
	uint64_t   *d_table;		/* (n_seq, mb) block table */
	int32_t    *d_argmax;		/* (LMC_LOGIT_CHUNK) */

	int32_t    *h_ints;			/* pinned: lmc_step_ints(n_batch) */
	uint64_t   *h_table;		/* pinned: (n_seq, mb) */
	int32_t    *h_argmax;		/* pinned: (LMC_LOGIT_CHUNK) */

	lmc_dims	dims;			/* sizes batches are checked against */
	size_t		v_off;			/* floats from a block's start to its values */
	void	   *pool;			/* KV blocks */
	size_t		pool_bytes;
	lmc_slots	slots;			/* free list of the pool */

	/* captured step graphs (LMGEN_CUDA_GRAPHS, on unless 0; off while profiling) */
	bool		graphs;
	lmc_graphs	graph;			/* cudaGraphExec_t handles, keys, uses (host_plan.c) */

	/* LMGEN_CUDA_PROFILE: device time per op class, from event pairs (debug_profile reports it) */
	bool		profile;
	cudaEvent_t *ev;			/* (2 * LMC_PROF_EVENTS) start/end pairs */
	int8_t		ev_class[LMC_PROF_EVENTS];
	int			n_ev;			/* pairs recorded in this step */
	double		prof_ms[LMC_PROF_N];
	int64_t		prof_calls[LMC_PROF_N];
	double		prof_wall_ms;	/* host time of the steps */
	int64_t		prof_steps;
};

/* Errors CUDA reports without poisoning the context. */
static bool
cuda_error_benign(cudaError_t e)
{
	return e == cudaErrorMemoryAllocation || e == cudaErrorInvalidValue || e == cudaErrorInvalidConfiguration ||
		e == cudaErrorInvalidDevice || e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver;
}

/* Write the message of a failed CUDA call; mark the device unhealthy for sticky errors. */
static void
cuda_fail(lm_device *dev, const char *call, cudaError_t e, char *err, size_t errlen)
{
	snprintf(err, errlen, "CUDA call %s failed: %s (%s)", call, cudaGetErrorString(e), cudaGetErrorName(e));
	if (!cuda_error_benign(e))
	{
		if (dev)
			dev->healthy = false;
	}
	else
		(void) cudaGetLastError();	/* clear a non-sticky error */
}

/* Write the message of a failed cuBLAS call; an execution failure or internal error poisons the device. */
static void
blas_fail(lm_device *dev, const char *call, cublasStatus_t s, char *err, size_t errlen)
{
	cudaError_t e = cudaGetLastError();

	snprintf(err, errlen, "cuBLAS call %s failed: %s%s%s", call, cublasGetStatusString(s),
			 e != cudaSuccess ? "; CUDA: " : "", e != cudaSuccess ? cudaGetErrorString(e) : "");
	if (dev && (s == CUBLAS_STATUS_EXECUTION_FAILED || s == CUBLAS_STATUS_INTERNAL_ERROR ||
				(e != cudaSuccess && !cuda_error_benign(e))))
		dev->healthy = false;
}

/* Check a CUDA call inside a function returning bool (dev, err, errlen in scope). */
#define CU(call) \
	do { \
		cudaError_t e_ = (call); \
		if (e_ != cudaSuccess) \
		{ \
			cuda_fail(dev, #call, e_, err, errlen); \
			return false; \
		} \
	} while (0)

/* Check a cuBLAS call inside a function returning bool. */
#define CB(call) \
	do { \
		cublasStatus_t s_ = (call); \
		if (s_ != CUBLAS_STATUS_SUCCESS) \
		{ \
			blas_fail(dev, #call, s_, err, errlen); \
			return false; \
		} \
	} while (0)

/* Devices visible (0 when none). */
static int
cuda_count(char *err, size_t errlen)
{
	int			n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e == cudaErrorNoDevice)
	{
		(void) cudaGetLastError();
		return 0;
	}
	if (e != cudaSuccess)
	{
		snprintf(err, errlen, "CUDA call cudaGetDeviceCount failed: %s (%s)", cudaGetErrorString(e),
				 cudaGetErrorName(e));
		(void) cudaGetLastError();
		return -1;
	}
	return n;
}

/* Body of cuda_open after dev is allocated; false with a message. */
static bool
open_device(lm_device *dev, int ordinal, char *err, size_t errlen)
{
	cudaDeviceProp prop;

	CU(cudaSetDevice(ordinal));
	CU(cudaGetDeviceProperties(&prop, ordinal));
	snprintf(dev->name, sizeof(dev->name), "%.*s", (int) sizeof(dev->name) - 1, prop.name);
	dev->cc_major = prop.major;
	dev->cc_minor = prop.minor;
	dev->n_sm = prop.multiProcessorCount;
	if (prop.major < 9)
	{
		snprintf(err, errlen, "GPU %d (%s) has compute capability %d.%d; lmgen_cuda.so is built for 9.0 and newer",
				 ordinal, prop.name, prop.major, prop.minor);
		return false;
	}
	CU(cudaStreamCreateWithFlags(&dev->stream, cudaStreamNonBlocking));
	CB(cublasCreate(&dev->blas));
	CB(cublasSetStream(dev->blas, dev->stream));
	CU(cudaMalloc(&dev->blas_ws, LMC_BLAS_WORKSPACE));
	dev->used += LMC_BLAS_WORKSPACE;
	CB(cublasSetWorkspace(dev->blas, dev->blas_ws, LMC_BLAS_WORKSPACE));
	return true;
}

/* Close a device. */
static void
cuda_close(lm_device *dev)
{
	if (!dev)
		return;
	(void) cudaSetDevice(dev->ordinal);
	if (dev->blas)
		(void) cublasDestroy(dev->blas);
	if (dev->blas_ws)
		(void) cudaFree(dev->blas_ws);
	if (dev->stream)
		(void) cudaStreamDestroy(dev->stream);
	(void) cudaGetLastError();
	free(dev);
}

/* Open device ordinal. */
static lm_device *
cuda_open(int ordinal, char *err, size_t errlen)
{
	int			n = cuda_count(err, errlen);
	lm_device  *dev;

	if (n < 0)
		return NULL;
	if (ordinal < 0 || ordinal >= n)
	{
		snprintf(err, errlen, "no CUDA device %d (this machine has %d)", ordinal, n);
		return NULL;
	}
	dev = (lm_device *) calloc(1, sizeof(*dev));
	if (!dev)
	{
		snprintf(err, errlen, "out of memory opening CUDA device %d", ordinal);
		return NULL;
	}
	dev->ordinal = ordinal;
	dev->healthy = true;
	if (!open_device(dev, ordinal, err, errlen))
	{
		cuda_close(dev);
		return NULL;
	}
	return dev;
}

/* Describe a device. */
static bool
cuda_info(lm_device *dev, lm_device_info *info, char *err, size_t errlen)
{
	size_t		fr = 0,
				tot = 0;

	memset(info, 0, sizeof(*info));
	CU(cudaSetDevice(dev->ordinal));
	CU(cudaMemGetInfo(&fr, &tot));
	snprintf(info->name, sizeof(info->name), "%s", dev->name);
	info->ordinal = dev->ordinal;
	info->cc_major = dev->cc_major;
	info->cc_minor = dev->cc_minor;
	info->mem_total = tot;
	info->mem_free = fr;
	info->mem_used_by_us = dev->used;
	return true;
}

/* False once a sticky error happened. */
static bool
cuda_healthy(lm_device *dev)
{
	return dev != NULL && dev->healthy;
}

/* A bump allocator over one device allocation; with base NULL it only measures. */
typedef struct arena
{
	char	   *base;			/* device memory, or NULL while measuring */
	size_t		off;			/* bytes taken */
} arena;

/* Take bytes from the arena (aligned); a dummy non-NULL pointer while measuring. */
static void *
arena_take(arena *a, size_t bytes)
{
	size_t		o = (a->off + LMC_ALIGN - 1) & ~(size_t) (LMC_ALIGN - 1);

	a->off = o + bytes;
	return a->base ? a->base + o : (void *) (uintptr_t) LMC_ALIGN;
}

/* Bytes per element of a GEMM element type (lmc_gemm_elem_type). */
static size_t
elem_bytes(int et)
{
	return et == 0 ? 4 : 2;
}

/* Place (and when uploading, copy and dequantize) one weight matrix; dense copies when dense. */
static bool
place_weight(lm_device *dev, lm_device_model *dm, arena *a, const lm_weight *w, bool dense, dweight *out,
			 char *err, size_t errlen)
{
	size_t		raw = (size_t) w->n_rows * w->row_bytes;
	int			et = lmc_gemm_elem_type(dm->mode);

	out->type = w->type;
	out->n_rows = (int) w->n_rows;
	out->n_cols = (int) w->n_cols;
	out->row_bytes = w->row_bytes;
	out->raw = arena_take(a, raw);
	out->dense = dense ? arena_take(a, (size_t) w->n_rows * w->n_cols * elem_bytes(et)) : NULL;
	if (!a->base)
		return true;
	CU(cudaMemcpyAsync((void *) out->raw, w->data, raw, cudaMemcpyHostToDevice, dev->stream));
	if (dense)
		CU(lmc_dequantize(dev->stream, w->type, out->raw, w->row_bytes, w->n_rows, w->n_cols, out->dense, et));
	return true;
}

/* Place (and copy) an F32 vector of n floats. */
static bool
place_vector(lm_device *dev, arena *a, const float *v, int n, const float **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!v)
		return true;
	*out = (const float *) arena_take(a, sizeof(float) * (size_t) n);
	if (a->base)
		CU(cudaMemcpyAsync((void *) *out, v, sizeof(float) * (size_t) n, cudaMemcpyHostToDevice, dev->stream));
	return true;
}

/* Place (and fill) a RoPE table of base `base`. */
static bool
place_rope(lm_device *dev, lm_device_model *dm, arena *a, const lm_model *m, float base, const float **out,
		   char *err, size_t errlen)
{
	size_t		n = (size_t) dm->dims.n_ctx * (size_t) (dm->cfg.n_rot > 0 ? dm->cfg.n_rot : 1);
	float	   *h;
	cudaError_t e;

	*out = (const float *) arena_take(a, sizeof(float) * n);
	if (!a->base)
		return true;
	h = (float *) malloc(sizeof(float) * n);
	if (!h)
	{
		snprintf(err, errlen, "out of memory making the RoPE table (%zu floats)", n);
		return false;
	}
	if (dm->cfg.n_rot > 0 && !lmc_rope_table(m, dm->dims.n_ctx, base, h))
	{
		free(h);
		snprintf(err, errlen, "out of memory making the RoPE table");
		return false;
	}
	e = cudaMemcpyAsync((void *) *out, h, sizeof(float) * n, cudaMemcpyHostToDevice, dev->stream);
	if (e == cudaSuccess)
		e = cudaStreamSynchronize(dev->stream);
	free(h);
	CU(e);
	return true;
}

/* Lay out every tensor of the model in the arena, copying when a->base is set. */
static bool
place_model(lm_device *dev, lm_device_model *dm, arena *a, const lm_model *m, char *err, size_t errlen)
{
	const lm_model_config *c = &dm->cfg;
	bool		tied = m->output.data == m->tok_embd.data;

	if (!place_weight(dev, dm, a, &m->tok_embd, tied, &dm->tok_embd, err, errlen))
		return false;
	if (tied)
		dm->output = dm->tok_embd;
	else if (!place_weight(dev, dm, a, &m->output, true, &dm->output, err, errlen))
		return false;
	if (!place_vector(dev, a, m->output_norm, c->n_embd, &dm->output_norm, err, errlen))
		return false;
	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];
		dlayer	   *D = &dm->layers[l];

		if (!place_vector(dev, a, L->attn_norm, c->n_embd, &D->attn_norm, err, errlen) ||
			!place_vector(dev, a, L->ffn_norm, c->n_embd, &D->ffn_norm, err, errlen) ||
			!place_weight(dev, dm, a, &L->wq, true, &D->wq, err, errlen) ||
			!place_weight(dev, dm, a, &L->wk, true, &D->wk, err, errlen) ||
			!place_weight(dev, dm, a, &L->wv, true, &D->wv, err, errlen) ||
			!place_weight(dev, dm, a, &L->wo, true, &D->wo, err, errlen) ||
			!place_weight(dev, dm, a, &L->ffn_gate, true, &D->gate, err, errlen) ||
			!place_weight(dev, dm, a, &L->ffn_up, true, &D->up, err, errlen) ||
			!place_weight(dev, dm, a, &L->ffn_down, true, &D->down, err, errlen))
			return false;
		if (dm->gemma &&
			(!place_vector(dev, a, L->attn_q_norm, c->head_dim_k, &D->q_norm, err, errlen) ||
			 !place_vector(dev, a, L->attn_k_norm, c->head_dim_k, &D->k_norm, err, errlen) ||
			 !place_vector(dev, a, L->attn_post_norm, c->n_embd, &D->post_attn, err, errlen) ||
			 !place_vector(dev, a, L->ffn_post_norm, c->n_embd, &D->post_ffn, err, errlen)))
			return false;
	}
	if (!place_rope(dev, dm, a, m, c->rope_freq_base, &dm->rope_cs[0], err, errlen))
		return false;
	dm->rope_cs[1] = dm->rope_cs[0];
	if (dm->gemma && c->swa_pattern > 0 &&
		!place_rope(dev, dm, a, m, c->rope_freq_base_swa, &dm->rope_cs[1], err, errlen))
		return false;
	if (dm->gemma)
	{
		dm->gelu = (const uint16_t *) arena_take(a, sizeof(uint16_t) * 65536);
		if (a->base)
			CU(cudaMemcpyAsync((void *) dm->gelu, lmc_gelu_table(), sizeof(uint16_t) * 65536, cudaMemcpyHostToDevice,
							   dev->stream));
	}
	return true;
}

/* Check that a weight has a device dequantizer and fits the kernels' int sizes. */
static bool
check_weight(const lm_weight *w, const char *what, int layer, char *err, size_t errlen)
{
	if (!lmc_type_supported(w->type))
		snprintf(err, errlen, "the CUDA backend has no kernel for %s weights (%s of layer %d)",
				 lm_type_name(w->type), what, layer);
	else if (w->n_rows < 1 || w->n_rows > INT32_MAX / 2 || w->n_cols < 1 || w->n_cols > INT32_MAX / 2)
		snprintf(err, errlen, "weight %s of layer %d has %lld x %lld elements, too large for the CUDA backend",
				 what, layer, (long long) w->n_rows, (long long) w->n_cols);
	else
		return true;
	return false;
}

/* Refuse models the kernels cannot run; false with a message. */
static bool
check_model(const lm_model *m, int n_batch, int n_seq, int n_ctx, double kv_fraction, char *err, size_t errlen)
{
	const lm_model_config *c = &m->cfg;

	if (c->encoder || (c->arch_id != LM_ARCH_LLAMA && c->arch_id != LM_ARCH_GEMMA3))
	{
		snprintf(err, errlen, "the CUDA backend runs llama and gemma3 models, not \"%s\"", c->arch);
		return false;
	}
	if (!(kv_fraction > 0.0 && kv_fraction <= 1.0))
	{
		snprintf(err, errlen, "KV cache fraction %g is not in (0, 1]", kv_fraction);
		return false;
	}
	if (n_batch < 1 || n_batch > 65536 || n_seq < 1 || n_seq > 65536 || n_ctx < 1 || n_ctx > (1 << 22))
	{
		snprintf(err, errlen, "device model sizes out of range: %d tokens per step, %d sequences, %d positions",
				 n_batch, n_seq, n_ctx);
		return false;
	}
	if (c->head_dim_k < 1 || c->head_dim_k > LMC_MAX_HEAD_DIM || c->head_dim_v < 1 ||
		c->head_dim_v > LMC_MAX_HEAD_DIM || c->n_head_kv < 1 || c->n_head % c->n_head_kv != 0 ||
		c->n_rot < 0 || c->n_rot > c->head_dim_k || (c->n_rot & 1) || c->n_head > 65535)
	{
		snprintf(err, errlen, "the CUDA backend needs head widths of at most %d, whole query groups and an even "
				 "rotation width (model: %d/%d heads, key width %d, value width %d, %d rotated)",
				 LMC_MAX_HEAD_DIM, c->n_head, c->n_head_kv, c->head_dim_k, c->head_dim_v, c->n_rot);
		return false;
	}
	if (!check_weight(&m->tok_embd, "token_embd", -1, err, errlen) ||
		!check_weight(&m->output, "output", -1, err, errlen) || !m->output_norm)
		return false;
	for (int l = 0; l < c->n_layer; l++)
	{
		const lm_layer_weights *L = &m->layers[l];

		if (!check_weight(&L->wq, "attn_q", l, err, errlen) || !check_weight(&L->wk, "attn_k", l, err, errlen) ||
			!check_weight(&L->wv, "attn_v", l, err, errlen) ||
			!check_weight(&L->wo, "attn_output", l, err, errlen) ||
			!check_weight(&L->ffn_gate, "ffn_gate", l, err, errlen) ||
			!check_weight(&L->ffn_up, "ffn_up", l, err, errlen) ||
			!check_weight(&L->ffn_down, "ffn_down", l, err, errlen))
			return false;
		if (!L->attn_norm || !L->ffn_norm ||
			(c->arch_id == LM_ARCH_GEMMA3 &&
			 (!L->attn_q_norm || !L->attn_k_norm || !L->attn_post_norm || !L->ffn_post_norm)))
		{
			snprintf(err, errlen, "layer %d lacks a norm vector", l);
			return false;
		}
	}
	return true;
}

/* Read the GEMM mode and matrix-vector limit from the environment. */
static bool
read_switches(lm_device_model *dm, char *err, size_t errlen)
{
	const char *g = getenv("LMGEN_CUDA_GEMM"),
			   *mv = getenv("LMGEN_CUDA_MATVEC_MAX");

	if (!lmc_gemm_mode_parse(g, &dm->mode))
	{
		snprintf(err, errlen, "LMGEN_CUDA_GEMM is \"%s\"; use f32, tf32, bf16 or f16", g);
		return false;
	}
	dm->mv_max = LMC_MATVEC_MAX_TOKENS;
	if (mv && *mv)
	{
		char	   *end;
		long		v = strtol(mv, &end, 10);

		if (*end || v < 0 || v > LMC_MATVEC_MAX_TOKENS)
		{
			snprintf(err, errlen, "LMGEN_CUDA_MATVEC_MAX is \"%s\"; use 0 to %d", mv, LMC_MATVEC_MAX_TOKENS);
			return false;
		}
		dm->mv_max = (int) v;
	}
	{
		const char *pr = getenv("LMGEN_CUDA_PROFILE"),
				   *gr = getenv("LMGEN_CUDA_GRAPHS");

		dm->profile = pr && *pr && strcmp(pr, "0") != 0;
		dm->graphs = !(gr && strcmp(gr, "0") == 0);
	}
	snprintf(dm->describe, sizeof(dm->describe), "gemm %s, matvec <= %d tokens, step graphs %s",
			 lmc_gemm_mode_name(dm->mode), dm->mv_max, dm->graphs ? "on" : "off");
	return true;
}

/* Allocate the scratch of one step and the pinned staging. */
static bool
make_scratch(lm_device *dev, lm_device_model *dm, char *err, size_t errlen)
{
	const lm_model_config *c = &dm->cfg;
	size_t		NB = (size_t) dm->dims.n_batch,
				E = (size_t) c->n_embd,
				qd = (size_t) c->n_head * c->head_dim_k,
				kd = (size_t) c->n_head_kv * c->head_dim_k,
				vd = (size_t) c->n_head_kv * c->head_dim_v,
				ad = (size_t) c->n_head * c->head_dim_v,
				F = (size_t) c->n_ff,
				V = (size_t) c->n_vocab,
				LG = LMC_LOGIT_CHUNK,
				wide = E > ad ? E : ad,
				rows16 = NB > LG ? NB : LG,
				tbl = (size_t) dm->dims.n_seq * dm->dims.mb;
	arena		a = {NULL, 0};

	if (F > wide)
		wide = F;
	for (int pass = 0; pass < 2; pass++)
	{
		dm->x = (float *) arena_take(&a, sizeof(float) * NB * E);
		dm->xb = (float *) arena_take(&a, sizeof(float) * NB * E);
		dm->xb2 = (float *) arena_take(&a, sizeof(float) * NB * E);
		dm->q = (float *) arena_take(&a, sizeof(float) * NB * qd);
		dm->k = (float *) arena_take(&a, sizeof(float) * NB * kd);
		dm->v = (float *) arena_take(&a, sizeof(float) * NB * vd);
		dm->att = (float *) arena_take(&a, sizeof(float) * NB * ad);
		dm->hb = (float *) arena_take(&a, sizeof(float) * NB * F);
		dm->hb2 = (float *) arena_take(&a, sizeof(float) * NB * F);
		dm->hid = (float *) arena_take(&a, sizeof(float) * NB * E);
		dm->lg_in = (float *) arena_take(&a, sizeof(float) * LG * E);
		dm->lg = (float *) arena_take(&a, sizeof(float) * LG * V);
		dm->part = (float *) arena_take(&a, sizeof(float) * NB * c->n_head * LMC_ATT_MAX_SPLITS *
										 (size_t) (c->head_dim_v + 2));
		dm->act16 = dm->mode == LMC_GEMM_BF16 || dm->mode == LMC_GEMM_F16 ?
			arena_take(&a, 2 * rows16 * wide) : NULL;
		dm->d_ints = (int32_t *) arena_take(&a, sizeof(int32_t) * lmc_step_upload_ints((int) NB));
		dm->d_table = (uint64_t *) arena_take(&a, sizeof(uint64_t) * tbl);
		dm->d_argmax = (int32_t *) arena_take(&a, sizeof(int32_t) * LG);
		if (pass == 0)
		{
			dm->scratch_bytes = a.off;
			CU(cudaMalloc(&dm->scratch, dm->scratch_bytes));
			dev->used += dm->scratch_bytes;
			a.base = (char *) dm->scratch;
			a.off = 0;
		}
	}
	CU(cudaMallocHost((void **) &dm->h_ints, sizeof(int32_t) * lmc_step_ints((int) NB)));
	CU(cudaMallocHost((void **) &dm->h_table, sizeof(uint64_t) * tbl));
	CU(cudaMallocHost((void **) &dm->h_argmax, sizeof(int32_t) * LG));
	if (dm->profile)
	{
		dm->ev = (cudaEvent_t *) calloc(2 * LMC_PROF_EVENTS, sizeof(cudaEvent_t));
		if (!dm->ev)
		{
			snprintf(err, errlen, "out of memory for the profile's events");
			return false;
		}
		for (int i = 0; i < 2 * LMC_PROF_EVENTS; i++)
			CU(cudaEventCreate(&dm->ev[i]));
	}
	return true;
}

/* Create the KV pool from what is free now. */
static bool
make_pool(lm_device *dev, lm_device_model *dm, double kv_fraction, size_t kv_bytes_max, char *err, size_t errlen)
{
	size_t		fr = 0,
				tot = 0,
				want;
	int64_t		n;

	CU(cudaMemGetInfo(&fr, &tot));
	want = fr > LMC_RESERVE_BYTES ? (size_t) ((double) (fr - LMC_RESERVE_BYTES) * kv_fraction) : 0;
	if (kv_bytes_max > 0 && want > kv_bytes_max)
		want = kv_bytes_max;
	n = (int64_t) (want / dm->dims.block_bytes);
	if (n < 1)
	{
		snprintf(err, errlen, "no device memory left for the KV cache: %zu MB free after the weights, a block needs %zu kB",
				 fr >> 20, dm->dims.block_bytes >> 10);
		return false;
	}
	dm->pool_bytes = (size_t) n * dm->dims.block_bytes;
	CU(cudaMalloc(&dm->pool, dm->pool_bytes));
	dev->used += dm->pool_bytes;
	if (!lmc_slots_init(&dm->slots, n))
	{
		snprintf(err, errlen, "out of memory for the free list of %lld KV blocks", (long long) n);
		return false;
	}
	dm->dims.pool_base = (uint64_t) (uintptr_t) dm->pool;
	dm->dims.n_blocks = n;
	return true;
}

/* Free a model's device and host memory. */
static void
cuda_unload(lm_device_model *dm)
{
	lm_device  *dev;

	if (!dm)
		return;
	dev = dm->dev;
	(void) cudaSetDevice(dev->ordinal);
	(void) cudaStreamSynchronize(dev->stream);
	if (dm->arena)
	{
		(void) cudaFree(dm->arena);
		dev->used -= dm->arena_bytes;
	}
	if (dm->scratch)
	{
		(void) cudaFree(dm->scratch);
		dev->used -= dm->scratch_bytes;
	}
	if (dm->pool)
	{
		(void) cudaFree(dm->pool);
		dev->used -= dm->pool_bytes;
	}
	if (dm->h_ints)
		(void) cudaFreeHost(dm->h_ints);
	if (dm->h_table)
		(void) cudaFreeHost(dm->h_table);
	if (dm->h_argmax)
		(void) cudaFreeHost(dm->h_argmax);
	lmc_slots_destroy(&dm->slots);
	for (int i = 0; i < LMC_GRAPHS; i++)
		if (dm->graph.exec[i])
			(void) cudaGraphExecDestroy((cudaGraphExec_t) dm->graph.exec[i]);
	if (dm->ev)
	{
		for (int i = 0; i < 2 * LMC_PROF_EVENTS; i++)
			if (dm->ev[i])
				(void) cudaEventDestroy(dm->ev[i]);
		free(dm->ev);
	}
	(void) cudaGetLastError();
	free(dm->layers);
	free(dm);
}

/* Body of cuda_upload once dm exists; false with a message. */
static bool
upload_model(lm_device *dev, lm_device_model *dm, const lm_model *m, double kv_fraction, size_t kv_bytes_max,
			 char *err, size_t errlen)
{
	arena		a = {NULL, 0};

	CU(cudaSetDevice(dev->ordinal));
	if (!read_switches(dm, err, errlen))
		return false;
	CU(lmc_matvec_prepare());
	/* measure, allocate, then copy and dequantize */
	if (!place_model(dev, dm, &a, m, err, errlen))
		return false;
	dm->arena_bytes = a.off;
	CU(cudaMalloc(&dm->arena, dm->arena_bytes));
	dev->used += dm->arena_bytes;
	a.base = (char *) dm->arena;
	a.off = 0;
	if (!place_model(dev, dm, &a, m, err, errlen))
		return false;
	CU(cudaStreamSynchronize(dev->stream));
	if (!make_scratch(dev, dm, err, errlen))
		return false;
	return make_pool(dev, dm, kv_fraction, kv_bytes_max, err, errlen);
}

/* Upload a model, make its scratch and KV pool. */
static lm_device_model *
cuda_upload(lm_device *dev, const lm_model *m, double kv_fraction, size_t kv_bytes_max, int n_batch, int n_seq,
			int n_ctx, char *err, size_t errlen)
{
	lm_device_model *dm;

	if (!dev || !dev->healthy)
	{
		snprintf(err, errlen, "the CUDA device is not usable after an earlier error");
		return NULL;
	}
	if (!check_model(m, n_batch, n_seq, n_ctx, kv_fraction, err, errlen))
		return NULL;
	dm = (lm_device_model *) calloc(1, sizeof(*dm));
	if (dm)
		dm->layers = (dlayer *) calloc((size_t) m->cfg.n_layer, sizeof(dlayer));
	if (!dm || !dm->layers)
	{
		free(dm);
		snprintf(err, errlen, "out of memory uploading a model");
		return NULL;
	}
	dm->dev = dev;
	dm->cfg = m->cfg;
	dm->gemma = m->cfg.arch_id == LM_ARCH_GEMMA3;
	dm->dims.n_vocab = m->cfg.n_vocab;
	dm->dims.n_ctx = n_ctx;
	dm->dims.n_seq = n_seq;
	dm->dims.n_batch = n_batch;
	dm->dims.mb = (n_ctx + LM_KV_BLOCK - 1) / LM_KV_BLOCK;
	dm->dims.block_bytes = lmc_kv_block_bytes(m);
	dm->v_off = (size_t) m->cfg.n_layer * LM_KV_BLOCK * (size_t) m->cfg.n_head_kv * m->cfg.head_dim_k;
	if (dm->dims.block_bytes == 0 ||
		dm->dims.block_bytes < (dm->v_off + (size_t) m->cfg.n_layer * LM_KV_BLOCK * m->cfg.n_head_kv *
								m->cfg.head_dim_v) * sizeof(float))
	{
		snprintf(err, errlen, "the model's KV block size does not match its shape");
		cuda_unload(dm);
		return NULL;
	}
	if (!upload_model(dev, dm, m, kv_fraction, kv_bytes_max, err, errlen))
	{
		cuda_unload(dm);
		return NULL;
	}
	return dm;
}

/* Blocks in the pool. */
static int64_t
cuda_kv_blocks(const lm_device_model *dm)
{
	return dm->dims.n_blocks;
}

/* Take a block. */
static uint64_t
cuda_kv_alloc(lm_device_model *dm)
{
	int64_t		i = lmc_slots_take(&dm->slots);

	return i < 0 ? 0 : dm->dims.pool_base + (uint64_t) i * dm->dims.block_bytes;
}

/* Give a block back (addresses that are not taken blocks are ignored). */
static void
cuda_kv_free(lm_device_model *dm, uint64_t block)
{
	(void) lmc_slots_give(&dm->slots, lmc_pool_slot(dm->dims.pool_base, dm->dims.block_bytes, dm->dims.n_blocks, block));
}

/* Copy one block (ordered before the next forward on the device's stream). */
static bool
cuda_kv_copy(lm_device_model *dm, uint64_t dst, uint64_t src, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;

	if (lmc_pool_slot(dm->dims.pool_base, dm->dims.block_bytes, dm->dims.n_blocks, dst) < 0 ||
		lmc_pool_slot(dm->dims.pool_base, dm->dims.block_bytes, dm->dims.n_blocks, src) < 0)
	{
		snprintf(err, errlen, "KV block copy between addresses outside the pool");
		return false;
	}
	if (dst == src)
		return true;
	CU(cudaSetDevice(dev->ordinal));
	CU(cudaMemcpyAsync((void *) (uintptr_t) dst, (const void *) (uintptr_t) src, dm->dims.block_bytes,
					   cudaMemcpyDeviceToDevice, dev->stream));
	return true;
}

/* Start timing an op of class cls on the stream; the pair's index, or -1 when not profiling. */
static int
prof_begin(lm_device_model *dm, int cls)
{
	int			i = dm->n_ev;

	if (!dm->profile || i >= LMC_PROF_EVENTS || cudaEventRecord(dm->ev[2 * i], dm->dev->stream) != cudaSuccess)
		return -1;
	dm->ev_class[i] = (int8_t) cls;
	return i;
}

/* End the op timed by pair i (from prof_begin). */
static void
prof_end(lm_device_model *dm, int i)
{
	if (i < 0)
		return;
	if (cudaEventRecord(dm->ev[2 * i + 1], dm->dev->stream) == cudaSuccess)
		dm->n_ev = i + 1;
	else
		(void) cudaGetLastError();
}

/* After a synchronised step: add its event pairs and host time to the totals. */
static void
prof_collect(lm_device_model *dm, double wall_ms)
{
	if (!dm->profile)
		return;
	for (int i = 0; i < dm->n_ev; i++)
	{
		float		ms = 0.0f;

		if (cudaEventElapsedTime(&ms, dm->ev[2 * i], dm->ev[2 * i + 1]) == cudaSuccess)
		{
			dm->prof_ms[dm->ev_class[i]] += ms;
			dm->prof_calls[dm->ev_class[i]]++;
		}
		else
			(void) cudaGetLastError();
	}
	dm->n_ev = 0;
	dm->prof_wall_ms += wall_ms;
	dm->prof_steps++;
}

/* Milliseconds on the host's monotonic clock. */
static double
host_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec * 1e-6;
}

/* y (n x w->n_rows) = W x (n x w->n_cols): matrix-vector on raw weights for few tokens, else GEMM. */
static bool
matmul(lm_device_model *dm, const dweight *w, const float *x, int n, float *y, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	const void *in = x;

	if (lmc_use_matvec(n, dm->mv_max))
	{
		CU(lmc_matvec(dev->stream, w->type, w->raw, w->row_bytes, w->n_rows, w->n_cols, x, w->n_cols, y,
					  w->n_rows, n));
		return true;
	}
	if (dm->mode == LMC_GEMM_BF16 || dm->mode == LMC_GEMM_F16)
	{
		CU(lmc_to_half(dev->stream, x, dm->act16, (int64_t) n * w->n_cols, dm->mode == LMC_GEMM_BF16));
		in = dm->act16;
	}
	CB(lmc_gemm(dev->blas, dm->mode, w->dense, w->n_rows, w->n_cols, in, n, y, w->n_rows));
	return true;
}

/* True when layer il of a gemma3 model uses the sliding window (model_gemma3.c's layer_is_local). */
static bool
layer_is_local(const lm_model_config *c, int il)
{
	return c->swa_pattern > 0 && il % c->swa_pattern < c->swa_pattern - 1;
}

/* The attention's split of a step's positions on global (local false) or windowed layers. */
static void
att_split_of(const lm_device_model *dm, const lmc_step *st, bool local, int *split, int *n_splits)
{
	const lm_model_config *c = &dm->cfg;

	lmc_att_split(local ? st->vis_max_swa : st->vis_max, st->n, c->n_head / lmc_att_heads_per_block(c->n_head / c->n_head_kv),
				  dm->dev->n_sm, split, n_splits);
}

/* One transformer layer over the step's tokens. */
static bool
run_layer(lm_device_model *dm, const lmc_step *st, int l, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	const lm_model_config *c = &dm->cfg;
	const dlayer *L = &dm->layers[l];
	int			n = st->n;
	bool		local = dm->gemma && layer_is_local(c, l);
	const int32_t *pos_d = dm->d_ints + dm->dims.n_batch,
			   *row_d = dm->d_ints + 2 * (size_t) dm->dims.n_batch;
	const float *pre = l + 1 < c->n_layer ? dm->layers[l + 1].attn_norm : NULL;
	lmc_qk_params qk;
	lmc_att_params at;
	int			pi;

	/* Q, K, V projections */
	pi = prof_begin(dm, LMC_PROF_QKV);
	if (!matmul(dm, &L->wq, dm->xb, n, dm->q, err, errlen) || !matmul(dm, &L->wk, dm->xb, n, dm->k, err, errlen) ||
		!matmul(dm, &L->wv, dm->xb, n, dm->v, err, errlen))
		return false;
	prof_end(dm, pi);

	/* (gemma3: Q/K norms,) RoPE, (query scale,) keys and values into the cache */
	memset(&qk, 0, sizeof(qk));
	qk.q = dm->q;
	qk.k = dm->k;
	qk.v = dm->v;
	qk.pos = pos_d;
	qk.row = row_d;
	qk.table = dm->d_table;
	qk.mb = dm->dims.mb;
	qk.rope_cs = dm->rope_cs[local ? 1 : 0];
	qk.q_norm = L->q_norm;
	qk.k_norm = L->k_norm;
	qk.eps = c->rms_eps;
	qk.q_scale = c->attn_q_scale;
	qk.scale_q = dm->gemma;
	qk.n = n;
	qk.n_head = c->n_head;
	qk.n_head_kv = c->n_head_kv;
	qk.hdk = c->head_dim_k;
	qk.hdv = c->head_dim_v;
	qk.n_rot = c->n_rot;
	qk.neox = c->rope_type == LM_ROPE_NEOX;
	qk.layer = l;
	qk.v_off = dm->v_off;
	pi = prof_begin(dm, LMC_PROF_ROPE_KV);
	CU(lmc_qk_rope_store(dev->stream, &qk));
	prof_end(dm, pi);

	/* causal attention (windowed on gemma3's local layers) */
	memset(&at, 0, sizeof(at));
	at.q = dm->q;
	at.out = dm->att;
	at.part = dm->part;
	at.pos = pos_d;
	at.row = row_d;
	at.table = dm->d_table;
	at.mb = dm->dims.mb;
	at.n = n;
	at.n_head = c->n_head;
	at.group = c->n_head / c->n_head_kv;
	at.hdk = c->head_dim_k;
	at.hdv = c->head_dim_v;
	at.layer = l;
	at.v_off = dm->v_off;
	at.scale = dm->gemma ? 1.0f : 1.0f / sqrtf((float) c->head_dim_k);
	at.n_swa = local ? c->n_swa : 0;
	att_split_of(dm, st, local, &at.split, &at.n_splits);
	pi = prof_begin(dm, LMC_PROF_ATTN);
	CU(lmc_attention(dev->stream, &at));
	prof_end(dm, pi);

	/* output projection; (gemma3: post-attention norm,) residual, FFN norm */
	pi = prof_begin(dm, LMC_PROF_WO);
	if (!matmul(dm, &L->wo, dm->att, n, dm->xb2, err, errlen))
		return false;
	prof_end(dm, pi);
	pi = prof_begin(dm, LMC_PROF_NORM);
	CU(lmc_residual_norm(dev->stream, dm->x, dm->xb2, dm->xb, L->post_attn, L->ffn_norm, true, n, c->n_embd,
						 c->rms_eps));
	prof_end(dm, pi);

	/* gate and up projections, SwiGLU or GEGLU */
	pi = prof_begin(dm, LMC_PROF_GATE_UP);
	if (!matmul(dm, &L->gate, dm->xb, n, dm->hb, err, errlen) || !matmul(dm, &L->up, dm->xb, n, dm->hb2, err, errlen))
		return false;
	prof_end(dm, pi);
	pi = prof_begin(dm, LMC_PROF_ACT);
	if (dm->gemma)
		CU(lmc_geglu(dev->stream, dm->hb, dm->hb2, dm->gelu, (int64_t) n * c->n_ff));
	else
		CU(lmc_swiglu(dev->stream, dm->hb, dm->hb2, n, c->n_ff));
	prof_end(dm, pi);

	/* down projection; (gemma3: post-FFN norm,) residual, next layer's attention norm */
	pi = prof_begin(dm, LMC_PROF_DOWN);
	if (!matmul(dm, &L->down, dm->hb, n, dm->xb2, err, errlen))
		return false;
	prof_end(dm, pi);
	pi = prof_begin(dm, LMC_PROF_NORM);
	CU(lmc_residual_norm(dev->stream, dm->x, dm->xb2, dm->xb, L->post_ffn, pre, true, n, c->n_embd, c->rms_eps));
	prof_end(dm, pi);
	return true;
}

/* Copy n rows of `width` floats from src (device, consecutive) to dst + rows[k] * width (host), in runs. */
static bool
copy_rows_out(lm_device *dev, float *dst, const float *src, const int32_t *rows, int n, size_t width,
			  char *err, size_t errlen)
{
	for (int k = 0; k < n;)
	{
		int			run = 1;

		while (k + run < n && rows[k + run] == rows[k] + run)
			run++;
		CU(cudaMemcpyAsync(dst + (size_t) rows[k] * width, src + (size_t) k * width, sizeof(float) * width * run,
						   cudaMemcpyDeviceToHost, dev->stream));
		k += run;
	}
	return true;
}

/* Final norm, logits, argmax of the step's output rows, copied to the batch's buffers. */
static bool
run_outputs(lm_device_model *dm, const lmc_step *st, const lm_device_batch *b, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	const lm_model_config *c = &dm->cfg;
	const int32_t *out_tok_d = dm->d_ints + 3 * (size_t) dm->dims.n_batch,
			   *lg_hid_d = dm->d_ints + 4 * (size_t) dm->dims.n_batch;
	float		cap = dm->gemma && c->swa_pattern == 0 ? c->final_logit_softcap : 0.0f;
	size_t		E = (size_t) c->n_embd,
				V = (size_t) c->n_vocab;
	int			pi;

	if (st->n_out == 0)
		return true;
	pi = prof_begin(dm, LMC_PROF_OUT_NORM);
	CU(lmc_gather_norm(dev->stream, dm->x, out_tok_d, dm->hid, dm->output_norm, st->n_out, c->n_embd, c->rms_eps));
	prof_end(dm, pi);
	pi = prof_begin(dm, LMC_PROF_COPY_OUT);
	if (!copy_rows_out(dev, b->hidden, dm->hid, st->out_dst, st->n_out, E, err, errlen))
		return false;
	prof_end(dm, pi);
	for (int c0 = 0; c0 < st->n_lg; c0 += LMC_LOGIT_CHUNK)
	{
		int			nc = st->n_lg - c0 < LMC_LOGIT_CHUNK ? st->n_lg - c0 : LMC_LOGIT_CHUNK;

		pi = prof_begin(dm, LMC_PROF_LOGITS);
		CU(lmc_gather_rows(dev->stream, dm->hid, lg_hid_d + c0, dm->lg_in, nc, c->n_embd));
		if (!matmul(dm, &dm->output, dm->lg_in, nc, dm->lg, err, errlen))
			return false;
		if (cap > 0.0f)
			CU(lmc_softcap(dev->stream, dm->lg, (int64_t) nc * c->n_vocab, cap));
		prof_end(dm, pi);
		pi = prof_begin(dm, LMC_PROF_ARGMAX);
		CU(lmc_argmax(dev->stream, dm->lg, nc, c->n_vocab, dm->d_argmax));
		prof_end(dm, pi);
		pi = prof_begin(dm, LMC_PROF_COPY_OUT);
		if (!copy_rows_out(dev, b->logits, dm->lg, st->lg_dst + c0, nc, V, err, errlen))
			return false;
		CU(cudaMemcpyAsync(dm->h_argmax, dm->d_argmax, sizeof(int32_t) * nc, cudaMemcpyDeviceToHost, dev->stream));
		prof_end(dm, pi);
		CU(cudaStreamSynchronize(dev->stream));
		for (int k = 0; k < nc; k++)
			b->argmax[st->lg_dst[c0 + k]] = dm->h_argmax[k];
	}
	return true;
}

/* Embeddings, the first norm and every layer of a step (launches only: capturable in a graph). */
static bool
run_layers(lm_device_model *dm, const lmc_step *st, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	const lm_model_config *c = &dm->cfg;
	int			pi;

	/* token embeddings (gemma3: times sqrt(n_embd)), the first layer's attention norm */
	pi = prof_begin(dm, LMC_PROF_EMBED);
	CU(lmc_embed(dev->stream, dm->tok_embd.type, dm->tok_embd.raw, dm->tok_embd.row_bytes, c->n_embd, dm->d_ints,
				 st->n, dm->x, dm->gemma, sqrtf((float) c->n_embd)));
	prof_end(dm, pi);
	pi = prof_begin(dm, LMC_PROF_NORM);
	CU(lmc_residual_norm(dev->stream, dm->x, dm->xb2, dm->xb, NULL, dm->layers[0].attn_norm, false, st->n,
						 c->n_embd, c->rms_eps));
	prof_end(dm, pi);
	for (int l = 0; l < c->n_layer; l++)
		if (!run_layer(dm, st, l, err, errlen))
			return false;
	return true;
}

/* Capture run_layers for st into a new graph instance; NULL with a message. */
static cudaGraphExec_t
capture_step(lm_device_model *dm, const lmc_step *st, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	cudaGraph_t g = NULL;
	cudaGraphExec_t exec = NULL;
	cudaError_t e = cudaStreamBeginCapture(dev->stream, cudaStreamCaptureModeThreadLocal);
	bool		ok;

	if (e != cudaSuccess)
	{
		cuda_fail(dev, "cudaStreamBeginCapture", e, err, errlen);
		return NULL;
	}
	ok = run_layers(dm, st, err, errlen);
	/* always end the capture: the stream must leave capture mode whatever happened */
	e = cudaStreamEndCapture(dev->stream, &g);
	if (ok && e != cudaSuccess)
	{
		cuda_fail(dev, "cudaStreamEndCapture", e, err, errlen);
		ok = false;
	}
	if (ok && (e = cudaGraphInstantiate(&exec, g, 0)) != cudaSuccess)
	{
		cuda_fail(dev, "cudaGraphInstantiate", e, err, errlen);
		exec = NULL;
	}
	if (g)
		(void) cudaGraphDestroy(g);
	return ok ? exec : NULL;
}

/* Run a step's layers from the graph captured for its key, or directly (lmc_graphs_lookup decides). */
static bool
run_graph(lm_device_model *dm, const lmc_step *st, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	lmc_graph_key key;
	bool		capture;
	int			i;

	memset(&key, 0, sizeof(key));
	key.n = st->n;
	att_split_of(dm, st, false, &key.split[0], &key.n_splits[0]);
	att_split_of(dm, st, true, &key.split[1], &key.n_splits[1]);
	i = lmc_graphs_lookup(&dm->graph, &key, &capture);
	if (i < 0 && !capture)
		return run_layers(dm, st, err, errlen);
	if (i < 0)
	{
		cudaGraphExec_t exec = capture_step(dm, st, err, errlen);

		if (!exec)
			return false;
		i = lmc_graphs_victim(&dm->graph);
		if (dm->graph.exec[i])
			(void) cudaGraphExecDestroy((cudaGraphExec_t) dm->graph.exec[i]);
		lmc_graphs_store(&dm->graph, i, &key, exec);
	}
	CU(cudaGraphLaunch((cudaGraphExec_t) dm->graph.exec[i], dev->stream));
	return true;
}

/* Run one step (tokens [i0, i0+n)) of a checked batch whose table is on the device. */
static bool
run_step(lm_device_model *dm, const lm_device_batch *b, int i0, int n, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	const lm_model_config *c = &dm->cfg;
	lmc_step	st;
	double		t0 = dm->profile ? host_ms() : 0.0;
	int			pi;

	lmc_step_fill(&st, dm->h_ints, dm->dims.n_batch, b, i0, n, dm->gemma ? c->n_swa : 0);
	pi = prof_begin(dm, LMC_PROF_UPLOAD);
	CU(cudaMemcpyAsync(dm->d_ints, dm->h_ints, sizeof(int32_t) * lmc_step_upload_ints(dm->dims.n_batch),
					   cudaMemcpyHostToDevice, dev->stream));
	prof_end(dm, pi);
	if (dm->graphs && !dm->profile && n <= LMC_GRAPH_MAX_TOKENS)
	{
		if (!run_graph(dm, &st, err, errlen))
			return false;
	}
	else if (!run_layers(dm, &st, err, errlen))
		return false;
	if (!run_outputs(dm, &st, b, err, errlen))
		return false;
	/* the step's staging (h_ints) is reused by the next step */
	CU(cudaStreamSynchronize(dev->stream));
	prof_collect(dm, dm->profile ? host_ms() - t0 : 0.0);
	return true;
}

/* Run a forward pass. */
static int
cuda_forward(lm_device_model *dm, const lm_device_batch *b, char *err, size_t errlen)
{
	lm_device  *dev = dm->dev;
	size_t		tbl;

	if (!dev->healthy)
	{
		snprintf(err, errlen, "the CUDA device is not usable after an earlier error");
		return -1;
	}
	if (!lmc_batch_check(b, &dm->dims, dm->h_table, err, errlen))
		return -1;
	{
		cudaError_t e = cudaSetDevice(dev->ordinal);

		if (e != cudaSuccess)
		{
			cuda_fail(dev, "cudaSetDevice", e, err, errlen);
			return -1;
		}
	}
	tbl = (size_t) b->n_rows * dm->dims.mb;
	{
		cudaError_t e = cudaMemcpyAsync(dm->d_table, dm->h_table, sizeof(uint64_t) * tbl, cudaMemcpyHostToDevice,
										dev->stream);

		if (e != cudaSuccess)
		{
			cuda_fail(dev, "cudaMemcpyAsync(block table)", e, err, errlen);
			return -1;
		}
	}
	for (int i0 = 0; i0 < b->n_tokens; i0 += dm->dims.n_batch)
	{
		int			n = b->n_tokens - i0 < dm->dims.n_batch ? b->n_tokens - i0 : dm->dims.n_batch;

		if (!run_step(dm, b, i0, n, err, errlen))
		{
			(void) cudaStreamSynchronize(dev->stream);
			return -1;
		}
	}
	return 0;
}

/* Page-locked host memory for a context's logits (portable: usable whatever device is current); NULL when refused. */
static void *
cuda_host_alloc(size_t bytes)
{
	void	   *p = NULL;

	if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable) != cudaSuccess)
	{
		(void) cudaGetLastError();
		return NULL;
	}
	return p;
}

/* Free cuda_host_alloc memory. */
static void
cuda_host_free(void *p)
{
	if (p)
		(void) cudaFreeHost(p);
}

/* Debug: dequantize host data on the device (test/gpu/device_check.c). */
static bool
debug_dequantize(lm_device *dev, lm_type t, const void *data, int64_t n_rows, int64_t n_cols, size_t row_bytes,
				 float *out, char *err, size_t errlen)
{
	void	   *raw = NULL;
	float	   *f = NULL;
	bool		ok = false;
	cudaError_t e;

	if (!lmc_type_supported(t))
	{
		snprintf(err, errlen, "no device dequantizer for %s", lm_type_name(t));
		return false;
	}
	if ((e = cudaSetDevice(dev->ordinal)) != cudaSuccess ||
		(e = cudaMalloc(&raw, (size_t) n_rows * row_bytes)) != cudaSuccess ||
		(e = cudaMalloc((void **) &f, sizeof(float) * (size_t) n_rows * n_cols)) != cudaSuccess ||
		(e = cudaMemcpyAsync(raw, data, (size_t) n_rows * row_bytes, cudaMemcpyHostToDevice, dev->stream)) != cudaSuccess ||
		(e = lmc_dequantize(dev->stream, t, raw, row_bytes, n_rows, n_cols, f, 0)) != cudaSuccess ||
		(e = cudaStreamSynchronize(dev->stream)) != cudaSuccess ||
		(e = cudaMemcpyAsync(out, f, sizeof(float) * (size_t) n_rows * n_cols, cudaMemcpyDeviceToHost,
							 dev->stream)) != cudaSuccess ||
		(e = cudaStreamSynchronize(dev->stream)) != cudaSuccess)
		cuda_fail(dev, "dequantize check", e, err, errlen);
	else
		ok = true;
	(void) cudaFree(raw);
	(void) cudaFree(f);
	return ok;
}

/* Debug: the profile since the last report (LMGEN_CUDA_PROFILE), one line per op class; resets it. */
static void
debug_profile(lm_device_model *dm, char *out, size_t len)
{
	double		total = 0.0;
	size_t		o = 0;

	out[0] = '\0';
	if (!dm->profile || dm->prof_steps == 0)
		return;
	for (int k = 0; k < LMC_PROF_N; k++)
		total += dm->prof_ms[k];
	o += (size_t) snprintf(out + o, len - o, "    %lld steps: host %.3f ms/step, device ops %.3f ms/step\n",
						   (long long) dm->prof_steps, dm->prof_wall_ms / dm->prof_steps, total / dm->prof_steps);
	for (int k = 0; k < LMC_PROF_N && o < len; k++)
		if (dm->prof_calls[k] > 0)
			o += (size_t) snprintf(out + o, len - o, "    %-18s %9.4f ms/step %5.1f%%  %7.2f us/call\n", prof_names[k],
								   dm->prof_ms[k] / dm->prof_steps, total > 0 ? 100.0 * dm->prof_ms[k] / total : 0.0,
								   1e3 * dm->prof_ms[k] / dm->prof_calls[k]);
	memset(dm->prof_ms, 0, sizeof(dm->prof_ms));
	memset(dm->prof_calls, 0, sizeof(dm->prof_calls));
	dm->prof_wall_ms = 0.0;
	dm->prof_steps = 0;
}

/* Debug: the switches a model was uploaded with. */
static const char *
debug_describe(const lm_device_model *dm)
{
	return dm->describe;
}

/* The exported tables. */
extern "C"
{
	extern const lm_device_ops lmgen_cuda_device_ops;
	extern const lmc_debug_ops lmgen_cuda_debug_ops;

	const lm_device_ops lmgen_cuda_device_ops = {
		LM_DEVICE_ABI,
		"cuda",
		cuda_count,
		cuda_open,
		cuda_close,
		cuda_info,
		cuda_healthy,
		cuda_upload,
		cuda_kv_blocks,
		cuda_unload,
		cuda_kv_alloc,
		cuda_kv_free,
		cuda_kv_copy,
		cuda_forward,
		cuda_host_alloc,
		cuda_host_free,
	};

	const lmc_debug_ops lmgen_cuda_debug_ops = {
		LM_DEVICE_ABI,
		debug_dequantize,
		debug_describe,
		debug_profile,
	};
}
