#pragma once
// bfloat16 <-> float32 over arrays, on the calling thread's OpenMP threads (LibTorch 1.13's
// bfloat16 -> float32 copy ran at 2.7 ns per value on an AVX2 Zen3).
#include <cstdint>

namespace wavllm::kernels {

// out[i] = in[i] widened: the bfloat16 bits as the upper half of a float32 (exact).
void widen_bf16(const uint16_t* in, int64_t n, float* out);
// Each value rounded to the nearest bfloat16 (ties to even, NaN kept a NaN), in place: the same
// values as LibTorch's float32 -> bfloat16 -> float32 round trip.
void round_to_bf16(float* x, int64_t n);

}  // namespace wavllm::kernels
