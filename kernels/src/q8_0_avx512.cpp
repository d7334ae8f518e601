// Q8_0 dot product with AVX-512 VNNI: two blocks per 64-byte register. VNNI multiplies unsigned
// by signed bytes, so the activations come biased by +128 and 128 * sum(w) is taken off per
// block (the sum from a second VNNI product with ones).
#include <immintrin.h>

#include "q8_0_dot.h"

namespace wavllm::kernels::detail {

float dot_q8_0_avx512(const int8_t* wq, const float* w_scales, const uint8_t* x_biased, const float* x_scales,
                      int64_t blocks) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    const __m512i w = _mm512_loadu_si512(wq + 32 * b);
    const __m512i x = _mm512_loadu_si512(x_biased + 32 * b);
    const __m512i biased = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x, w);
    const __m512i wsum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, w);
    const __m512i dot = _mm512_sub_epi32(biased, _mm512_slli_epi32(wsum, 7));
    // Lanes 0-7 are block b, lanes 8-15 block b + 1.
    const __m512 scale = _mm512_insertf32x8(_mm512_set1_ps(w_scales[b] * x_scales[b]),
                                            _mm256_set1_ps(w_scales[b + 1] * x_scales[b + 1]), 1);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
  }
  float total = _mm512_reduce_add_ps(acc);
  if (b < blocks) {  // an odd last block, in 256 bits
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * b));
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x_biased + 32 * b));
    const __m256i biased = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, w);
    const __m256i wsum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), w);
    const __m256i dot = _mm256_sub_epi32(biased, _mm256_slli_epi32(wsum, 7));
    const __m256 v = _mm256_cvtepi32_ps(dot);
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
    total += _mm_cvtss_f32(_mm_add_ss(quad, _mm_movehdup_ps(quad))) * w_scales[b] * x_scales[b];
  }
  return total;
}

}  // namespace wavllm::kernels::detail
