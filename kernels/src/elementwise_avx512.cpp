// The elementwise kernels compiled for AVX-512 (elementwise_body.h).
#include "elementwise_body.h"

WAVLLM_ELEMENTWISE_KERNELS(avx512)
