#include "wavllm/kernels/convert.h"

#include <cstring>

namespace wavllm::kernels {

void widen_bf16(const uint16_t* in, int64_t n, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = uint32_t(in[i]) << 16;
    std::memcpy(out + i, &bits, sizeof bits);
  }
}

void round_to_bf16(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, x + i, sizeof bits);
    const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    bits = nan ? 0x7fc00000u : rounded;  // LibTorch's bfloat16 NaN
    std::memcpy(x + i, &bits, sizeof bits);
  }
}

}  // namespace wavllm::kernels
