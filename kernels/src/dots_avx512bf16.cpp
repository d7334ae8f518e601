// bfloat16 dot product with AVX-512 BF16: pairs of bfloat16 products summed into float32 lanes,
// 32 values per instruction.
#include <immintrin.h>

#include "activations.h"
#include "dots.h"

namespace wavllm::kernels::detail {

float dot_bf16_avx512bf16(const uint16_t* w, const uint16_t* x, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {  // two accumulators: the instruction's latency is not the limit
    acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512(w + i), (__m512bh)_mm512_loadu_si512(x + i));
    acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_loadu_si512(w + i + 32), (__m512bh)_mm512_loadu_si512(x + i + 32));
  }
  float total = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  for (; i < n; ++i) total += bf16_to_float(w[i]) * bf16_to_float(x[i]);
  return total;
}

}  // namespace wavllm::kernels::detail
