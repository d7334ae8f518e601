#include "wavllm/kernels/q8_0.h"

#include <algorithm>
#include <cmath>

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

void quantize_q8_0(const float* x, int64_t n, int8_t* q, float* scales) {
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    float amax = 0;
    for (int64_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float scale = amax / 127.0f;
    const float inv = scale > 0 ? 1.0f / scale : 0.0f;
    scales[b] = scale;
    for (int64_t i = 0; i < kQ8Block; ++i)
      q[b * kQ8Block + i] = int8_t(std::clamp(std::nearbyint(xb[i] * inv), -127.0f, 127.0f));
  }
}

void dequantize_q8_0(const int8_t* q, const float* scales, int64_t n, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n / kQ8Block; ++b)
    for (int64_t i = 0; i < kQ8Block; ++i) out[b * kQ8Block + i] = float(q[b * kQ8Block + i]) * scales[b];
}

void dequantize_q8_0_bf16(const int8_t* q, const float* scales, int64_t n, uint16_t* out) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n / kQ8Block; ++b)
    for (int64_t i = 0; i < kQ8Block; ++i)
      out[b * kQ8Block + i] = detail::float_to_bf16(float(q[b * kQ8Block + i]) * scales[b]);
}

void matmul_q8_0(const Q8Matrix& w, const float* x, int64_t tokens, float* y, Isa isa) {
  const detail::QuantizedActivations a(x, tokens, w.cols, isa == Isa::Avx512Vnni);
  const int64_t blocks = a.blocks;
  detail::for_each_row_and_token(w.rows, tokens, y, [&](int64_t r, int64_t t) {
    const int8_t* wq = w.q + r * w.cols;
    const float* ws = w.scales + r * blocks;
    const float* xs = &a.scales[t * blocks];
    switch (isa) {
      case Isa::Avx512Vnni: return detail::dot_q8_0_avx512(wq, ws, &a.biased[t * w.cols], xs, blocks);
      case Isa::Avx2: return detail::dot_q8_0_avx2(wq, ws, &a.q[t * w.cols], xs, blocks);
      case Isa::Scalar: break;
    }
    return detail::dot_q8_0_scalar(wq, ws, &a.q[t * w.cols], xs, blocks);
  });
}

namespace detail {

float dot_q8_0_scalar(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks) {
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t s = 0;
    for (int64_t i = 0; i < kQ8Block; ++i) s += int32_t(wq[b * kQ8Block + i]) * int32_t(xq[b * kQ8Block + i]);
    acc += w_scales[b] * x_scales[b] * float(s);
  }
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
