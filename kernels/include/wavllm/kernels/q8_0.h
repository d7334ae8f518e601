#pragma once
// Q8_0: weights in blocks of 32 along a row, each block 32 int8 values and one float32 scale,
// w = q * scale (docs/kernels.md). A row of n columns is n int8 values, and n / 32 scales.
#include <cstdint>

#include "wavllm/kernels/isa.h"

namespace wavllm::kernels {

constexpr int64_t kQ8Block = 32;

// Blocks of x (n a multiple of 32): scale = max |x| / 127 (0 for an all-zero block),
// q = round(x / scale), so q is in [-127, 127].
void quantize_q8_0(const float* x, int64_t n, int8_t* q, float* scales);
// Blocks spread over the calling thread's OpenMP threads.
void dequantize_q8_0(const int8_t* q, const float* scales, int64_t n, float* out);
// The same, each value rounded to bfloat16 (to nearest, ties to even): the bits of out[i].
void dequantize_q8_0_bf16(const int8_t* q, const float* scales, int64_t n, uint16_t* out);

// A row-major Q8_0 matrix [rows, cols] (cols a multiple of 32): q [rows * cols],
// scales [rows * cols / 32].
struct Q8Matrix {
  const int8_t* q;
  const float* scales;
  int64_t rows, cols;
};

// y [tokens, rows] = x [tokens, cols] W^T, each token's activations quantized to Q8_0 first
// (integer dot products per block, then the two scales). Rows are split over the calling
// thread's OpenMP threads (the engine's one pool).
void matmul_q8_0(const Q8Matrix& w, const float* x, int64_t tokens, float* y, Isa isa = active_isa());

}  // namespace wavllm::kernels
