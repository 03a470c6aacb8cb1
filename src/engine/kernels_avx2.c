/*
 * kernels_avx2.c — AVX2/FMA/F16C kernels (integer dots with vpmaddubsw).
 * The bodies live in kernels_x86.h, shared with the AVX-512 build.
 */
/* The Makefile may not pass -mavx2 (target-specific CFLAGS win over the
 * pattern rule), so the file enables its ISA itself. */

#define LM_X86_VNNI 0
#include "kernels_x86.h"

/* Convert n floats to fp16 with F16C, nearest even. */
void
lm_fp32_to_fp16_row_f16c(const float *src, uint16_t *dst, int64_t n)
{
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *) (dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		dst[i] = lm_fp32_to_fp16(src[i]);
}

/* Fill the AVX2 table. */
void
lm_kernels_avx2_fill(lm_kernel_table *t)
{
	x86_fill(t);
}
