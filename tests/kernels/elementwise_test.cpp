// LayerNorm (kernels/elementwise.h) on every instruction-set path, against float64.
#include "wavllm/kernels/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"

namespace {

using namespace wavllm::kernels;
using namespace wavllm::kernels::test;

uint16_t bf16_of(float v) {  // truncation: the tests need bfloat16 inputs, not a rounding
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return uint16_t(u >> 16);
}

float float_of(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The float64 LayerNorm, and each output's magnitude: the sizes of the terms the float32
// form (x rstd - mean rstd) gamma + beta adds, which its rounding errors scale with.
struct LayerNormReference {
  std::vector<double> y, magnitude;
};

LayerNormReference layer_norm_reference(const std::vector<float>& x, int64_t n, const std::vector<float>& gamma,
                                        const std::vector<float>& beta, double eps) {
  LayerNormReference ref{std::vector<double>(x.size()), std::vector<double>(x.size())};
  for (size_t r = 0; r < x.size() / size_t(n); ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += x[r * n + i];
    mean /= double(n);
    for (int64_t i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
    const double rstd = 1.0 / std::sqrt(var / double(n) + eps);
    for (int64_t i = 0; i < n; ++i) {
      ref.y[r * n + i] = (x[r * n + i] - mean) * rstd * gamma[i] + beta[i];
      ref.magnitude[r * n + i] = (std::fabs(x[r * n + i]) + std::fabs(mean)) * rstd * std::fabs(gamma[i]) + std::fabs(beta[i]);
    }
  }
  return ref;
}

// Rows far from zero mean (offset 3, spread 2) so that a one-pass variance would show: within
// 2e-6 of the magnitude (measured at most 2.6e-7 on the lengths below, scalar and AVX2).
// Lengths: under one register, WavLM's and Whisper's widths, and an odd tail.
TEST(Elementwise, LayerNormMatchesFloat64OnEveryPath) {
  for (const int64_t n : {7, 768, 1280, 1283}) {
    const int64_t rows = 5;
    std::vector<float> x = random_values(size_t(rows * n), 21, 2.0f);
    for (float& v : x) v += 3.0f;
    const auto gamma = random_values(size_t(n), 22), beta = random_values(size_t(n), 23);
    const auto ref = layer_norm_reference(x, n, gamma, beta, 1e-5);
    for (Isa isa : paths()) {
      std::vector<float> y(x.size());
      layer_norm_f32(x.data(), rows, n, gamma.data(), beta.data(), 1e-5f, y.data(), isa);
      for (size_t i = 0; i < y.size(); ++i)
        EXPECT_NEAR(y[i], ref.y[i], 2e-6 * ref.magnitude[i]) << isa_name(isa) << " n " << n << " at " << i;
    }
  }
}

// bfloat16 in and out: the float64 result of the bfloat16 inputs, rounded once (at most 2^-8
// relative: half the spacing of 8 significant bits), plus the float32 error above.
TEST(Elementwise, LayerNormBf16IsTheFloat32ResultRounded) {
  const int64_t rows = 4, n = 1280;
  std::vector<uint16_t> x(size_t(rows * n)), gamma(static_cast<size_t>(n)), beta(static_cast<size_t>(n));
  const auto xv = random_values(x.size(), 31, 2.0f), gv = random_values(gamma.size(), 32), bv = random_values(beta.size(), 33);
  for (size_t i = 0; i < x.size(); ++i) x[i] = bf16_of(xv[i] + 3.0f);
  for (size_t i = 0; i < gamma.size(); ++i) gamma[i] = bf16_of(gv[i]), beta[i] = bf16_of(bv[i]);
  std::vector<float> xf(x.size()), gf(gamma.size()), bf(beta.size());
  for (size_t i = 0; i < x.size(); ++i) xf[i] = float_of(x[i]);
  for (size_t i = 0; i < gamma.size(); ++i) gf[i] = float_of(gamma[i]), bf[i] = float_of(beta[i]);
  const auto ref = layer_norm_reference(xf, n, gf, bf, 1e-5);
  for (Isa isa : paths()) {
    std::vector<uint16_t> y(x.size());
    layer_norm_bf16(x.data(), rows, n, gamma.data(), beta.data(), 1e-5f, y.data(), isa);
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_NEAR(float_of(y[i]), ref.y[i], std::ldexp(std::fabs(ref.y[i]), -8) + 2e-6 * ref.magnitude[i])
          << isa_name(isa) << " at " << i;
  }
}

// In place (y = x) is the same as out of place.
TEST(Elementwise, LayerNormInPlace) {
  const int64_t rows = 3, n = 768;
  const auto x = random_values(size_t(rows * n), 41), gamma = random_values(size_t(n), 42), beta = random_values(size_t(n), 43);
  std::vector<float> out(x.size()), in_place = x;
  layer_norm_f32(x.data(), rows, n, gamma.data(), beta.data(), 1e-5f, out.data());
  layer_norm_f32(in_place.data(), rows, n, gamma.data(), beta.data(), 1e-5f, in_place.data());
  EXPECT_EQ(out, in_place);
}

}  // namespace
