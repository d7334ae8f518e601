#pragma once
// Software prefetch of the weight stream into L2 (private to the kernels room). On these VMs the
// hardware prefetcher alone leaves matrix-vector products at 65-80 % of a streaming read
// (docs/kernels.md has the measurements).
#include <cstdint>

namespace wavllm::kernels::detail {

// How far ahead of its reads a quantized row loop asks for weights: 4 KB measured best among
// 1-8 KB (1 KB, the old distance, lost ~20 %).
constexpr int64_t kStreamAheadBytes = 4096;

// Asks for the cache line `bytes` past p into L2. Only an address: it may lie past the matrix
// (a prefetch never faults), hence the integer arithmetic.
inline void prefetch_l2(const void* p, int64_t bytes) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(bytes)), 0, 2);
}

}  // namespace wavllm::kernels::detail
