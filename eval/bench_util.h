#pragma once
// Shared by the eval/bench_* programs (torch-free): option parsing, best-of-N timing, and
// running the PyTorch counterpart script that prints "RESULT <name> <seconds>" lines.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "wavllm/core/error.h"

namespace wavllm::bench {

// The body of a benchmark's main(): an exception ends it with one line naming the program.
inline int guarded_main(const char* program, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

// Calls on_option(name, value) for each "--name" argument; `value()` consumes the next
// argument. on_option returns false for an unknown option. Numbers that do not parse
// (std::stoi/stod throwing) become an Error naming the option.
inline void parse_options(int argc, char** argv,
                          const std::function<bool(const std::string&, const std::function<std::string()>&)>& on_option) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::function<std::string()> value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (!on_option(a, value)) throw Error("unknown option " + a);
    } catch (const std::logic_error&) {
      throw Error(a + ": not a number");
    }
  }
}

// Shortest wall time of `repeat` calls.
template <class F>
double best_seconds(int repeat, F&& run) {
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Runs `command` (stderr included); "RESULT <name> <seconds>" lines become the map, every
// other line goes to `notes`. A failing script is reported in `notes`, not thrown: the
// benchmark's own numbers are still worth printing.
inline std::map<std::string, double> run_script(const std::string& command, std::vector<std::string>& notes) {
  std::map<std::string, double> out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw Error("cannot run: " + command);
  char line[4096];
  while (std::fgets(line, sizeof line, pipe)) {
    char name[64];
    double seconds = 0;
    if (std::sscanf(line, "RESULT %63s %lf", name, &seconds) == 2) out[name] = seconds;
    else notes.push_back(line);
  }
  const int rc = ::pclose(pipe);
  if (rc != 0) notes.push_back("failed (status " + std::to_string(rc) + "): " + command + "\n");
  return out;
}

}  // namespace wavllm::bench
