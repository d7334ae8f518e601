#pragma once
// The built `wavllm`, run through the shell, and the demo model and fixture audio, for the CLI suites.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test_util.h"

namespace wavllm::test {

inline const std::string kWavllm = std::string(WAVLLM_BINARY_DIR) + "/bin/wavllm";
inline std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }
inline std::string audio(const std::string& name) { return fixture("audio/" + name); }

struct Outcome {
  int status = -1;
  std::string out, err;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `command` run by the shell: its exit status, standard output, and standard error (kept in
// `stderr_file` on the way).
inline Outcome run_shell(const std::string& command, const std::filesystem::path& stderr_file) {
  Outcome r;
  FILE* p = popen((command + " 2>'" + stderr_file.string() + "'").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_file(stderr_file);
  return r;
}

}  // namespace wavllm::test
