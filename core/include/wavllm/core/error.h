#pragma once
#include <stdexcept>
#include <string>

namespace wavllm {

// `text` with every control character but newline and tab (C0, DEL, and the C1 range of
// UTF-8) written as \xHH, so that bytes from a hostile file (ANSI escapes, say) cannot drive
// the user's terminal when an error that quotes them is printed.
std::string printable(const std::string& text);

// Every failure the engine reports to a user: the message names the thing that is wrong
// (file, tensor, option) and why. Callers at the edges (CLI, binding) print what() as is:
// it is already printable().
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(printable(what)) {}
};

}  // namespace wavllm
