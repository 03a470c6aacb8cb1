/*
 * model_ops_avx512.c — model_ops.c's attention, norm, RoPE and GEGLU helpers in 512-bit vectors
 * (bodies in model_ops_simd.h); called only after a CPUID check.
 */
#include <immintrin.h>

#define OPS_VW 16
#define OPS_SUFFIX avx512
#define OPS_FMA(a, b, c) ((ops_vf) _mm512_fmadd_ps((__m512) (a), (__m512) (b), (__m512) (c)))
/* fp16 index of each lane (nearest even), looked up in the float GELU table */
#define OPS_GELU_LOOKUP(x, tab) ((ops_vf) _mm512_i32gather_ps(_mm512_cvtepu16_epi32(_mm512_cvtps_ph((__m512) (x), _MM_FROUND_TO_NEAREST_INT)), (tab), 4))
#include "model_ops_simd.h"
