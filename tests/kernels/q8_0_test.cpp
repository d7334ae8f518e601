// Q8_0 kernels on every instruction-set path this CPU has, against float64 references.
#include "wavllm/kernels/q8_0.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace wavllm::kernels;
using namespace wavllm::kernels::test;

TEST(Q8_0, QuantizeRoundTripIsWithinHalfAStep) {
  const auto x = random_values(32 * 40, 1);
  std::vector<int8_t> q(x.size());
  std::vector<float> s(x.size() / 32), back(x.size());
  quantize_q8_0(x.data(), int64_t(x.size()), q.data(), s.data());
  dequantize_q8_0(q.data(), s.data(), int64_t(x.size()), back.data());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LE(std::fabs(back[i] - x[i]), 0.5f * s[i / 32] * (1 + 1e-6f)) << i;
    EXPECT_GE(q[i], -127);
  }
  // An all-zero block has scale 0 and decodes to zeros.
  std::vector<float> zeros(32, 0.0f);
  quantize_q8_0(zeros.data(), 32, q.data(), s.data());
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_EQ(q[0], 0);
}

// Every path computes the same integer block products; only the float accumulation order
// differs. Against the exact float64 value of those products: relative error <= 1e-5.
// Against the float64 product of the unquantized matrices (quantization error of both
// operands): <= 2 % of the largest output here (normal weights and activations).
TEST(Q8_0, Bfloat16ExpansionIsTheRoundedFloatOne) {
  const auto x = random_values(32 * 64, 4);
  std::vector<int8_t> q(x.size());
  std::vector<float> s(x.size() / 32), dense(x.size());
  std::vector<uint16_t> bf16(x.size());
  quantize_q8_0(x.data(), int64_t(x.size()), q.data(), s.data());
  dequantize_q8_0(q.data(), s.data(), int64_t(x.size()), dense.data());
  dequantize_q8_0_bf16(q.data(), s.data(), int64_t(x.size()), bf16.data());
  auto as_float = [](uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  };
  for (size_t i = 0; i < x.size(); ++i) {
    // The two bfloat16 neighbours of the float value: the result is the nearer (ties: even).
    uint32_t exact;
    std::memcpy(&exact, &dense[i], sizeof exact);
    const uint32_t below = exact & 0xffff0000u, above = below + 0x10000u;
    const double d_below = std::fabs(double(as_float(below)) - dense[i]), d_above = std::fabs(double(as_float(above)) - dense[i]);
    const uint32_t nearest = d_below < d_above ? below : d_above < d_below ? above : ((below >> 16) & 1 ? above : below);
    EXPECT_EQ(uint32_t(bf16[i]) << 16, nearest) << i << " " << dense[i];
  }
}

TEST(Q8_0, EveryPathMatchesTheFloat64Reference) {
  for (const int64_t cols : {32, 96, 4096}) {      // one block; an odd count (the 512-bit tail); a real width
    for (const int64_t tokens : {1, 3}) {
      const int64_t rows = 37;
      const auto w = random_values(size_t(rows * cols), 2, 0.02f);
      const auto x = random_values(size_t(tokens * cols), 3);
      std::vector<int8_t> wq(w.size());
      std::vector<float> ws(w.size() / 32), wd(w.size());
      quantize_q8_0(w.data(), int64_t(w.size()), wq.data(), ws.data());
      dequantize_q8_0(wq.data(), ws.data(), int64_t(w.size()), wd.data());
      expect_every_path_matches(reference_product(wd, w, x, rows, cols, tokens), 0.02,
                                [&](Isa isa, float* y) { matmul_q8_0({wq.data(), ws.data(), rows, cols}, x.data(), tokens, y, isa); },
                                "cols " + std::to_string(cols) + " tokens " + std::to_string(tokens));
    }
  }
}

TEST(Q8_0, TheActivePathIsTheDetectedOneOrTheForcedOne) {
  const char* forced = std::getenv("WAVLLM_ISA");
  if (forced && *forced) {
    EXPECT_EQ(std::string(isa_name(active_isa())), forced);
  } else {
    EXPECT_EQ(active_isa(), detected_isa());
  }
  EXPECT_TRUE(supported(Isa::Scalar));
}

}  // namespace
