// float32 matrix-vector products on every instruction-set path: against float64, and each
// token's result independent of the other tokens multiplied with it.
#include "wavllm/kernels/f32.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"

namespace {

using namespace wavllm::kernels;
using namespace wavllm::kernels::test;

// The float32 products are rounded, then summed in float32: each output within 1e-6 of the sum
// of |products| (n = 4099 terms, a few ulp each, accumulated over 16-32 lanes).
TEST(F32, EveryPathMatchesTheFloat64Product) {
  for (const int64_t cols : {7, 24, 48, 4099}) {  // under one register; 16 + 8; 32 + 16; long and odd
    const int64_t rows = 19, tokens = 3;
    const auto w = random_values(size_t(rows * cols), 11, 0.02f);
    const auto x = random_values(size_t(tokens * cols), 12);
    std::vector<double> exact(size_t(tokens * rows)), magnitude(exact.size());
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const double p = double(w[r * cols + c]) * double(x[t * cols + c]);
          exact[t * rows + r] += p;
          magnitude[t * rows + r] += std::fabs(p);
        }
    for (Isa isa : paths()) {
      std::vector<float> y(exact.size());
      matmul_f32(w.data(), rows, cols, x.data(), tokens, y.data(), isa);
      for (size_t i = 0; i < y.size(); ++i)
        EXPECT_NEAR(y[i], exact[i], 1e-6 * magnitude[i] + 1e-9) << isa_name(isa) << " cols " << cols << " at " << i;
    }
  }
}

// Continuous batching's guarantee: token t's outputs are the same bits whether it is multiplied
// alone or among 8 tokens.
TEST(F32, ATokensResultDoesNotDependOnTheBatch) {
  const int64_t rows = 37, cols = 1000, tokens = 8;
  const auto w = random_values(size_t(rows * cols), 13, 0.02f);
  const auto x = random_values(size_t(tokens * cols), 14);
  for (Isa isa : paths()) {
    std::vector<float> batch(size_t(tokens * rows)), alone(static_cast<size_t>(rows));
    matmul_f32(w.data(), rows, cols, x.data(), tokens, batch.data(), isa);
    for (int64_t t = 0; t < tokens; ++t) {
      matmul_f32(w.data(), rows, cols, x.data() + t * cols, 1, alone.data(), isa);
      EXPECT_EQ(0, std::memcmp(alone.data(), batch.data() + t * rows, sizeof(float) * size_t(rows)))
          << isa_name(isa) << " token " << t;
    }
  }
}

}  // namespace
