#include "wavllm/core/cpu_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "wavllm/core/error.h"
#include "wavllm/core/huge_pages.h"

namespace wavllm {

namespace {

constexpr size_t kPage = 4096;

}  // namespace

// Whole small pages: the huge pages cover the block's 2-MiB-aligned part, the tail is small
// pages (rounding up to 2 MiB made the process's peak 20 % larger on the demo model).
size_t BlockCache::block_size(size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

BlockCache::~BlockCache() {
  trim();
  for (const auto& [block, size] : live_) munmap(block, size);
}

void* BlockCache::acquire(size_t bytes) {
  const size_t size = block_size(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits, if it is at most a sixteenth larger: a block used
    // for a smaller tensor is missing for the next one of its own size, which then maps anew
    // (looser fits raised the demo model's peak 5-50 % over its activation estimate).
    const auto fit = by_size_.lower_bound(size);
    if (fit != by_size_.end() && fit->first - size <= size / kReuseSlack) {
      const auto [block, block_bytes] = *fit->second;
      by_age_.erase(fit->second);
      by_size_.erase(fit);
      stats_.cached_bytes -= block_bytes;
      live_.emplace(block, block_bytes);
      stats_.live_bytes += block_bytes;
      ++stats_.hits;
      return block;
    }
  }
  void* block = map_at_huge_boundary(size, -1);
  if (!block) {
    trim();
    block = map_at_huge_boundary(size, -1);
  }
  if (!block)
    throw ResourceError("the system refused " + std::to_string(size >> 20) + " MiB of memory for a tensor");
  std::lock_guard<std::mutex> lock(mutex_);
  live_.emplace(block, size);
  stats_.live_bytes += size;
  ++stats_.misses;
  return block;
}

bool BlockCache::release(void* block) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = live_.find(block);
  if (it == live_.end()) return false;
  const size_t size = it->second;
  live_.erase(it);
  stats_.live_bytes -= size;
  if (size > capacity_) {
    munmap(block, size);
    return true;
  }
  cache(block, size);
  return true;
}

void BlockCache::cache(void* block, size_t size) {
  while (stats_.cached_bytes + size > capacity_) evict_oldest();
  by_age_.emplace_back(block, size);
  by_size_.emplace(size, std::prev(by_age_.end()));
  stats_.cached_bytes += size;
}

void BlockCache::evict_oldest() {
  const auto [block, size] = by_age_.front();
  for (auto it = by_size_.lower_bound(size); it != by_size_.end() && it->first == size; ++it)
    if (it->second == by_age_.begin()) {
      by_size_.erase(it);
      break;
    }
  by_age_.pop_front();
  stats_.cached_bytes -= size;
  munmap(block, size);
}

void BlockCache::trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  while (!by_age_.empty()) evict_oldest();
}

BlockCache::Stats BlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

namespace {

#if defined(__SANITIZE_ADDRESS__)  // GCC and Clang both define it under -fsanitize=address
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// LibTorch's CPU allocator with blocks of kMinCachedBytes and more from a BlockCache.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator(c10::Allocator* small, uint64_t capacity) : small_(small), cache_(capacity) {}

  c10::DataPtr allocate(size_t bytes) const override {
    if (bytes < kMinCachedBytes) return small_->allocate(bytes);
    void* block = cache_.acquire(bytes);
    return {block, block, &release_block, c10::Device(c10::DeviceType::CPU)};
  }
  // LibTorch's raw_deallocate passes every pointer, small or cached, to this one deleter.
  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }

  BlockCache& cache() const { return cache_; }

 private:
  // DataPtr's deleter (its context is the block); a block the cache did not give is a small one.
  static void release_block(void* block);

  c10::Allocator* small_;
  mutable BlockCache cache_;
};

// The installed allocator: never destroyed, since tensors may be freed during static destruction.
CachingCpuAllocator* installed = nullptr;

void CachingCpuAllocator::release_block(void* block) {
  if (!installed->cache_.release(block)) installed->small_->raw_deleter()(block);
}

uint64_t memory_total() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t(1) << 30;
}

}  // namespace

void install_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* env = std::getenv("WAVLLM_CPU_ALLOCATOR"); env && *env) {
      const std::string v = env;
      if (v == "system") return;
      if (v != "cached") throw std::runtime_error("WAVLLM_CPU_ALLOCATOR=" + v + ": unknown (cached or system)");
    }
    if (kSanitized) return;
    installed = new CachingCpuAllocator(c10::GetCPUAllocator(), memory_total() / 8);
    c10::SetCPUAllocator(installed, /*priority=*/1);
  });
}

bool cpu_allocator_installed() { return installed != nullptr; }

BlockCache::Stats cpu_allocator_stats() { return installed ? installed->cache().stats() : BlockCache::Stats{}; }

void trim_cpu_allocator() {
  if (installed) installed->cache().trim();
}

}  // namespace wavllm
