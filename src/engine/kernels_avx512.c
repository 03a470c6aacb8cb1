/*
 * kernels_avx512.c — AVX-512 kernels: 512-bit F32/F16 dots and 256-bit VNNI
 * (vpdpbusd) integer dots.  The bodies live in kernels_x86.h.
 */

#define LM_X86_VNNI 1
#include "kernels_x86.h"

/* Fill the AVX-512 table. */
void
lm_kernels_avx512_fill(lm_kernel_table *t)
{
	x86_fill(t);
}
