#pragma once
// The per-instruction-set dot products of one quantized weight row with one Q8_0 activation row
// (private to the kernels room). Each returns sum over blocks b of
// w_scale[b] * x_scale[b] * (integer dot product of block b).
#include <cstdint>

namespace wavllm::kernels::detail {

float dot_q8_0_scalar(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks);
float dot_q8_0_avx2(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks);
// x_biased: xq + 128 as unsigned bytes (VNNI multiplies unsigned by signed bytes).
float dot_q8_0_avx512(const int8_t* wq, const float* w_scales, const uint8_t* x_biased, const float* x_scales,
                      int64_t blocks);

// Q4_0 weights (nibbles n, w = n - 8): sum n * x is an unsigned x signed product, and
// 8 * sum(x) per block (x_sums) is taken off.
float dot_q4_0_scalar(const uint8_t* packed, const uint16_t* w_scales, const int8_t* xq, const float* x_scales,
                      const int32_t* x_sums, int64_t blocks);
float dot_q4_0_avx2(const uint8_t* packed, const uint16_t* w_scales, const int8_t* xq, const float* x_scales,
                    const int32_t* x_sums, int64_t blocks);
float dot_q4_0_avx512(const uint8_t* packed, const uint16_t* w_scales, const int8_t* xq, const float* x_scales,
                      const int32_t* x_sums, int64_t blocks);

// Q4_0 four blocks at a time, the activations laid out for it once per row of x (Q4Groups): a
// 64-byte load of packed weights gives the low nibbles of four blocks (values 0-15 of each) and
// the high nibbles (values 16-31) without any shuffle, each multiplied by the matching 64
// activation bytes. `groups` groups of 4 blocks; the caller adds the remaining blocks.
float dot_q4_0_avx512_groups(const uint8_t* packed, const uint16_t* w_scales, const int8_t* x_grouped,
                             const float* x_scales, const float* x_offsets, int64_t groups);
// The same layout with AVX2, two blocks (32 bytes) per step: maddubs of the unsigned nibbles and
// the signed activations.
float dot_q4_0_avx2_groups(const uint8_t* packed, const uint16_t* w_scales, const int8_t* x_grouped,
                           const float* x_scales, const float* x_offsets, int64_t groups);

// bfloat16 weights times bfloat16 activations (bits), n of each, summed in float32.
float dot_bf16_scalar(const uint16_t* w, const uint16_t* x, int64_t n);
float dot_bf16_avx2(const uint16_t* w, const uint16_t* x, int64_t n);
float dot_bf16_avx512(const uint16_t* w, const uint16_t* x, int64_t n);
float dot_bf16_avx512bf16(const uint16_t* w, const uint16_t* x, int64_t n);  // needs AVX512_BF16

// float32 rows, n of each: a fixed order of sums for a given n.
float dot_f32_scalar(const float* w, const float* x, int64_t n);
float dot_f32_avx2(const float* w, const float* x, int64_t n);
float dot_f32_avx512(const float* w, const float* x, int64_t n);

// kDenseRows weight rows (w, w + n, ...) with kDenseGroup activation rows (x, x + n, ...):
// out[i * kDenseGroup + k] has the bits of the single dot of weight row i and activation row k
// (dense_dots.h).
void dots_bf16_avx2(const uint16_t* w, const uint16_t* x, int64_t n, float* out);
void dots_bf16_avx512(const uint16_t* w, const uint16_t* x, int64_t n, float* out);
void dots_bf16_avx512bf16(const uint16_t* w, const uint16_t* x, int64_t n, float* out);
void dots_f32_avx2(const float* w, const float* x, int64_t n, float* out);
void dots_f32_avx512(const float* w, const float* x, int64_t n, float* out);

}  // namespace wavllm::kernels::detail
