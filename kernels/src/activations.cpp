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

Q4Groups::Q4Groups(const QuantizedActivations& a, int64_t tokens)
    : groups(a.blocks / 4), x(size_t(tokens * groups * 128)), scales(size_t(tokens * groups * 4)),
      offsets(scales.size()) {
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t g = 0; g < groups; ++g) {
      const int8_t* in = &a.q[size_t(t * a.cols + g * 128)];
      int8_t* out = &x[size_t((t * groups + g) * 128)];
      for (int64_t k = 0; k < 4; ++k) {
        for (int64_t i = 0; i < 16; ++i) {
          out[16 * k + i] = in[32 * k + i];
          out[64 + 16 * k + i] = in[32 * k + 16 + i];
        }
        const size_t block = size_t(t * a.blocks + 4 * g + k), slot = size_t((t * groups + g) * 4 + k);
        scales[slot] = a.scales[block];
        offsets[slot] = a.scales[block] * float(8 * a.sums[block]);
      }
    }
}

}  // namespace wavllm::kernels::detail
