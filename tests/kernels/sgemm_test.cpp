// float32 products through oneDNN, and the choice of backend the engine makes for them.
#include "wavllm/kernels/sgemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <array>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "wavllm/kernels/isa.h"

namespace {

using namespace wavllm::kernels;
using namespace wavllm::kernels::test;

// Against the float64 product: the float32 sums' error, 1e-5 of the sum of |products|.
TEST(Sgemm, MatchesTheFloat64Product) {
  for (const auto& [m, n, k] : std::vector<std::array<int64_t, 3>>{{9, 7, 5}, {64, 33, 1280}, {300, 257, 96}}) {
    const auto a = random_values(size_t(m * k), 11);
    const auto b = random_values(size_t(n * k), 12, 0.05f);
    std::vector<float> c(size_t(m * n), -1.0f);
    sgemm_nt(m, n, k, a.data(), b.data(), c.data());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double exact = 0, magnitude = 0;
        for (int64_t p = 0; p < k; ++p) {
          exact += double(a[size_t(i * k + p)]) * double(b[size_t(j * k + p)]);
          magnitude += std::fabs(double(a[size_t(i * k + p)]) * double(b[size_t(j * k + p)]));
        }
        ASSERT_NEAR(c[size_t(i * n + j)], exact, 1e-5 * magnitude) << m << "x" << n << "x" << k << " at " << i << "," << j;
      }
  }
}

// WAVLLM_FP32_GEMM forces a backend for every size (the ctest entries run the model suites with
// each); without it, products of kOnednnRows rows or more take oneDNN, and smaller ones take it
// exactly when the BLAS is not OpenBLAS or runs kernels without AVX2 on a CPU that has AVX2.
TEST(Sgemm, TheBackendIsTheForcedOneOrTheRule) {
  const char* forced = std::getenv("WAVLLM_FP32_GEMM");
  if (forced && *forced) {
    for (int64_t rows : {int64_t(9), int64_t(64), kOnednnRows, int64_t(1500)}) EXPECT_STREQ(fp32_gemm_name(fp32_gemm(rows)), forced);
    EXPECT_EQ(fp32_gemm_summary(), forced);
    return;
  }
  EXPECT_EQ(fp32_gemm(kOnednnRows), Fp32Gemm::Onednn);
  EXPECT_EQ(fp32_gemm(1500), Fp32Gemm::Onednn);
  const std::string core = blas_core_name();
  const bool narrow = core.empty() || core == "Prescott" || core == "Core2" || core == "Nehalem" || core == "Sandybridge";
  if (narrow && supported(Isa::Avx2)) {
    EXPECT_EQ(fp32_gemm(64), Fp32Gemm::Onednn) << core;
    EXPECT_EQ(fp32_gemm_summary(), "onednn");
  }
  if (core == "Haswell" || core == "SkylakeX" || core == "Cooperlake" || core == "Zen") {
    EXPECT_EQ(fp32_gemm(64), Fp32Gemm::Blas) << core;
    EXPECT_EQ(fp32_gemm_summary(), "blas below 1024 rows, onednn from there");
  }
}

}  // namespace
