/*
 * model_ops_avx2.c — model_ops.c's attention helpers in 256-bit vectors
 * (bodies in model_ops_simd.h); called only after a CPUID check.
 */
#define OPS_VW 8
#define OPS_NV_MAX 8
#define OPS_SUFFIX avx2
#include "model_ops_simd.h"
