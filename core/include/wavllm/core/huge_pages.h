#pragma once
// Mappings that transparent huge pages can back (docs/kernels.md, "Tensor memory" and
// "Weights in huge pages").
#include <cstddef>

namespace wavllm {

constexpr size_t kHugePageBytes = size_t(2) << 20;

// `bytes` mapped at a 2-MiB boundary and advised to use huge pages (MADV_HUGEPAGE: advice only,
// the mapping works without them): with fd < 0 anonymous read-write memory, else the file read-only
// from offset 0, so its offsets and the addresses agree modulo 2 MiB and the page cache's 2-MiB
// folios can be mapped whole. Maps 2 MiB more and unmaps the unaligned head and tail. nullptr
// (errno set) when the system refuses. munmap(p, bytes) releases it.
void* map_at_huge_boundary(size_t bytes, int fd);

}  // namespace wavllm
