#include "wavllm/kernels/bf16.h"

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void matmul_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, float* y, Isa isa) {
  using Group = void (*)(const uint16_t*, const uint16_t*, int64_t, float*);
  const bool dpbf16 = isa == Isa::Avx512Vnni && has_avx512_bf16();
  const auto one = isa == Isa::Avx512Vnni ? (dpbf16 ? detail::dot_bf16_avx512bf16 : detail::dot_bf16_avx512)
                   : isa == Isa::Avx2     ? detail::dot_bf16_avx2
                                          : detail::dot_bf16_scalar;
  const Group group = isa == Isa::Avx512Vnni ? (dpbf16 ? detail::dots_bf16_avx512bf16 : detail::dots_bf16_avx512)
                      : isa == Isa::Avx2     ? detail::dots_bf16_avx2
                                             : nullptr;
  detail::for_each_row_and_token_block(
      rows, tokens, y,
      [&](int64_t r, int64_t t, float* out) {
        if (group) return group(w + r * cols, x + t * cols, cols, out);
        for (int i = 0; i < detail::kDenseRows; ++i)
          for (int k = 0; k < detail::kDenseGroup; ++k)
            out[i * detail::kDenseGroup + k] = one(w + (r + i) * cols, x + (t + k) * cols, cols);
      },
      [&](int64_t r, int64_t t) { return one(w + r * cols, x + t * cols, cols); });
}

namespace detail {

float dot_bf16_scalar(const uint16_t* w, const uint16_t* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += bf16_to_float(w[i]) * bf16_to_float(x[i]);
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
