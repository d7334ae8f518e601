#pragma once
// Dot products of one dense weight row with K activation rows at once (private to the kernels
// room; included by each instruction-set file with that file's Ops). Each loaded weight vector
// serves all K rows, and every row's sums run in the same order whatever K is: a token's result
// has the same bits alone (K = 1) or in a group (continuous batching relies on that).
//
// Ops: T (the element type), step (elements per vector), Acc, zero(), load_w(const T*) (one
// weight vector, widened as madd needs it), madd(Acc, weights, const T* x), sum(Acc, Acc),
// scalar(T) (one element as float, for the tail).
#include <cstdint>

#include "prefetch.h"

namespace wavllm::kernels::detail {

// out[r * K + k] = row r of w (w + r * w_stride) . row k of x (x + k * x_stride), R x K of them.
// With each weight vector, the line `ahead` elements further on (the same place in the next rows)
// is prefetched. The hardware prefetcher alone leaves the next rows' reads waiting behind the
// arithmetic instead of beside it: bfloat16 at 8 tokens went from ~95 to ~150 GFLOP/s out of
// cache, and 1 token from ~21 to ~28 GB/s (docs/kernels.md).
template <class Ops, int R, int K>
inline void dense_dots(const typename Ops::T* w, int64_t w_stride, const typename Ops::T* x, int64_t x_stride, int64_t n,
                       int64_t ahead, float* out) {
  typename Ops::Acc a0[R][K], a1[R][K];  // two accumulators per dot: the instruction latency is not the limit
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) a0[r][k] = a1[r][k] = Ops::zero();
  int64_t i = 0;
  for (; i + 2 * Ops::step <= n; i += 2 * Ops::step) {
    for (int r = 0; r < R; ++r) {
      prefetch_l2(w + r * w_stride + i, ahead * int64_t(sizeof *w));
      prefetch_l2(w + r * w_stride + i + Ops::step, ahead * int64_t(sizeof *w));
      const auto w0 = Ops::load_w(w + r * w_stride + i), w1 = Ops::load_w(w + r * w_stride + i + Ops::step);
      for (int k = 0; k < K; ++k) {
        a0[r][k] = Ops::madd(a0[r][k], w0, x + k * x_stride + i);
        a1[r][k] = Ops::madd(a1[r][k], w1, x + k * x_stride + i + Ops::step);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) {
      float total = Ops::sum(a0[r][k], a1[r][k]);
      for (int64_t j = i; j < n; ++j) total += Ops::scalar(w[r * w_stride + j]) * Ops::scalar(x[k * x_stride + j]);
      out[r * K + k] = total;
    }
}

// The single dot and the kernels' block, the two entry points each instruction set exports. Both
// prefetch the rows that follow theirs: every caller's weight rows are contiguous.
template <class Ops>
inline float dense_dot(const typename Ops::T* w, const typename Ops::T* x, int64_t n) {
  float out;
  dense_dots<Ops, 1, 1>(w, 0, x, 0, n, n, &out);
  return out;
}

// The kernels' blocks: two weight rows by four activation rows (16 accumulator pairs: 32
// registers' worth with AVX-512's 32).
constexpr int kDenseRows = 2, kDenseGroup = 4;

// kDenseRows rows of w (row-major, n columns) with kDenseGroup rows of x.
template <class Ops>
inline void dense_block(const typename Ops::T* w, const typename Ops::T* x, int64_t n, float* out) {
  dense_dots<Ops, kDenseRows, kDenseGroup>(w, n, x, n, n, kDenseRows * n, out);
}

}  // namespace wavllm::kernels::detail
