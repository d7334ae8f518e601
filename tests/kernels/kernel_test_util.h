#pragma once
// Shared by the kernel tests: random inputs and the paths this CPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "wavllm/kernels/isa.h"
#include "wavllm/kernels/q8_0.h"

namespace wavllm::kernels::test {

inline std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

inline std::vector<Isa> paths() {
  std::vector<Isa> out;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni})
    if (supported(i)) out.push_back(i);
  return out;
}

// y = x W^T two ways in float64: `exact`, with the weights as dequantized (wd) and x quantized
// to Q8_0 as the kernels do (what every path must reproduce up to float rounding), and
// `unquantized`, with the original weights w and x; `largest` = max |unquantized|.
struct Reference {
  std::vector<double> exact, unquantized;
  double largest = 0;
};

inline Reference reference_product(const std::vector<float>& wd, const std::vector<float>& w, const std::vector<float>& x,
                                   int64_t rows, int64_t cols, int64_t tokens) {
  std::vector<int8_t> xq(x.size());
  std::vector<float> xs(x.size() / 32);
  quantize_q8_0(x.data(), int64_t(x.size()), xq.data(), xs.data());
  Reference ref;
  ref.exact.resize(size_t(tokens * rows));
  ref.unquantized.resize(ref.exact.size());
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double e = 0, u = 0;
      for (int64_t c = 0; c < cols; ++c) {
        e += double(wd[r * cols + c]) * double(xq[t * cols + c]) * xs[(t * cols + c) / 32];
        u += double(w[r * cols + c]) * double(x[t * cols + c]);
      }
      ref.exact[t * rows + r] = e;
      ref.unquantized[t * rows + r] = u;
      ref.largest = std::max(ref.largest, std::fabs(u));
    }
  return ref;
}

// Each path's y against the reference: relative error <= 1e-5 of `exact`, and within
// `tolerance` x largest of `unquantized`.
template <class Matmul>
void expect_every_path_matches(const Reference& ref, double tolerance, const Matmul& matmul, const std::string& what) {
  for (Isa isa : paths()) {
    std::vector<float> y(ref.exact.size());
    matmul(isa, y.data());
    for (size_t i = 0; i < y.size(); ++i) {
      EXPECT_NEAR(y[i], ref.exact[i], 1e-5 * std::max(1.0, std::fabs(ref.exact[i])) + 1e-6)
          << isa_name(isa) << " " << what << " at " << i;
      EXPECT_NEAR(y[i], ref.unquantized[i], tolerance * ref.largest) << isa_name(isa) << " " << what << " at " << i;
    }
  }
}

}  // namespace wavllm::kernels::test
