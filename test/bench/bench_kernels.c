/*
 * bench_kernels.c — single-thread throughput of lm_matmul_rows, in GB/s of
 * weight bytes, for a large matrix per weight type and each ISA.
 * Not built by make.  Build and run from the repository root:
 *
 *   make src/engine/quant.o src/engine/kernels.o src/engine/kernels_avx2.o \
 *        src/engine/kernels_avx512.o src/engine/tensor_types.o
 *   gcc -std=gnu11 -O2 -Isrc/engine -o /tmp/bench_kernels test/bench/bench_kernels.c \
 *       src/engine/quant.o src/engine/kernels.o src/engine/kernels_avx2.o \
 *       src/engine/kernels_avx512.o src/engine/tensor_types.o -lpthread -lm
 *   /tmp/bench_kernels [rows] [cols]        (default 4096 x 4096)
 */
#include "kernels.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall-clock seconds. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Benchmark every type and ISA, n_batch 1 and 8. */
int
main(int argc, char **argv)
{
	int64_t		rows = argc > 1 ? atoll(argv[1]) : 4096;
	int64_t		cols = argc > 2 ? atoll(argv[2]) : 4096;
	static const lm_type types[] = {LM_TYPE_Q4_0, LM_TYPE_Q4_1, LM_TYPE_Q8_0, LM_TYPE_Q4_K, LM_TYPE_Q6_K,
	LM_TYPE_Q5_K, LM_TYPE_F16, LM_TYPE_F32};
	float	   *x = malloc(sizeof(float) * cols * 8);
	float	   *y = malloc(sizeof(float) * rows * 8);
	lm_isa		best = lm_kernels_init();

	for (int64_t i = 0; i < cols * 8; i++)
		x[i] = (float) ((i * 2654435761u) % 1000) / 500.0f - 1.0f;
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
	{
		lm_type		t = types[k];
		const lm_type_traits *tr = lm_type_traits_get(t);
		size_t		wrow = (size_t) (cols / tr->block_size) * tr->type_size;
		size_t		xrow = lm_act_row_size(t, cols);
		uint8_t    *W = malloc(wrow * rows);
		uint8_t    *X = malloc(xrow * 8);

		for (size_t i = 0; i < wrow * rows; i++)
			W[i] = (uint8_t) (i * 2654435761u >> 13);
		/* keep fp16 fields finite: clear bit 14 of every 16-bit word (exponent < 16) */
		for (size_t i = 1; i < wrow * rows; i += 2)
			W[i] &= 0xBF;
		for (int b = 0; b < 8; b++)
			lm_act_quantize_row(t, x + b * cols, X + b * xrow, cols);
		for (int isa = best; isa >= 0; isa--)
		{
			lm_kernels_force_isa((lm_isa) isa);
			for (int nb = 1; nb <= 8; nb *= 8)
			{
				int			reps = 0;
				double		t0 = now(),
							t1;

				do
				{
					lm_matmul_rows(t, W, wrow, cols, 0, rows, X, xrow, nb, y, rows);
					reps++;
					t1 = now();
				} while (t1 - t0 < (isa == 0 ? 0.3 : 1.0));
				printf("%-5s %-6s n_batch=%d  %7.2f GB/s weights  %8.3f ms/matmul\n", tr->name,
					   lm_isa_name((lm_isa) isa), nb, (double) wrow * rows * reps / (t1 - t0) / 1e9,
					   (t1 - t0) / reps * 1e3);
			}
		}
		free(W);
		free(X);
	}
	return 0;
}
