#pragma once
// Matrix-vector products with bfloat16 weights and activations, for decoding: memory-bound, so
// the kernel only has to stream the weights once. Every product of two bfloat16 values is exact
// in float32; the sums are float32 (AVX-512 BF16's dot product where the CPU has it, else each
// value widened to float32 and multiplied-added).
#include <cstdint>

#include "wavllm/kernels/isa.h"

namespace wavllm::kernels {

// y [tokens, rows] = x [tokens, cols] W^T; w and x: bfloat16 bits, row-major. Rows are split
// over the calling thread's OpenMP threads.
void matmul_bf16(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t tokens, float* y,
                 Isa isa = active_isa());

// Whether the AVX-512 path has the BF16 dot-product instruction on this CPU (and
// WAVLLM_NO_AVX512_BF16 is not set: the tests run the path without it too).
bool has_avx512_bf16();

}  // namespace wavllm::kernels
