// Q8_0 kernels on every instruction-set path this CPU has, against float64 references.
#include "wavllm/kernels/q8_0.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace wavllm::kernels;

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<Isa> paths() {
  std::vector<Isa> out;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni})
    if (supported(i)) out.push_back(i);
  return out;
}

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
TEST(Q8_0, EveryPathMatchesTheFloat64Reference) {
  for (const int64_t cols : {32, 96, 4096}) {      // one block; an odd count (the 512-bit tail); a real width
    for (const int64_t tokens : {1, 3}) {
      const int64_t rows = 37;
      const auto w = random_values(size_t(rows * cols), 2, 0.02f);
      const auto x = random_values(size_t(tokens * cols), 3);
      std::vector<int8_t> wq(w.size()), xq(x.size());
      std::vector<float> ws(w.size() / 32), xs(x.size() / 32);
      quantize_q8_0(w.data(), int64_t(w.size()), wq.data(), ws.data());
      quantize_q8_0(x.data(), int64_t(x.size()), xq.data(), xs.data());
      std::vector<double> exact(size_t(tokens * rows)), unquantized(exact.size());
      double largest = 0;
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double e = 0, u = 0;
          for (int64_t c = 0; c < cols; ++c) {
            e += double(wq[r * cols + c]) * ws[(r * cols + c) / 32] * double(xq[t * cols + c]) * xs[(t * cols + c) / 32];
            u += double(w[r * cols + c]) * double(x[t * cols + c]);
          }
          exact[t * rows + r] = e;
          unquantized[t * rows + r] = u;
          largest = std::max(largest, std::fabs(u));
        }
      for (Isa isa : paths()) {
        std::vector<float> y(exact.size());
        matmul_q8_0({wq.data(), ws.data(), rows, cols}, x.data(), tokens, y.data(), isa);
        for (size_t i = 0; i < y.size(); ++i) {
          EXPECT_NEAR(y[i], exact[i], 1e-5 * std::max(1.0, std::fabs(exact[i])) + 1e-6)
              << isa_name(isa) << " cols " << cols << " tokens " << tokens << " at " << i;
          EXPECT_NEAR(y[i], unquantized[i], 0.02 * largest) << isa_name(isa) << " cols " << cols << " at " << i;
        }
      }
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
