// bfloat16 <-> float32 over arrays (kernels/convert.h).
#include "wavllm/kernels/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace {

using namespace wavllm::kernels;

float from_bits(uint32_t u) {
  float f = 0;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint32_t bits_of(float f) {
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Nearest bfloat16, ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to 1 (even);
// 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6 and goes up; just above halfway goes up;
// the largest finite float rounds to infinity; infinities and signed zeros stay; a NaN is a NaN.
TEST(Convert, RoundToBf16IsNearestTiesToEven) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, from_bits(bits_of(1.0f + 0x1p-8f) + 1), -2.5f,
                          std::numeric_limits<float>::max(), inf, -inf, -0.0f, nan};
  const std::vector<float> expected = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -2.5f, inf, inf, -inf, -0.0f};
  round_to_bf16(x.data(), int64_t(x.size()));
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(bits_of(x[i]), bits_of(expected[i])) << i;
  EXPECT_TRUE(std::isnan(x.back()));
  for (float v : x) EXPECT_EQ(bits_of(v) & 0xffffu, 0u);
}

TEST(Convert, WidenIsTheUpperHalf) {
  std::vector<uint16_t> in(1000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint16_t(i * 65);
  std::vector<float> out(in.size());
  widen_bf16(in.data(), int64_t(in.size()), out.data());
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(bits_of(out[i]), uint32_t(in[i]) << 16) << i;
}

}  // namespace
