#include "wavllm/kernels/f32.h"

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void matmul_f32(const float* w, int64_t rows, int64_t cols, const float* x, int64_t tokens, float* y, Isa isa) {
  using Group = void (*)(const float*, const float*, int64_t, float*);
  const auto one = isa == Isa::Avx512Vnni ? detail::dot_f32_avx512
                   : isa == Isa::Avx2     ? detail::dot_f32_avx2
                                          : detail::dot_f32_scalar;
  const Group group = isa == Isa::Avx512Vnni ? detail::dots_f32_avx512
                      : isa == Isa::Avx2     ? detail::dots_f32_avx2
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

float dot_f32_scalar(const float* w, const float* x, int64_t n) {
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += w[i] * x[i];
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
