#pragma once
// LibTorch's CPU tensors of 32 MiB and more from huge-page-backed mappings kept for reuse
// (docs/kernels.md, "Tensor memory"). glibc maps every block from 32 MiB afresh and unmaps it
// when freed (below that its threshold adapts and keeps blocks in its heap), so each encoder
// layer's attention scores fault their pages in again, 4 KiB at a time: on the project's VMs page faults were 40 % of a
// bfloat16 encoder run, and the encoders ran 3-6x slower than with this cache (eval/RESULTS.md).
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace wavllm {

// Blocks of memory from anonymous mappings, whole 4-KiB pages, 2-MiB aligned and advised to
// use transparent huge pages (MADV_HUGEPAGE: effective where the kernel's THP mode
// is "always" or "madvise"). A released block waits for reuse up to `capacity` bytes in all,
// the oldest unmapped first beyond that. Blocks are never joined again. Thread-safe.
class BlockCache {
 public:
  struct Stats {
    uint64_t cached_bytes = 0;  // released, kept for reuse
    uint64_t live_bytes = 0;    // handed out, not yet released
    uint64_t hits = 0, misses = 0;
  };

  explicit BlockCache(uint64_t capacity) : capacity_(capacity) {}
  ~BlockCache();
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // A block of at least block_size(bytes) (bytes > 0): the smallest cached block that is large
  // enough, if at most a sixteenth larger, or a new mapping (after unmapping the whole cache, if
  // the first try fails). A ResourceError when the system refuses the memory.
  void* acquire(size_t bytes);
  // Back into the cache; false (and nothing done) for a pointer acquire() did not give.
  bool release(void* block);
  // Unmaps every cached block.
  void trim();
  Stats stats() const;
  // The size acquire(bytes) maps: bytes rounded up to whole 4-KiB pages.
  static size_t block_size(size_t bytes);

 private:
  using Age = std::list<std::pair<void*, size_t>>;  // cached blocks, oldest first
  // Adds a free block (size <= capacity_) as the newest, evicting the oldest beyond the capacity.
  void cache(void* block, size_t size);
  void evict_oldest();

  const uint64_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;
  Age by_age_;
  std::multimap<size_t, Age::iterator> by_size_;
  Stats stats_;
};

// Makes BlockCache serve LibTorch's CPU allocations of kMinCachedBytes and more (smaller ones
// keep LibTorch's allocator), once per process; later calls do nothing. The cache holds up to an
// eighth of the machine's memory. WAVLLM_CPU_ALLOCATOR=system keeps LibTorch's allocator for
// everything (another value is a std::runtime_error); builds with AddressSanitizer keep it too,
// so that it checks the engine's accesses to tensors. ThreadScope and set_threads call it.
constexpr size_t kMinCachedBytes = size_t(32) << 20;
// A cached block serves a tensor it exceeds by at most a kReuseSlack-th of the tensor's size, so
// a tensor holds at most that much more memory than it asked for (the memory estimates add it).
constexpr size_t kReuseSlack = 16;
void install_cpu_allocator();
// Whether install_cpu_allocator() put the cache in place; its figures (zeros when not).
bool cpu_allocator_installed();
BlockCache::Stats cpu_allocator_stats();
// Returns the installed cache's released blocks to the system.
void trim_cpu_allocator();

}  // namespace wavllm
