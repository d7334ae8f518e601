#pragma once
// LayerNorm over float32 or bfloat16 arrays (bfloat16 as bits), torch-free, on the
// calling thread's OpenMP threads, one source compiled per instruction set (docs/kernels.md).
// bfloat16 is widened, computed in float32 and rounded once to bfloat16 (ties to even), as
// LibTorch computes it, at the float32 rate: LibTorch 1.13's bfloat16 LayerNorm ran 9-10x
// slower than its float32 one, and 14-15x slower than this, on an AVX2 Zen3 (eval/RESULTS.md).
#include <cstdint>

#include "wavllm/kernels/isa.h"

namespace wavllm::kernels {

// y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta for each of `rows` rows of n values
// (population variance, statistics in float32 in two passes over the row). y may be x.
void layer_norm_f32(const float* x, int64_t rows, int64_t n, const float* gamma, const float* beta, float eps, float* y,
                    Isa isa = active_isa());
void layer_norm_bf16(const uint16_t* x, int64_t rows, int64_t n, const uint16_t* gamma, const uint16_t* beta, float eps,
                     uint16_t* y, Isa isa = active_isa());

}  // namespace wavllm::kernels
