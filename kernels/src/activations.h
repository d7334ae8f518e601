#pragma once
// Activations quantized to Q8_0 once per product, and the row loop every quantized product
// shares (private to the kernels room).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dense_dots.h"

namespace wavllm::kernels::detail {

// tokens rows of x [tokens, cols], each quantized to Q8_0: values, scales, the values biased
// by +128 as unsigned bytes (for VNNI's unsigned x signed products, when asked), and each
// block's sum of values.
struct QuantizedActivations {
  QuantizedActivations(const float* x, int64_t tokens, int64_t cols, bool biased_copy);
  int64_t cols, blocks;
  std::vector<int8_t> q;
  std::vector<float> scales;
  std::vector<uint8_t> biased;
  std::vector<int32_t> sums;
};

// Q8_0 activations re-laid for the grouped Q4_0 products, per token and group g of 4 blocks:
// x[128 g + 16 k + i] = value i of block 4g + k and x[128 g + 64 + 16 k + i] = value 16 + i
// (i < 16); scales[4 g + k] = block 4g + k's scale; offsets[4 g + k] = scale x 8 x the block's
// sum (the nibbles' offset: w = nibble - 8), taken off after each block's weight scale.
struct Q4Groups {
  Q4Groups(const QuantizedActivations& a, int64_t tokens);
  int64_t groups;  // per token
  std::vector<int8_t> x;
  std::vector<float> scales, offsets;
};

// y[t * rows + r] = dot(r, t) for every row (split over the calling thread's OpenMP threads)
// and token (inner: the row stays in cache).
template <class Dot>
void for_each_row_and_token(int64_t rows, int64_t tokens, float* y, const Dot& dot) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tokens; ++t) y[t * rows + r] = dot(r, t);
}

// for_each_row_and_token for dense weights, in blocks of kDenseRows rows x kDenseGroup tokens
// through block(r, t, out) (out[i * kDenseGroup + k]: row r + i, token t + k; each weight loaded
// once for the block's tokens), the rest through one(r, t).
template <class Block, class One>
void for_each_row_and_token_block(int64_t rows, int64_t tokens, float* y, const Block& block, const One& one) {
  const int64_t blocks = (rows + kDenseRows - 1) / kDenseRows;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = b * kDenseRows, n = std::min<int64_t>(kDenseRows, rows - r0);
    int64_t t = 0;
    if (n == kDenseRows)
      for (; t + kDenseGroup <= tokens; t += kDenseGroup) {
        float out[kDenseRows * kDenseGroup];
        block(r0, t, out);
        for (int i = 0; i < kDenseRows; ++i)
          for (int k = 0; k < kDenseGroup; ++k) y[(t + k) * rows + r0 + i] = out[i * kDenseGroup + k];
      }
    for (; t < tokens; ++t)
      for (int64_t i = 0; i < n; ++i) y[t * rows + r0 + i] = one(r0 + i, t);
  }
}

// y [tokens, rows] = x W^T for dense weights: one(w_row, x_row, n) per dot, block(w, x, n, out)
// per kDenseRows x kDenseGroup block (null: the block from one()). Both give a dot the same bits.
template <class T>
void dense_matmul(const T* w, int64_t rows, int64_t cols, const T* x, int64_t tokens, float* y,
                  float (*one)(const T*, const T*, int64_t), void (*block)(const T*, const T*, int64_t, float*)) {
  for_each_row_and_token_block(
      rows, tokens, y,
      [&](int64_t r, int64_t t, float* out) {
        if (block) return block(w + r * cols, x + t * cols, cols, out);
        for (int i = 0; i < kDenseRows; ++i)
          for (int k = 0; k < kDenseGroup; ++k) out[i * kDenseGroup + k] = one(w + (r + i) * cols, x + (t + k) * cols, cols);
      },
      [&](int64_t r, int64_t t) { return one(w + r * cols, x + t * cols, cols); });
}

// Static: every instruction-set file gets its own copy (a shared one could come from a file
// compiled for a wider instruction set than the CPU has).
static inline float bf16_to_float(uint16_t bits) {
  const uint32_t wide = uint32_t(bits) << 16;
  float v;
  std::memcpy(&v, &wide, sizeof v);
  return v;
}

// Round to nearest, ties to even; a NaN becomes LibTorch's bfloat16 NaN (rounding its bits
// could carry into the sign).
static inline uint16_t float_to_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  bits += 0x7fff + ((bits >> 16) & 1);
  return nan ? uint16_t(0x7fc0) : uint16_t(bits >> 16);
}

}  // namespace wavllm::kernels::detail
