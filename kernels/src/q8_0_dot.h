#pragma once
// The per-instruction-set dot product of one Q8_0 row with one quantized activation row
// (private to the kernels room).
#include <cstdint>

namespace wavllm::kernels::detail {

// sum over blocks b of w_scales[b] * x_scales[b] * sum_i wq[32b + i] * xq[32b + i].
float dot_q8_0_scalar(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks);
float dot_q8_0_avx2(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks);
// x_biased: xq + 128 as unsigned bytes (VNNI multiplies unsigned by signed bytes).
float dot_q8_0_avx512(const int8_t* wq, const float* w_scales, const uint8_t* x_biased, const float* x_scales,
                      int64_t blocks);

}  // namespace wavllm::kernels::detail
