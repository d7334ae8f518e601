#include "wavllm/kernels/f32.h"

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void matmul_f32(const float* w, int64_t rows, int64_t cols, const float* x, int64_t tokens, float* y, Isa isa) {
  if (isa == Isa::Avx512Vnni) return detail::dense_matmul(w, rows, cols, x, tokens, y, detail::dot_f32_avx512, detail::dots_f32_avx512);
  if (isa == Isa::Avx2) return detail::dense_matmul(w, rows, cols, x, tokens, y, detail::dot_f32_avx2, detail::dots_f32_avx2);
  detail::dense_matmul<float>(w, rows, cols, x, tokens, y, detail::dot_f32_scalar, nullptr);
}

namespace detail {

float dot_f32_scalar(const float* w, const float* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += w[i] * x[i];
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
