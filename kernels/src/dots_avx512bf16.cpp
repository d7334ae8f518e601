// bfloat16 dot product with AVX-512 BF16: pairs of bfloat16 products summed into float32 lanes,
// 32 values per instruction.
#include <immintrin.h>

#include "activations.h"
#include "dense_dots.h"
#include "dots.h"

namespace wavllm::kernels::detail {

namespace {

struct Bf16Ops {
  using T = uint16_t;
  using Acc = __m512;
  static constexpr int64_t step = 32;
  static Acc zero() { return _mm512_setzero_ps(); }
  static __m512bh load_w(const T* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static Acc madd(Acc acc, __m512bh w, const T* x) { return _mm512_dpbf16_ps(acc, w, (__m512bh)_mm512_loadu_si512(x)); }
  static float sum(Acc a, Acc b) { return _mm512_reduce_add_ps(_mm512_add_ps(a, b)); }
  static float scalar(T v) { return bf16_to_float(v); }
};

}  // namespace

float dot_bf16_avx512bf16(const uint16_t* w, const uint16_t* x, int64_t n) { return dense_dot<Bf16Ops>(w, x, n); }

void dots_bf16_avx512bf16(const uint16_t* w, const uint16_t* x, int64_t n, float* out) { dense_block<Bf16Ops>(w, x, n, out); }

}  // namespace wavllm::kernels::detail
