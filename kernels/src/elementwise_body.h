#pragma once
// The LayerNorm and GELU kernels, written once as plain loops that `omp simd` vectorises for
// whatever instruction set the including file is compiled for: elementwise.cpp (the portable
// baseline), elementwise_avx2.cpp and elementwise_avx512.cpp each instantiate
// WAVLLM_ELEMENTWISE_KERNELS(suffix) (private to the kernels room).
#include <cmath>
#include <cstdint>

#include "activations.h"

namespace wavllm::kernels::detail {

// Internal linkage, like activations.h's conversions: each instruction-set file keeps its own
// copy (a shared one could come from a file compiled for a wider instruction set than the CPU has).
namespace {

struct Float32Values {
  static float load(const float* p, int64_t i) { return p[i]; }
  static void store(float* p, int64_t i, float v) { p[i] = v; }
};
struct Bf16Values {
  static float load(const uint16_t* p, int64_t i) { return bf16_to_float(p[i]); }
  static void store(uint16_t* p, int64_t i, float v) { p[i] = float_to_bf16(v); }
};

template <class V, class T>
inline void layer_norm_rows(const T* x, int64_t rows, int64_t n, const T* gamma, const T* beta, float eps, T* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* in = x + r * n;
    T* out = y + r * n;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) sum += V::load(in, i);
    const float mean = sum / float(n);
    float squares = 0;
#pragma omp simd reduction(+ : squares)
    for (int64_t i = 0; i < n; ++i) {
      const float d = V::load(in, i) - mean;
      squares += d * d;
    }
    // LibTorch's form: (x * rstd - mean * rstd) * gamma + beta.
    const float rstd = 1.0f / std::sqrt(squares / float(n) + eps), shift = -mean * rstd;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) V::store(out, i, (V::load(in, i) * rstd + shift) * V::load(gamma, i) + V::load(beta, i));
  }
}

// e^x for x <= 0 (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial in r, 2^n
// through the exponent bits); below -87 it returns e^-87 (~1.6e-38, the smallest normal's order).
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  // Round to nearest without a rounding instruction (the portable baseline has none): adding
  // 1.5 * 2^23 leaves no fraction bits.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float poly = p * r * r + r + 1.0f;
  const uint32_t scale_bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return poly * scale;
}

// x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, with erfc(u) = t q(t) e^(-u^2), t = 1 / (1 + p u)
// for u = |x| / sqrt 2: 1 + erf is erfc(u) for a negative x and 2 - erfc(u) otherwise. NaN stays NaN.
inline float gelu_value(float x) {
  const float u = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * u);
  const float q = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  const float erfc = q * exp_nonpositive(-u * u);
  return 0.5f * x * (x < 0 ? erfc : 2.0f - erfc);
}

template <class V, class T>
inline void gelu_values(T* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) V::store(x, i, gelu_value(V::load(x, i)));
}

}  // namespace

}  // namespace wavllm::kernels::detail

// The entry points of one instruction set, declared by WAVLLM_ELEMENTWISE_DECLARATIONS.
#define WAVLLM_ELEMENTWISE_DECLARATIONS(suffix)                                                                      \
  namespace wavllm::kernels::detail {                                                                                \
  void layer_norm_f32_##suffix(const float* x, int64_t rows, int64_t n, const float* gamma, const float* beta,       \
                               float eps, float* y);                                                                 \
  void layer_norm_bf16_##suffix(const uint16_t* x, int64_t rows, int64_t n, const uint16_t* gamma,                   \
                                const uint16_t* beta, float eps, uint16_t* y);                                       \
  void gelu_f32_##suffix(float* x, int64_t n);                                                                       \
  void gelu_bf16_##suffix(uint16_t* x, int64_t n);                                                                   \
  }
#define WAVLLM_ELEMENTWISE_KERNELS(suffix)                                                                           \
  namespace wavllm::kernels::detail {                                                                                \
  void layer_norm_f32_##suffix(const float* x, int64_t rows, int64_t n, const float* gamma, const float* beta,       \
                               float eps, float* y) {                                                                \
    layer_norm_rows<Float32Values>(x, rows, n, gamma, beta, eps, y);                                                 \
  }                                                                                                                  \
  void layer_norm_bf16_##suffix(const uint16_t* x, int64_t rows, int64_t n, const uint16_t* gamma,                   \
                                const uint16_t* beta, float eps, uint16_t* y) {                                      \
    layer_norm_rows<Bf16Values>(x, rows, n, gamma, beta, eps, y);                                                    \
  }                                                                                                                  \
  void gelu_f32_##suffix(float* x, int64_t n) { gelu_values<Float32Values>(x, n); }                                  \
  void gelu_bf16_##suffix(uint16_t* x, int64_t n) { gelu_values<Bf16Values>(x, n); }                                 \
  }
