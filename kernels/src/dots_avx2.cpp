// Dot products with AVX2, one block of 32 per register. Q8_0: |x| times sign(x) * w as
// unsigned x signed bytes (maddubs). Q4_0: the nibbles are the unsigned operand.
#include <immintrin.h>

#include "activations.h"
#include "dense_dots.h"
#include "dots.h"
#include "prefetch.h"
#include "simd_sum.h"

namespace wavllm::kernels::detail {


float dot_q8_0_avx2(const int8_t* wq, const float* w_scales, const int8_t* xq, const float* x_scales, int64_t blocks) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    prefetch_l2(wq + 32 * b, kStreamAheadBytes);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * b));
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b));
    // Pairs of products fit int16: |x| <= 127 and |w| <= 128.
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
    const __m256i sums = _mm256_madd_epi16(pairs, ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(w_scales[b] * x_scales[b]), acc);
  }
  return horizontal_sum(acc);
}

float dot_q4_0_avx2(const uint8_t* packed, const uint16_t* w_scales, const int8_t* xq, const float* x_scales,
                    const int32_t* x_sums, int64_t blocks) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m128i low = _mm_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  float correction = 0;  // sum of scale * 8 * sum(x) over blocks
  for (int64_t b = 0; b < blocks; ++b) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + 16 * b));
    const __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), _mm_and_si128(bytes, low));
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b));
    const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
    const float d = bf16_to_float(w_scales[b]) * x_scales[b];
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(d), acc);
    correction += d * float(8 * x_sums[b]);
  }
  return horizontal_sum(acc) - correction;
}

float dot_q4_0_avx2_groups(const uint8_t* packed, const uint16_t* w_scales, const int8_t* x_grouped,
                           const float* x_scales, const float* x_offsets, int64_t groups) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  // Lanes 0-3 hold the first block's sums, lanes 4-7 the second's.
  const __m256i spread = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0);
  __m256 acc = _mm256_setzero_ps();
  __m128 offset = _mm_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    prefetch_l2(packed + 64 * g, kStreamAheadBytes);
    const __m128i bf16 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w_scales + 4 * g));
    const __m128 w4 = _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(bf16), 16));
    const __m128 scale4 = _mm_mul_ps(w4, _mm_loadu_ps(x_scales + 4 * g));
    offset = _mm_fmadd_ps(w4, _mm_loadu_ps(x_offsets + 4 * g), offset);
    for (int h = 0; h < 2; ++h) {  // blocks 2h and 2h + 1 of the group
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + 64 * g + 32 * h));
      const int8_t* x = x_grouped + 128 * g + 32 * h;
      // Pairs of products fit int16: nibbles <= 15 and |x| <= 127.
      const __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(bytes, low), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
      const __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), low),
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64)));
      const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones));
      const __m128 pair = h == 0 ? scale4 : _mm_movehl_ps(scale4, scale4);
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_permutevar8x32_ps(_mm256_set_m128(pair, pair), spread), acc);
    }
  }
  const __m128 o2 = _mm_add_ps(offset, _mm_movehl_ps(offset, offset));
  return horizontal_sum(acc) - _mm_cvtss_f32(_mm_add_ss(o2, _mm_movehdup_ps(o2)));
}

namespace {

// 8 bfloat16 values (bits) widened to float32, exactly.
__m256 widen(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

}  // namespace

namespace {

struct Bf16Ops {
  using T = uint16_t;
  using Acc = __m256;
  static constexpr int64_t step = 8;
  static Acc zero() { return _mm256_setzero_ps(); }
  static __m256 load_w(const T* p) { return widen(p); }
  static Acc madd(Acc acc, __m256 w, const T* x) { return _mm256_fmadd_ps(w, widen(x), acc); }
  static float sum(Acc a, Acc b) { return horizontal_sum(_mm256_add_ps(a, b)); }
  static float scalar(T v) { return bf16_to_float(v); }
};

struct F32Ops {
  using T = float;
  using Acc = __m256;
  static constexpr int64_t step = 8;
  static Acc zero() { return _mm256_setzero_ps(); }
  static __m256 load_w(const T* p) { return _mm256_loadu_ps(p); }
  static Acc madd(Acc acc, __m256 w, const T* x) { return _mm256_fmadd_ps(w, _mm256_loadu_ps(x), acc); }
  static float sum(Acc a, Acc b) { return horizontal_sum(_mm256_add_ps(a, b)); }
  static float scalar(T v) { return v; }
};

}  // namespace

float dot_bf16_avx2(const uint16_t* w, const uint16_t* x, int64_t n) { return dense_dot<Bf16Ops>(w, x, n); }

// One row at a time: sixteen 256-bit registers hold one row's accumulators for the group.
void dots_bf16_avx2(const uint16_t* w, const uint16_t* x, int64_t n, float* out) {
  for (int r = 0; r < kDenseRows; ++r) dense_dots<Bf16Ops, 1, kDenseGroup>(w + r * n, 0, x, n, n, kDenseRows * n, out + r * kDenseGroup);
}

float dot_f32_avx2(const float* w, const float* x, int64_t n) { return dense_dot<F32Ops>(w, x, n); }

// One row at a time: sixteen 256-bit registers hold one row's accumulators for the group.
void dots_f32_avx2(const float* w, const float* x, int64_t n, float* out) {
  for (int r = 0; r < kDenseRows; ++r) dense_dots<F32Ops, 1, kDenseGroup>(w + r * n, 0, x, n, n, kDenseRows * n, out + r * kDenseGroup);
}

}  // namespace wavllm::kernels::detail
