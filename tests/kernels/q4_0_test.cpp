// Q4_0 kernels on every instruction-set path this CPU has, against float64 references.
#include "wavllm/kernels/q4_0.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"
#include "wavllm/kernels/q8_0.h"

namespace {

using namespace wavllm::kernels;
using namespace wavllm::kernels::test;

float from_bf16(uint16_t bits) {
  const uint32_t wide = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

TEST(Q4_0, QuantizeRoundTripErrorIsBoundedAndTheExtremeIsKept) {
  const auto x = random_values(32 * 40, 5);
  std::vector<uint8_t> packed(x.size() / 2);
  std::vector<uint16_t> s(x.size() / 32);
  std::vector<float> back(x.size());
  quantize_q4_0(x.data(), int64_t(x.size()), packed.data(), s.data());
  dequantize_q4_0(packed.data(), s.data(), int64_t(x.size()), back.data());
  for (size_t b = 0; b < s.size(); ++b) {
    const float scale = std::fabs(from_bf16(s[b]));
    float extreme = 0;
    for (size_t i = 32 * b; i < 32 * b + 32; ++i) {
      // Within half a step, or one step for a value beyond the last code on the side opposite
      // the extreme (which maps to -8; the other side stops at +7). 1 % for the bf16 scale.
      EXPECT_LE(std::fabs(back[i] - x[i]), 1.0f * scale * 1.01f) << i;
      if (std::fabs(x[i]) > std::fabs(extreme)) extreme = x[i];
    }
    for (size_t i = 32 * b; i < 32 * b + 32; ++i)
      if (x[i] == extreme) EXPECT_NEAR(back[i], x[i], std::fabs(x[i]) * 0.008f) << i;  // bf16 scale
  }
}

// The integer block products are exact on every path: against the float64 value of the same
// quantized products, relative error <= 1e-5; against the float64 product of the unquantized
// matrices, within 12 % of the largest output (4-bit weights).
TEST(Q4_0, EveryPathMatchesTheFloat64Reference) {
  // Whole groups of 4 blocks and 1-3 blocks after them (the AVX-512 path's two loops).
  for (const int64_t cols : {32, 96, 160, 4096, 4192}) {
    for (const int64_t tokens : {1, 3}) {
      const int64_t rows = 37;
      const auto w = random_values(size_t(rows * cols), 6, 0.02f);
      const auto x = random_values(size_t(tokens * cols), 7);
      std::vector<uint8_t> packed(w.size() / 2);
      std::vector<uint16_t> ws(w.size() / 32);
      std::vector<float> wd(w.size());
      quantize_q4_0(w.data(), int64_t(w.size()), packed.data(), ws.data());
      dequantize_q4_0(packed.data(), ws.data(), int64_t(w.size()), wd.data());
      expect_every_path_matches(reference_product(wd, w, x, rows, cols, tokens), 0.12,
                                [&](Isa isa, float* y) { matmul_q4_0({packed.data(), ws.data(), rows, cols}, x.data(), tokens, y, isa); },
                                "cols " + std::to_string(cols) + " tokens " + std::to_string(tokens));
    }
  }
}

TEST(Q4_0, Bfloat16ExpansionMatchesTheFloatOne) {
  const auto x = random_values(32 * 64, 8);
  std::vector<uint8_t> packed(x.size() / 2);
  std::vector<uint16_t> s(x.size() / 32), bf16(x.size());
  std::vector<float> dense(x.size());
  quantize_q4_0(x.data(), int64_t(x.size()), packed.data(), s.data());
  dequantize_q4_0(packed.data(), s.data(), int64_t(x.size()), dense.data());
  dequantize_q4_0_bf16(packed.data(), s.data(), int64_t(x.size()), bf16.data());
  // (nibble - 8) * a bfloat16 scale has at most 4 + 8 significant bits: bfloat16 rounds it
  // to the nearest of its 8, within half a step.
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_LE(std::fabs(from_bf16(bf16[i]) - dense[i]), std::ldexp(std::fabs(dense[i]), -8)) << i;
}

}  // namespace
