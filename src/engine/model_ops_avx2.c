/*
 * model_ops_avx2.c — model_ops.c's attention, norm, RoPE and GEGLU helpers in 256-bit vectors
 * (bodies in model_ops_simd.h); called only after a CPUID check.
 */
#include <immintrin.h>

#define OPS_VW 8
#define OPS_SUFFIX avx2
#define OPS_FMA(a, b, c) ((ops_vf) _mm256_fmadd_ps((__m256) (a), (__m256) (b), (__m256) (c)))
/* fp16 index of each lane (nearest even), looked up in the float GELU table */
#define OPS_GELU_LOOKUP(x, tab) ((ops_vf) _mm256_i32gather_ps((tab), _mm256_cvtepu16_epi32(_mm256_cvtps_ph((__m256) (x), _MM_FROUND_TO_NEAREST_INT)), 4))
#include "model_ops_simd.h"
