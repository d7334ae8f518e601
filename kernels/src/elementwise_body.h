#pragma once
// The LayerNorm kernels, written once as plain loops that `omp simd` vectorises for
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

}  // namespace

}  // namespace wavllm::kernels::detail

// The entry points of one instruction set, declared by WAVLLM_ELEMENTWISE_DECLARATIONS.
#define WAVLLM_ELEMENTWISE_DECLARATIONS(suffix)                                                                      \
  namespace wavllm::kernels::detail {                                                                                \
  void layer_norm_f32_##suffix(const float* x, int64_t rows, int64_t n, const float* gamma, const float* beta,       \
                               float eps, float* y);                                                                 \
  void layer_norm_bf16_##suffix(const uint16_t* x, int64_t rows, int64_t n, const uint16_t* gamma,                   \
                                const uint16_t* beta, float eps, uint16_t* y);                                       \
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
  }
