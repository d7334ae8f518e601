#pragma once
// Matrix-vector products with float32 weights and activations, for decoding. Each output is one
// dot product whose order of sums depends only on the row length, never on how many rows of x
// are multiplied together: a sequence decoded in a batch gets the bits it gets alone (the
// server's continuous batching relies on that; a BLAS GEMM changes its blocking with the batch).
#include <cstdint>

#include "wavllm/kernels/isa.h"

namespace wavllm::kernels {

// y [tokens, rows] = x [tokens, cols] W^T; w and x row-major. Rows are split over the calling
// thread's OpenMP threads, every row of W read once for all tokens.
void matmul_f32(const float* w, int64_t rows, int64_t cols, const float* x, int64_t tokens, float* y,
                Isa isa = active_isa());

}  // namespace wavllm::kernels
