// Dot products with AVX-512 VNNI, two blocks per 64-byte register. VNNI multiplies unsigned by
// signed bytes. Q8_0: the activations come biased by +128 and 128 * sum(w) is taken off per
// block (the sum from a second VNNI product with ones). Q4_0: the nibbles are unsigned already.
#include <immintrin.h>

#include "activations.h"
#include "dense_dots.h"
#include "dots.h"
#include "prefetch.h"
#include "simd_sum.h"

namespace wavllm::kernels::detail {

namespace {

// Lanes 0-7 scaled by a, lanes 8-15 by b.
__m512 two_scales(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

// 16 bytes of a Q4_0 block as its 32 nibble values in order (low nibbles, then high ones).
__m256i unpack_q4(const uint8_t* bytes16) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes16));
  const __m128i low = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), low), _mm_and_si128(b, low));
}

}  // namespace

float dot_q8_0_avx512(const int8_t* wq, const float* w_scales, const uint8_t* x_biased, const float* x_scales,
                      int64_t blocks) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    prefetch_l2(wq + 32 * b, kStreamAheadBytes);
    const __m512i w = _mm512_loadu_si512(wq + 32 * b);
    const __m512i x = _mm512_loadu_si512(x_biased + 32 * b);
    const __m512i biased = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x, w);
    const __m512i wsum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, w);
    const __m512i dot = _mm512_sub_epi32(biased, _mm512_slli_epi32(wsum, 7));
    // Lanes 0-7 are block b, lanes 8-15 block b + 1.
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), two_scales(w_scales[b] * x_scales[b], w_scales[b + 1] * x_scales[b + 1]),
                          acc);
  }
  float total = _mm512_reduce_add_ps(acc);
  if (b < blocks) {  // an odd last block, in 256 bits
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * b));
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x_biased + 32 * b));
    const __m256i biased = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, w);
    const __m256i wsum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), w);
    const __m256i dot = _mm256_sub_epi32(biased, _mm256_slli_epi32(wsum, 7));
    total += horizontal_sum(_mm256_cvtepi32_ps(dot)) * w_scales[b] * x_scales[b];
  }
  return total;
}

float dot_q4_0_avx512(const uint8_t* packed, const uint16_t* w_scales, const int8_t* xq, const float* x_scales,
                      const int32_t* x_sums, int64_t blocks) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m512 acc = _mm512_setzero_ps();
  float correction = 0;  // the odd block's scale * 8 * sum(x)
  int64_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    // 32 bytes = two blocks: [low nibbles 0, low 1 | high 0, high 1] in 128-bit lanes, put in
    // value order [low 0, high 0, low 1, high 1].
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + 16 * b));
    const __m512i split = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(bytes, low)),
                                             _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low), 1);
    const __m512i w = _mm512_shuffle_i64x2(split, split, _MM_SHUFFLE(3, 1, 2, 0));
    const __m512i x = _mm512_loadu_si512(xq + 32 * b);
    // Each of a block's 8 lanes gives up sum(x) of the block: 8 * sum(x) in all.
    const __m512i sums = _mm512_inserti32x8(_mm512_set1_epi32(x_sums[b]), _mm256_set1_epi32(x_sums[b + 1]), 1);
    const __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x), sums);
    const float d0 = bf16_to_float(w_scales[b]) * x_scales[b], d1 = bf16_to_float(w_scales[b + 1]) * x_scales[b + 1];
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), two_scales(d0, d1), acc);
  }
  float total = _mm512_reduce_add_ps(acc);
  if (b < blocks) {  // an odd last block, in 256 bits
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b));
    const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), unpack_q4(packed + 16 * b), x);
    const float d = bf16_to_float(w_scales[b]) * x_scales[b];
    total += horizontal_sum(_mm256_cvtepi32_ps(dot)) * d;
    correction += d * float(8 * x_sums[b]);
  }
  return total - correction;
}

float dot_q4_0_avx512_groups(const uint8_t* packed, const uint16_t* w_scales, const int8_t* x_grouped,
                             const float* x_scales, const float* x_offsets, int64_t groups) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  // Lanes 4k..4k+3 hold block k's sums: its scale goes to those four lanes.
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  __m512 acc = _mm512_setzero_ps();
  __m128 offset = _mm_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    prefetch_l2(packed + 64 * g, kStreamAheadBytes);
    const __m512i bytes = _mm512_loadu_si512(packed + 64 * g);
    const __m512i dot = _mm512_dpbusd_epi32(
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(bytes, low), _mm512_loadu_si512(x_grouped + 128 * g)),
        _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low), _mm512_loadu_si512(x_grouped + 128 * g + 64));
    const __m128i bf16 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w_scales + 4 * g));
    const __m128 w4 = _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(bf16), 16));
    const __m128 scale4 = _mm_mul_ps(w4, _mm_loadu_ps(x_scales + 4 * g));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(spread, _mm512_broadcast_f32x4(scale4)), acc);
    offset = _mm_fmadd_ps(w4, _mm_loadu_ps(x_offsets + 4 * g), offset);
  }
  const __m128 o2 = _mm_add_ps(offset, _mm_movehl_ps(offset, offset));
  return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(_mm_add_ss(o2, _mm_movehdup_ps(o2)));
}

namespace {

// 16 bfloat16 values (bits) widened to float32, exactly.
__m512 widen16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

struct Bf16Ops {
  using T = uint16_t;
  using Acc = __m512;
  static constexpr int64_t step = 16;
  static Acc zero() { return _mm512_setzero_ps(); }
  static __m512 load_w(const T* p) { return widen16(p); }
  static Acc madd(Acc acc, __m512 w, const T* x) { return _mm512_fmadd_ps(w, widen16(x), acc); }
  static float sum(Acc a, Acc b) { return _mm512_reduce_add_ps(_mm512_add_ps(a, b)); }
  static float scalar(T v) { return bf16_to_float(v); }
};

struct F32Ops {
  using T = float;
  using Acc = __m512;
  static constexpr int64_t step = 16;
  static Acc zero() { return _mm512_setzero_ps(); }
  static __m512 load_w(const T* p) { return _mm512_loadu_ps(p); }
  static Acc madd(Acc acc, __m512 w, const T* x) { return _mm512_fmadd_ps(w, _mm512_loadu_ps(x), acc); }
  static float sum(Acc a, Acc b) { return _mm512_reduce_add_ps(_mm512_add_ps(a, b)); }
  static float scalar(T v) { return v; }
};

}  // namespace

float dot_bf16_avx512(const uint16_t* w, const uint16_t* x, int64_t n) { return dense_dot<Bf16Ops>(w, x, n); }

void dots_bf16_avx512(const uint16_t* w, const uint16_t* x, int64_t n, float* out) { dense_block<Bf16Ops>(w, x, n, out); }

float dot_f32_avx512(const float* w, const float* x, int64_t n) { return dense_dot<F32Ops>(w, x, n); }

void dots_f32_avx512(const float* w, const float* x, int64_t n, float* out) { dense_block<F32Ops>(w, x, n, out); }

}  // namespace wavllm::kernels::detail
