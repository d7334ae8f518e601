#include "activations.h"

#include "wavllm/kernels/q8_0.h"

namespace wavllm::kernels::detail {

QuantizedActivations::QuantizedActivations(const float* x, int64_t tokens, int64_t cols_, bool biased_copy)
    : cols(cols_), blocks(cols_ / kQ8Block), q(size_t(tokens * cols_)), scales(size_t(tokens * blocks)),
      sums(size_t(tokens * blocks)) {
  for (int64_t t = 0; t < tokens; ++t) quantize_q8_0(x + t * cols, cols, &q[t * cols], &scales[t * blocks]);
  for (size_t b = 0; b < sums.size(); ++b) {
    int32_t s = 0;
    for (int64_t i = 0; i < kQ8Block; ++i) s += q[b * kQ8Block + i];
    sums[b] = s;
  }
  if (biased_copy) {
    biased.resize(q.size());
    for (size_t i = 0; i < q.size(); ++i) biased[i] = uint8_t(int(q[i]) + 128);
  }
}

}  // namespace wavllm::kernels::detail
