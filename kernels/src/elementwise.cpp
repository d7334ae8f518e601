#include "wavllm/kernels/elementwise.h"

#include "elementwise_body.h"

WAVLLM_ELEMENTWISE_KERNELS(baseline)
WAVLLM_ELEMENTWISE_DECLARATIONS(avx2)
WAVLLM_ELEMENTWISE_DECLARATIONS(avx512)

namespace wavllm::kernels {

namespace {

// Below this many values one thread is quicker than waking the others.
constexpr int64_t kParallelValues = 1 << 15;

template <class T>
using LayerNormRows = void (*)(const T*, int64_t, int64_t, const T*, const T*, float, T*);

template <class T>
void layer_norm(LayerNormRows<T> kernel, const T* x, int64_t rows, int64_t n, const T* gamma, const T* beta, float eps,
                T* y) {
#pragma omp parallel for schedule(static) if (rows * n >= kParallelValues)
  for (int64_t r = 0; r < rows; ++r) kernel(x + r * n, 1, n, gamma, beta, eps, y + r * n);
}

}  // namespace

void layer_norm_f32(const float* x, int64_t rows, int64_t n, const float* gamma, const float* beta, float eps, float* y,
                    Isa isa) {
  const LayerNormRows<float> kernel = isa == Isa::Avx512Vnni ? detail::layer_norm_f32_avx512
                                      : isa == Isa::Avx2     ? detail::layer_norm_f32_avx2
                                                             : detail::layer_norm_f32_baseline;
  layer_norm(kernel, x, rows, n, gamma, beta, eps, y);
}

void layer_norm_bf16(const uint16_t* x, int64_t rows, int64_t n, const uint16_t* gamma, const uint16_t* beta, float eps,
                     uint16_t* y, Isa isa) {
  const LayerNormRows<uint16_t> kernel = isa == Isa::Avx512Vnni ? detail::layer_norm_bf16_avx512
                                         : isa == Isa::Avx2     ? detail::layer_norm_bf16_avx2
                                                                : detail::layer_norm_bf16_baseline;
  layer_norm(kernel, x, rows, n, gamma, beta, eps, y);
}

}  // namespace wavllm::kernels
