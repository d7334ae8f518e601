#pragma once
// Paths and comparisons shared by the GoogleTest suites (torch-free).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace wavllm::test {

// tests/fixtures in the source tree: a copy of ../shared/fixtures, so a clone tests itself.
inline std::string fixture(const std::string& rel) { return std::string(WAVLLM_TEST_FIXTURES) + "/" + rel; }

// ../shared beside the checkout (third-party data, never copied into the project). Empty when
// absent: callers GTEST_SKIP with the message below.
inline std::string shared_data(const std::string& rel) {
  std::string p = std::string(WAVLLM_SHARED_DIR) + "/data/" + rel;
  return std::filesystem::exists(p) ? p : std::string();
}
#define WAVLLM_SKIP_WITHOUT_SHARED(path)                                                    \
  if ((path).empty()) GTEST_SKIP() << "../shared/data is absent: this test needs the third-party " \
                                      "data beside the checkout (CI has it)"

// A scratch directory per TempDir, unique in the process, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("wavllm_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// AddressSanitizer keeps freed memory in quarantine and maps terabytes of shadow: memory peaks
// and address-space limits mean nothing under it, so the tests that measure them skip there.
#if defined(__SANITIZE_ADDRESS__)
#define WAVLLM_SKIP_UNDER_ASAN() GTEST_SKIP() << "memory measurements are meaningless under AddressSanitizer"
#else
#define WAVLLM_SKIP_UNDER_ASAN() static_cast<void>(0)
#endif

// Peak resident memory (VmHWM) of this process, and a reset of that peak to the current RSS
// (/proc/self/clear_refs): a test measures what one call adds at its peak.
inline uint64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  uint64_t kb = 0;
  while (in >> key) {
    if (key == "VmHWM:" && in >> kb) return kb * 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}
inline uint64_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * uint64_t(sysconf(_SC_PAGESIZE));
}
inline void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// Lowers this process's RLIMIT_AS to what is mapped now plus `headroom` for the guard's
// lifetime (an unprivileged process may raise its soft limit back to the hard one).
class AddressSpaceLimit {
 public:
  explicit AddressSpaceLimit(uint64_t headroom) {
    getrlimit(RLIMIT_AS, &saved_);
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0;
    statm >> pages;
    struct rlimit lowered = saved_;
    lowered.rlim_cur = pages * uint64_t(sysconf(_SC_PAGESIZE)) + headroom;
    setrlimit(RLIMIT_AS, &lowered);
  }
  ~AddressSpaceLimit() { setrlimit(RLIMIT_AS, &saved_); }
  AddressSpaceLimit(const AddressSpaceLimit&) = delete;
  AddressSpaceLimit& operator=(const AddressSpaceLimit&) = delete;

 private:
  struct rlimit saved_ {};
};

// A named pipe at `path` (a FIFO nobody writes to: opening it for reading would block forever).
inline void make_fifo(const std::string& path) { ASSERT_EQ(mkfifo(path.c_str(), 0600), 0) << path; }

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline float max_abs(const std::vector<float>& a) {
  float m = 0;
  for (float v : a) m = std::max(m, std::fabs(v));
  return m;
}

// The fixtures' bound for encoder outputs, hidden states, branches, embeddings, prompt scale.
inline float relative_bound(const std::vector<float>& reference) {
  return 1e-4f * std::max(1.0f, max_abs(reference));
}

}  // namespace wavllm::test
