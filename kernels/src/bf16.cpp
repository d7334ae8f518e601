#include "wavllm/kernels/bf16.h"

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void matmul_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, float* y, Isa isa) {
  const bool dpbf16 = isa == Isa::Avx512Vnni && has_avx512_bf16();
  detail::for_each_row_and_token(rows, tokens, y, [&](int64_t r, int64_t t) {
    const uint16_t* row = w + r * cols;
    const uint16_t* xt = x + t * cols;
    switch (isa) {
      case Isa::Avx512Vnni:
        return dpbf16 ? detail::dot_bf16_avx512bf16(row, xt, cols) : detail::dot_bf16_avx512(row, xt, cols);
      case Isa::Avx2: return detail::dot_bf16_avx2(row, xt, cols);
      case Isa::Scalar: break;
    }
    return detail::dot_bf16_scalar(row, xt, cols);
  });
}

namespace detail {

float dot_bf16_scalar(const uint16_t* w, const uint16_t* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += bf16_to_float(w[i]) * bf16_to_float(x[i]);
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
