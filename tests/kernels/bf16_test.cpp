// bfloat16 matrix-vector products on every instruction-set path, against float64.
#include "wavllm/kernels/bf16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"

namespace {

using namespace wavllm::kernels;
using namespace wavllm::kernels::test;

// Weights and activations are exact bfloat16 values (truncated floats) and their products exact
// in float32, so the only error is the float32 summation: 1e-5 of the sum of |products|. The
// AVX-512 path runs with and without the BF16 instruction (WAVLLM_NO_AVX512_BF16 in the forced
// runs of the suite turns it off).
TEST(Bf16, EveryPathMatchesTheFloat64Product) {
  for (const int64_t cols : {7, 64, 4099}) {  // a tail shorter than any register; one BF16 step; a long odd row
    const int64_t rows = 19, tokens = 3;
    const auto wf = random_values(size_t(rows * cols), 9, 0.02f);
    const auto xf = random_values(size_t(tokens * cols), 10);
    std::vector<uint16_t> w(wf.size()), x(xf.size());
    std::vector<double> exact(size_t(tokens * rows)), magnitude(exact.size());
    for (size_t i = 0; i < wf.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &wf[i], sizeof bits);
      w[i] = uint16_t(bits >> 16);
    }
    for (size_t i = 0; i < xf.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &xf[i], sizeof bits);
      x[i] = uint16_t(bits >> 16);
    }
    auto value = [](uint16_t b) {
      const uint32_t bits = uint32_t(b) << 16;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return double(f);
    };
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const double p = value(w[r * cols + c]) * value(x[t * cols + c]);
          exact[t * rows + r] += p;
          magnitude[t * rows + r] += std::fabs(p);
        }
    for (Isa isa : paths()) {
      std::vector<float> y(exact.size());
      matmul_bf16(w.data(), rows, cols, x.data(), tokens, y.data(), isa);
      for (size_t i = 0; i < y.size(); ++i)
        EXPECT_NEAR(y[i], exact[i], 1e-5 * magnitude[i] + 1e-7) << isa_name(isa) << " cols " << cols << " at " << i;
    }
  }
}

}  // namespace
