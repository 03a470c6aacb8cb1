/*
 * bench_kernels.c — single-thread throughput of lm_matmul_rows for a matrix
 * per weight type, each ISA, n_batch 1, 8 and 32.  Prints GB/s of weight
 * bytes per matmul call, ms per call, and the per-token equivalent
 * ("tok GB/s" = weight bytes x n_batch / time: n_batch=32 at 4x the
 * n_batch=1 figure means a token costs 1/4 as much inside the batch).
 * Not built by make.  Build and run from the repository root:
 *
 *   make src/engine/quant.o src/engine/kernels.o src/engine/kernels_avx2.o \
 *        src/engine/kernels_avx512.o src/engine/tensor_types.o
 *   gcc -std=gnu11 -O2 -Isrc/engine -o /tmp/bench_kernels test/bench/bench_kernels.c \
 *       src/engine/quant.o src/engine/kernels.o src/engine/kernels_avx2.o \
 *       src/engine/kernels_avx512.o src/engine/tensor_types.o -lpthread -lm
 *   /tmp/bench_kernels [rows] [cols] [isa] [seconds] [types] [batches]
 *
 * rows x cols defaults to 4096 x 4096; isa is scalar|avx2|avx512|all
 * (default: the best one, scalar is slow); seconds per measurement
 * (default 0.5, thread CPU time).  A small matrix (e.g. 64 64) shows the
 * per-call overhead.  types is a comma list of type names (default: all),
 * batches a comma list of n_batch values (default 1,8,32), e.g.
 * "/tmp/bench_kernels 262144 640 best 1 q8_0 1" for a tall decode matrix.
 */
#include "kernels.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_BATCH 512

/* Seconds of this thread's CPU time (steadier than wall time on a shared machine). */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* True when name is in the comma list (case-insensitive), or the list is NULL. */
static int
type_listed(const char *list, const char *name)
{
	size_t		n = strlen(name);

	if (list == NULL)
		return 1;
	for (const char *p = list; *p != '\0';)
	{
		size_t		len = strcspn(p, ",");

		if (len == n && strncasecmp(p, name, n) == 0)
			return 1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* Benchmark every type on the chosen ISAs, n_batch 1, 8 and 32. */
int
main(int argc, char **argv)
{
	int64_t		rows = argc > 1 ? atoll(argv[1]) : 4096;
	int64_t		cols = argc > 2 ? atoll(argv[2]) : 4096;
	const char *isa_arg = argc > 3 ? argv[3] : "best";
	double		secs = argc > 4 ? atof(argv[4]) : 0.5;
	static const lm_type types[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q5_0, LM_TYPE_Q8_0, LM_TYPE_Q4_K,
	LM_TYPE_Q5_K, LM_TYPE_Q6_K, LM_TYPE_F16, LM_TYPE_F32};
	const char *types_arg = argc > 5 ? argv[5] : NULL;
	int			batches[8] = {1, 8, 32};
	int			n_batches = 3;
	float	   *x = malloc(sizeof(float) * cols * MAX_BATCH);
	float	   *y = malloc(sizeof(float) * rows * MAX_BATCH);
	lm_isa		best = lm_kernels_init();
	int			isa_lo = best,
				isa_hi = best;

	if (strcmp(isa_arg, "all") == 0)
		isa_lo = 0;
	else if (strcmp(isa_arg, "best") != 0)
	{
		for (int i = 0; i <= (int) best; i++)
			if (strcmp(isa_arg, lm_isa_name((lm_isa) i)) == 0)
				isa_lo = isa_hi = i;
	}
	if (argc > 6)
	{
		char	   *p = argv[6];

		for (n_batches = 0; n_batches < 8 && *p != '\0';)
		{
			int			v = (int) strtol(p, &p, 10);

			if (v >= 1 && v <= MAX_BATCH)
				batches[n_batches++] = v;
			if (*p == ',')
				p++;
			else
				break;
		}
	}
	for (int64_t i = 0; i < cols * MAX_BATCH; i++)
		x[i] = (float) ((i * 2654435761u) % 1000) / 500.0f - 1.0f;
	printf("%lld x %lld, single thread\n", (long long) rows, (long long) cols);
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
	{
		lm_type		t = types[k];
		const lm_type_traits *tr = lm_type_traits_get(t);
		size_t		wrow,
					xrow;
		uint8_t    *W,
				   *X;

		if (cols % tr->block_size != 0 || !type_listed(types_arg, tr->name))
			continue;
		wrow = (size_t) (cols / tr->block_size) * tr->type_size;
		xrow = lm_act_row_size(t, cols);
		W = malloc(wrow * rows);
		X = malloc(xrow * MAX_BATCH);
		for (size_t i = 0; i < wrow * rows; i++)
			W[i] = (uint8_t) (i * 2654435761u >> 13);
		/* keep fp16 fields finite: clear bit 14 of every 16-bit word (exponent < 16) */
		for (size_t i = 1; i < wrow * rows; i += 2)
			W[i] &= 0xBF;
		for (int b = 0; b < MAX_BATCH; b++)
			lm_act_quantize_row(t, x + b * cols, X + b * xrow, cols);
		for (int isa = isa_hi; isa >= isa_lo; isa--)
		{
			lm_kernels_force_isa((lm_isa) isa);
			for (int bi = 0; bi < n_batches; bi++)
			{
				int			nb = batches[bi];
				int			reps = 0;
				double		t0 = now(),
							t1;

				do
				{
					lm_matmul_rows(t, W, wrow, cols, 0, rows, X, xrow, nb, y, rows);
					reps++;
					t1 = now();
				} while (t1 - t0 < secs);
				printf("%-5s %-6s n_batch=%-2d %8.2f GB/s weights %10.4f ms/matmul %8.2f tok GB/s\n", tr->name,
					   lm_isa_name((lm_isa) isa), nb, (double) wrow * rows * reps / (t1 - t0) / 1e9,
					   (t1 - t0) / reps * 1e3, (double) wrow * rows * reps * nb / (t1 - t0) / 1e9);
			}
		}
		free(W);
		free(X);
	}
	free(x);
	free(y);
	return 0;
}
