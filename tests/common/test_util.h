#pragma once
// Paths and comparisons shared by the GoogleTest suites (torch-free).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
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
