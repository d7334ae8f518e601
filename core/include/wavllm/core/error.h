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
// it is already printable(). A plain Error is bad input (a file, weights, a config, audio);
// the subclasses say when it is something else, and the edges map the kind in one place each
// (the CLI's exit status, the binding's exception class).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(printable(what)) {}
};

// An argument or option outside its rule (a generation option, a dtype, a language): the
// caller's mistake. CLI exit status 2; Python wavllm.ArgumentError, also a ValueError.
class ArgumentError : public Error {
 public:
  using Error::Error;
};

// A valid request beyond a limit of the model or the machine (memory, context, audio length).
// CLI exit status 1; Python wavllm.ResourceError.
class ResourceError : public Error {
 public:
  using Error::Error;
};

}  // namespace wavllm
