/*
 * model_ops_avx512.c — model_ops.c's attention helpers in 512-bit vectors
 * (bodies in model_ops_simd.h); called only after a CPUID check.
 */
#include <immintrin.h>

#define OPS_VW 16
#define OPS_SUFFIX avx512
#define OPS_FMA(a, b, c) ((ops_vf) _mm512_fmadd_ps((__m512) (a), (__m512) (b), (__m512) (c)))
#include "model_ops_simd.h"
