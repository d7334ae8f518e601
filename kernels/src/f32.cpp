#include "wavllm/kernels/f32.h"

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void matmul_f32(const float* w, int64_t rows, int64_t cols, const float* x, int64_t tokens, float* y, Isa isa) {
  detail::for_each_row_and_token(rows, tokens, y, [&](int64_t r, int64_t t) {
    const float* row = w + r * cols;
    const float* xt = x + t * cols;
    switch (isa) {
      case Isa::Avx512Vnni: return detail::dot_f32_avx512(row, xt, cols);
      case Isa::Avx2: return detail::dot_f32_avx2(row, xt, cols);
      case Isa::Scalar: break;
    }
    return detail::dot_f32_scalar(row, xt, cols);
  });
}

namespace detail {

float dot_f32_scalar(const float* w, const float* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += w[i] * x[i];
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
