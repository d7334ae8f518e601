#include "wavllm/kernels/q4_0.h"

#include <algorithm>
#include <cmath>

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels {

namespace {

// Value i (0..31) of a block from its 16 packed bytes: low nibbles first, then high ones.
int nibble(const uint8_t* block, int64_t i) { return i < 16 ? block[i] & 0x0f : block[i - 16] >> 4; }

}  // namespace

void quantize_q4_0(const float* x, int64_t n, uint8_t* packed, uint16_t* bf16_scales) {
  for (int64_t b = 0; b < n / kQ4Block; ++b) {
    const float* xb = x + b * kQ4Block;
    float extreme = 0;  // the value of largest magnitude, with its sign
    for (int64_t i = 0; i < kQ4Block; ++i)
      if (std::fabs(xb[i]) > std::fabs(extreme)) extreme = xb[i];
    bf16_scales[b] = detail::float_to_bf16(extreme / -8.0f);
    const float scale = detail::bf16_to_float(bf16_scales[b]);
    const float inv = scale != 0 ? 1.0f / scale : 0.0f;
    uint8_t* out = packed + b * kQ4Block / 2;
    for (int64_t i = 0; i < kQ4Block / 2; ++i) {
      auto code = [&](float v) { return uint8_t(std::clamp(std::nearbyint(v * inv) + 8.0f, 0.0f, 15.0f)); };
      out[i] = uint8_t(code(xb[i]) | (code(xb[i + 16]) << 4));
    }
  }
}

// Both halves of each block in one loop over its 16 bytes (a loop the compiler vectorizes).
template <class Out, class Store>
void expand_q4_0(const uint8_t* packed, const uint16_t* bf16_scales, int64_t n, Out* out, const Store& store) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n / kQ4Block; ++b) {
    const float scale = detail::bf16_to_float(bf16_scales[b]);
    const uint8_t* in = packed + b * kQ4Block / 2;
    Out* o = out + b * kQ4Block;
    for (int64_t i = 0; i < kQ4Block / 2; ++i) {
      o[i] = store(float(int(in[i] & 0x0f) - 8) * scale);
      o[i + 16] = store(float(int(in[i] >> 4) - 8) * scale);
    }
  }
}

void dequantize_q4_0(const uint8_t* packed, const uint16_t* bf16_scales, int64_t n, float* out) {
  expand_q4_0(packed, bf16_scales, n, out, [](float v) { return v; });
}

void dequantize_q4_0_bf16(const uint8_t* packed, const uint16_t* bf16_scales, int64_t n, uint16_t* out) {
  expand_q4_0(packed, bf16_scales, n, out, [](float v) { return detail::float_to_bf16(v); });
}

void matmul_q4_0(const Q4Matrix& w, const float* x, int64_t tokens, float* y, Isa isa) {
  const detail::QuantizedActivations a(x, tokens, w.cols, false);
  const int64_t blocks = a.blocks;
  if (isa != Isa::Scalar) {
    const bool wide = isa == Isa::Avx512Vnni;
    const auto groups = wide ? detail::dot_q4_0_avx512_groups : detail::dot_q4_0_avx2_groups;
    const auto blockwise = wide ? detail::dot_q4_0_avx512 : detail::dot_q4_0_avx2;
    const detail::Q4Groups grouped(a, tokens);
    const int64_t done = 4 * grouped.groups;  // blocks in whole groups; the rest one or two at a time
    detail::for_each_row_and_token(w.rows, tokens, y, [&](int64_t r, int64_t t) {
      const uint8_t* wp = w.packed + r * w.cols / 2;
      const uint16_t* ws = w.scales + r * blocks;
      const size_t g0 = size_t(t * grouped.groups);
      // Pointers, not &v[i]: with fewer than 4 blocks the grouped vectors are empty.
      float sum = groups(wp, ws, grouped.x.data() + 128 * g0, grouped.scales.data() + 4 * g0,
                         grouped.offsets.data() + 4 * g0, grouped.groups);
      if (done < blocks)
        sum += blockwise(wp + done * kQ4Block / 2, ws + done, a.q.data() + t * w.cols + done * kQ4Block,
                         a.scales.data() + t * blocks + done, a.sums.data() + t * blocks + done, blocks - done);
      return sum;
    });
    return;
  }
  detail::for_each_row_and_token(w.rows, tokens, y, [&](int64_t r, int64_t t) {
    const uint8_t* wp = w.packed + r * w.cols / 2;
    const uint16_t* ws = w.scales + r * blocks;
    const int8_t* xq = &a.q[t * w.cols];
    const float* xs = &a.scales[t * blocks];
    return detail::dot_q4_0_scalar(wp, ws, xq, xs, &a.sums[t * blocks], blocks);
  });
}

namespace detail {

float dot_q4_0_scalar(const uint8_t* packed, const uint16_t* w_scales, const int8_t* xq, const float* x_scales,
                      const int32_t* x_sums, int64_t blocks) {
  float acc = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t s = 0;
    for (int64_t i = 0; i < kQ4Block; ++i) s += nibble(packed + b * kQ4Block / 2, i) * int32_t(xq[b * kQ4Block + i]);
    acc += bf16_to_float(w_scales[b]) * x_scales[b] * float(s - 8 * x_sums[b]);
  }
  return acc;
}

}  // namespace detail

}  // namespace wavllm::kernels
