// The CPU allocator's block cache (core/cpu_allocator.h): alignment, reuse, eviction, and
// LibTorch's tensors going through it once installed.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_util.h"
#include "wavllm/core/cpu_allocator.h"
#include "wavllm/core/huge_pages.h"

namespace wavllm {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

bool aligned_2mib(const void* p) { return reinterpret_cast<uintptr_t>(p) % (2 * kMiB) == 0; }

TEST(BlockCache, BlocksAreWholePagesHugePageAlignedAndWritable) {
  EXPECT_EQ(BlockCache::block_size(1), 4096u);
  EXPECT_EQ(BlockCache::block_size(2 * kMiB), 2 * kMiB);
  EXPECT_EQ(BlockCache::block_size(2 * kMiB + 1), 2 * kMiB + 4096);
  BlockCache cache(64 * kMiB);
  const size_t bytes = 3 * kMiB + 100, size = 3 * kMiB + 4096;
  void* block = cache.acquire(bytes);
  ASSERT_NE(block, nullptr);
  EXPECT_TRUE(aligned_2mib(block));
  std::memset(block, 0x5a, size);  // the whole rounded block is usable
  EXPECT_EQ(static_cast<unsigned char*>(block)[size - 1], 0x5a);
  EXPECT_EQ(cache.stats().live_bytes, size);
  EXPECT_TRUE(cache.release(block));
  EXPECT_EQ(cache.stats().live_bytes, 0u);
  EXPECT_EQ(cache.stats().cached_bytes, size);
}

TEST(BlockCache, ReusesTheSmallestReleasedBlockAtMostASixteenthLarger) {
  BlockCache cache(256 * kMiB);
  void* first = cache.acquire(32 * kMiB);
  ASSERT_TRUE(cache.release(first));
  EXPECT_EQ(cache.acquire(31 * kMiB), first);  // 1 MiB more than asked: the same block
  EXPECT_EQ(cache.stats().hits, 1u);
  ASSERT_TRUE(cache.release(first));
  void* smaller = cache.acquire(24 * kMiB);  // 8 MiB more would be wasted: a new mapping
  EXPECT_NE(smaller, first);
  void* larger = cache.acquire(33 * kMiB);  // the cached block is too small
  EXPECT_NE(larger, first);
  EXPECT_EQ(cache.stats().misses, 3u);
  EXPECT_EQ(cache.stats().cached_bytes, 32 * kMiB);
  ASSERT_TRUE(cache.release(smaller));
  EXPECT_EQ(cache.acquire(24 * kMiB), smaller);  // the smallest that fits, not the 32-MiB one
  EXPECT_EQ(cache.stats().live_bytes, (24 + 33) * kMiB);
  EXPECT_TRUE(cache.release(smaller));
  EXPECT_TRUE(cache.release(larger));
}

TEST(BlockCache, KeepsAtMostItsCapacityUnmappingTheOldestFirst) {
  BlockCache cache(4 * kMiB);
  void* a = cache.acquire(2 * kMiB);
  void* b = cache.acquire(2 * kMiB);
  void* c = cache.acquire(2 * kMiB);
  ASSERT_TRUE(cache.release(a));
  ASSERT_TRUE(cache.release(b));
  ASSERT_TRUE(cache.release(c));  // a, the oldest, is unmapped to make room
  EXPECT_EQ(cache.stats().cached_bytes, 4 * kMiB);
  void* first = cache.acquire(2 * kMiB);
  void* second = cache.acquire(2 * kMiB);
  EXPECT_TRUE((first == b && second == c) || (first == c && second == b));
  EXPECT_EQ(cache.stats().hits, 2u);
  void* huge = cache.acquire(6 * kMiB);  // beyond the capacity: unmapped when released
  ASSERT_TRUE(cache.release(huge));
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  ASSERT_TRUE(cache.release(first));
  ASSERT_TRUE(cache.release(second));
  cache.trim();
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
}

TEST(BlockCache, RefusesAPointerItDidNotGive) {
  BlockCache cache(8 * kMiB);
  int local = 0;
  EXPECT_FALSE(cache.release(&local));
  void* block = cache.acquire(kMiB);
  EXPECT_TRUE(cache.release(block));
  EXPECT_FALSE(cache.release(block));  // released twice
}

// WAVLLM_CPU_ALLOCATOR=system (a ctest entry) and sanitizer builds keep LibTorch's allocator.
bool expect_installed() {
  const char* env = std::getenv("WAVLLM_CPU_ALLOCATOR");
  const bool off = env && std::string(env) == "system";
#if defined(__SANITIZE_ADDRESS__)
  return false;
#else
  return !off;
#endif
}

TEST(CpuAllocator, LargeTensorsComeFromTheCacheOnceInstalled) {
  install_cpu_allocator();
  ASSERT_EQ(cpu_allocator_installed(), expect_installed());
  if (!cpu_allocator_installed()) GTEST_SKIP() << "LibTorch's allocator kept (WAVLLM_CPU_ALLOCATOR=system or ASan)";
  const BlockCache::Stats before = cpu_allocator_stats();
  {
    at::Tensor t = at::ones({int64_t(40 * kMiB / 4)}, at::kFloat);  // 40 MiB
    EXPECT_TRUE(aligned_2mib(t.data_ptr()));
    EXPECT_EQ(cpu_allocator_stats().live_bytes, before.live_bytes + 40 * kMiB);
    EXPECT_FLOAT_EQ(t.sum().item<float>(), float(40 * kMiB / 4));
  }
  const BlockCache::Stats freed = cpu_allocator_stats();
  EXPECT_GE(freed.cached_bytes, 40 * kMiB);
  at::Tensor again = at::empty({int64_t(40 * kMiB / 4)}, at::kFloat);
  EXPECT_EQ(cpu_allocator_stats().hits, freed.hits + 1);  // a freed block, reused
  EXPECT_EQ(cpu_allocator_stats().misses, freed.misses);
  at::Tensor small = at::empty({int64_t(kMinCachedBytes / 4 - 1)}, at::kFloat);
  EXPECT_EQ(cpu_allocator_stats().live_bytes, before.live_bytes + 40 * kMiB);  // smaller ones elsewhere
}

// LibTorch's raw_allocate / raw_deallocate (used by its oneDNN glue) hand back every pointer,
// small or large, to the allocator's one raw deleter.
TEST(CpuAllocator, RawAllocationsOfEitherSizeRoundTrip) {
  install_cpu_allocator();
  c10::Allocator* allocator = c10::GetCPUAllocator();
  for (const size_t bytes : {size_t(64), kMiB / 2, kMinCachedBytes + 5 * kMiB}) {
    void* p = allocator->raw_allocate(bytes);
    ASSERT_NE(p, nullptr);
    std::memset(p, 1, bytes);
    allocator->raw_deallocate(p);
  }
}


TEST(HugePages, MappingsStartAtAHugeBoundary) {
  // A file of 3 MiB + 5 bytes, read back through its mapping.
  wavllm::test::TempDir dir;
  const std::string path = dir.file("weights.bin");
  std::vector<unsigned char> bytes(3 * kMiB + 5);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 3);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* file = map_at_huge_boundary(bytes.size(), fd);
  ::close(fd);  // the mapping keeps the file
  ASSERT_NE(file, nullptr);
  EXPECT_TRUE(aligned_2mib(file));
  EXPECT_EQ(std::memcmp(file, bytes.data(), bytes.size()), 0);
  EXPECT_EQ(munmap(file, bytes.size()), 0);

  void* anonymous = map_at_huge_boundary(5 * kMiB, -1);
  ASSERT_NE(anonymous, nullptr);
  EXPECT_TRUE(aligned_2mib(anonymous));
  std::memset(anonymous, 0xab, 5 * kMiB);
  EXPECT_EQ(munmap(anonymous, 5 * kMiB), 0);
  EXPECT_EQ(map_at_huge_boundary(kMiB, 1 << 20), nullptr);  // not an open descriptor
}

}  // namespace
}  // namespace wavllm
