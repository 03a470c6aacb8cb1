/*
 * model_ops_avx512.c — model_ops.c's attention helpers in 512-bit vectors
 * (bodies in model_ops_simd.h); called only after a CPUID check.
 */
#define OPS_VW 16
#define OPS_NV_MAX 16
#define OPS_SUFFIX avx512
#include "model_ops_simd.h"
