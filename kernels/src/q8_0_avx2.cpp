// Q8_0 dot product with AVX2: |x| times sign(x) * w as unsigned x signed bytes (maddubs), one
// block of 32 per register.
#include <immintrin.h>

#include "q8_0_dot.h"

namespace wavllm::kernels::detail {

float dot_q8_0_avx2(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * b));
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b));
    // Pairs of products fit int16: |x| <= 127 and |w| <= 128.
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
    const __m256i sums = _mm256_madd_epi16(pairs, ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(w_scales[b] * x_scales[b]), acc);
  }
  const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(quad, _mm_movehdup_ps(quad)));
}

}  // namespace wavllm::kernels::detail
