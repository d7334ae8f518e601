// The elementwise kernels compiled for AVX2 + FMA (elementwise_body.h).
#include "elementwise_body.h"

WAVLLM_ELEMENTWISE_KERNELS(avx2)
