// float32 products through oneDNN, and the choice of backend the engine makes for them.
#include "wavllm/kernels/sgemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
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

// bfloat16 operands widened to float32 give the float32 product of their values, bit for bit:
// the same sgemm calls on the widened numbers, one panel of B's rows at a time (8 MB of them, at
// least 16, at most n). k = 65536 makes the panels 32 rows, so n = 70 takes three, the last one
// short; n = 5 is a single panel smaller than 16 rows. ldc > n leaves the columns beyond n alone.
TEST(Sgemm, BFloat16OperandsWidenToTheFloat32Product) {
  auto to_bf16 = [](const std::vector<float>& v, std::vector<uint16_t>& bits, std::vector<float>& widened) {
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t u = 0;
      std::memcpy(&u, &v[i], sizeof u);
      bits[i] = uint16_t(u >> 16);
      u = uint32_t(bits[i]) << 16;
      std::memcpy(&widened[i], &u, sizeof u);
    }
  };
  for (const auto& [m, n, k, panel] : std::vector<std::array<int64_t, 4>>{{3, 70, 65536, 32}, {4, 5, 64, 5}}) {
    const int64_t ldc = n + 5;
    const auto af = random_values(size_t(m * k), 21), bf = random_values(size_t(n * k), 22, 0.01f);
    std::vector<uint16_t> a(af.size()), b(bf.size());
    std::vector<float> a32(af.size()), b32(bf.size());
    to_bf16(af, a, a32);
    to_bf16(bf, b, b32);
    std::vector<float> c(size_t(m * ldc), -7.0f);
    sgemm_bf16_nt(m, n, k, a.data(), b.data(), c.data(), ldc);
    for (int64_t r0 = 0; r0 < n; r0 += panel) {
      const int64_t rows = std::min(panel, n - r0);
      std::vector<float> expected(size_t(m * rows));
      sgemm(true, m, rows, k, a32.data(), k, b32.data() + r0 * k, k, 0.0f, expected.data(), rows);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < rows; ++j)
          ASSERT_EQ(c[size_t(i * ldc + r0 + j)], expected[size_t(i * rows + j)]) << n << ": " << i << "," << r0 + j;
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = n; j < ldc; ++j) EXPECT_EQ(c[size_t(i * ldc + j)], -7.0f);
  }
}

// WAVLLM_BF16_GEMM forces the route (ctest runs the model suites widened on every machine);
// without it, bfloat16 products are LibTorch's exactly when the CPU has AVX-512.
TEST(Sgemm, TheBFloat16RouteIsTheForcedOneOrTheRule) {
  const char* forced = std::getenv("WAVLLM_BF16_GEMM");
  if (forced && *forced) {
    EXPECT_STREQ(bf16_gemm_name(bf16_gemm()), forced);
    return;
  }
  EXPECT_EQ(bf16_gemm(), has_avx512() ? Bf16Gemm::Native : Bf16Gemm::Float32);
}

}  // namespace
