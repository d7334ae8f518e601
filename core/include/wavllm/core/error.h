#pragma once
#include <stdexcept>
#include <string>

namespace wavllm {

// Every failure the engine reports to a user: the message names the thing that is wrong
// (file, tensor, option) and why. Callers at the edges (CLI, binding) print what() as is.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace wavllm
