#pragma once
// Q4_0: weights in blocks of 32 along a row, each block 16 bytes of 4-bit values and one
// bfloat16 scale (18 bytes per 32 weights, 4.5 bits each: the size of llama.cpp's Q4_0).
// Byte j of a block holds value j in its low nibble and value j + 16 in its high nibble;
// w = (nibble - 8) * scale (docs/kernels.md).
#include <cstdint>

#include "wavllm/kernels/isa.h"

namespace wavllm::kernels {

constexpr int64_t kQ4Block = 32;

// Blocks of x (n a multiple of 32): the value of largest magnitude m maps to -8
// (scale = m / -8, rounded to bfloat16), the others to clamp(round(x / scale) + 8, 0, 15).
void quantize_q4_0(const float* x, int64_t n, uint8_t* packed, uint16_t* bf16_scales);
void dequantize_q4_0(const uint8_t* packed, const uint16_t* bf16_scales, int64_t n, float* out);
// The same, each value rounded to bfloat16: the bits of out[i].
void dequantize_q4_0_bf16(const uint8_t* packed, const uint16_t* bf16_scales, int64_t n, uint16_t* out);

// A row-major Q4_0 matrix [rows, cols]: packed [rows * cols / 2], scales [rows * cols / 32].
struct Q4Matrix {
  const uint8_t* packed;
  const uint16_t* scales;
  int64_t rows, cols;
};

// y [tokens, rows] = x [tokens, cols] W^T with x quantized to Q8_0 per token (as matmul_q8_0).
void matmul_q4_0(const Q4Matrix& w, const float* x, int64_t tokens, float* y, Isa isa = active_isa());

}  // namespace wavllm::kernels
