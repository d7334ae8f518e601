#include "wavllm/kernels/convert.h"

#include "activations.h"

namespace wavllm::kernels {

void widen_bf16(const uint16_t* in, int64_t n, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = detail::bf16_to_float(in[i]);
}

void round_to_bf16(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = detail::bf16_to_float(detail::float_to_bf16(x[i]));
}

}  // namespace wavllm::kernels
