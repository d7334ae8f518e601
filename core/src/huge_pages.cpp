#include "wavllm/core/huge_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace wavllm {

void* map_at_huge_boundary(size_t bytes, int fd) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), span = bytes + kHugePageBytes;
  void* reserved = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t aligned = (start + kHugePageBytes - 1) & ~(uintptr_t(kHugePageBytes) - 1);
  void* m = fd < 0 ? mmap(reinterpret_cast<void*>(aligned), bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                   : mmap(reinterpret_cast<void*>(aligned), bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (m == MAP_FAILED) {
    const int error = errno;
    munmap(reserved, span);
    errno = error;
    return nullptr;
  }
  if (aligned > start) munmap(reserved, aligned - start);
  const uintptr_t end = start + span, used_end = aligned + (bytes + page - 1) / page * page;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  madvise(m, bytes, MADV_HUGEPAGE);
  return m;
}

}  // namespace wavllm
