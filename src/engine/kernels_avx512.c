/*
 * kernels_avx512.c — AVX-512 kernels: 512-bit F32/F16 dots, 256-bit VNNI
 * (vpdpbusd) integer dots for single rows and 512-bit ones for batches
 * (kernels_x86_q32p.h).  The bodies live in kernels_x86.h.
 */

/* built with -mbmi2 too (pdep builds the Q5 bit masks); kernels.c selects this file only on CPUs with BMI2 */
#define LM_X86_VNNI 1
#include "kernels_x86.h"

/* Fill the AVX-512 table. */
void
lm_kernels_avx512_fill(lm_kernel_table *t)
{
	x86_fill(t);
}
