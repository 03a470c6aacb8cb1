/*
 * model_ops_avx2.c — model_ops.c's attention helpers in 256-bit vectors
 * (bodies in model_ops_simd.h); called only after a CPUID check.
 */
#include <immintrin.h>

#define OPS_VW 8
#define OPS_SUFFIX avx2
#define OPS_FMA(a, b, c) ((ops_vf) _mm256_fmadd_ps((__m256) (a), (__m256) (b), (__m256) (c)))
#include "model_ops_simd.h"
