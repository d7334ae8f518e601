#include "wavllm/kernels/bf16.h"

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void matmul_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, float* y, Isa isa) {
  const bool dpbf16 = isa == Isa::Avx512Vnni && has_avx512_bf16();
  if (isa == Isa::Avx512Vnni)
    return dpbf16 ? detail::dense_matmul(w, rows, cols, x, tokens, y, detail::dot_bf16_avx512bf16, detail::dots_bf16_avx512bf16)
                  : detail::dense_matmul(w, rows, cols, x, tokens, y, detail::dot_bf16_avx512, detail::dots_bf16_avx512);
  if (isa == Isa::Avx2) return detail::dense_matmul(w, rows, cols, x, tokens, y, detail::dot_bf16_avx2, detail::dots_bf16_avx2);
  detail::dense_matmul<uint16_t>(w, rows, cols, x, tokens, y, detail::dot_bf16_scalar, nullptr);
}

namespace detail {

float dot_bf16_scalar(const uint16_t* w, const uint16_t* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += bf16_to_float(w[i]) * bf16_to_float(x[i]);
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
