#include "wavllm/kernels/q8_0.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "q8_0_dot.h"

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
  for (int64_t b = 0; b < n / kQ8Block; ++b)
    for (int64_t i = 0; i < kQ8Block; ++i) out[b * kQ8Block + i] = float(q[b * kQ8Block + i]) * scales[b];
}

void matmul_q8_0(const Q8Matrix& w, const float* x, int64_t tokens, float* y, Isa isa) {
  const int64_t blocks = w.cols / kQ8Block;
  std::vector<int8_t> xq(size_t(tokens * w.cols));
  std::vector<float> xs(size_t(tokens * blocks));
  for (int64_t t = 0; t < tokens; ++t) quantize_q8_0(x + t * w.cols, w.cols, &xq[t * w.cols], &xs[t * blocks]);
  std::vector<uint8_t> biased;
  if (isa == Isa::Avx512Vnni) {
    biased.resize(xq.size());
    for (size_t i = 0; i < xq.size(); ++i) biased[i] = uint8_t(int(xq[i]) + 128);
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < w.rows; ++r) {
    const int8_t* wq = w.q + r * w.cols;
    const float* ws = w.scales + r * blocks;
    // Every token against this row while it is in cache.
    for (int64_t t = 0; t < tokens; ++t) {
      const float* ts = &xs[t * blocks];
      float v = 0;
      switch (isa) {
        case Isa::Avx512Vnni: v = detail::dot_q8_0_avx512(wq, ws, &biased[t * w.cols], ts, blocks); break;
        case Isa::Avx2: v = detail::dot_q8_0_avx2(wq, ws, &xq[t * w.cols], ts, blocks); break;
        case Isa::Scalar: v = detail::dot_q8_0_scalar(wq, ws, &xq[t * w.cols], ts, blocks); break;
      }
      y[t * w.rows + r] = v;
    }
  }
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
