#pragma once
// The command line of one subcommand: "--name value", "--name=value", "-alias value", flags,
// positionals ("--" ends the options; "-" alone is a positional, standard input). Every mistake is an ArgumentError (exit status 2) whose one-line
// message names the option. Torch-free and independent of the model, for unit tests.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "wavllm/core/error.h"

namespace wavllm::cli {


struct OptionSpec {
  std::string name;     // without the dashes: "max-new-tokens"
  std::string metavar;  // empty: a flag that takes no value
  std::string help;
  std::string alias;    // the single-dash spelling whisper.cpp and llama.cpp users type: "m" for -m
  bool repeatable = false;  // given several times, every value is kept (values())
};

class Args {
 public:
  // `args` excludes the program and subcommand names. --help / -h is always accepted.
  static Args parse(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs);

  bool help() const { return help_; }
  bool flag(const std::string& name) const { return values_.count(name) != 0; }
  std::optional<std::string> value(const std::string& name) const;  // the last one given
  std::vector<std::string> values(const std::string& name) const;  // every one, in order
  std::string value_or(const std::string& name, const std::string& fallback) const;
  // The value parsed whole as a number within [min, max]; an ArgumentError names the option.
  std::optional<int64_t> integer(const std::string& name, int64_t min, int64_t max) const;
  std::optional<double> number(const std::string& name, double min, double max) const;
  // parse(value, or `fallback` when absent); the ArgumentError of a bad value gets the option's
  // name in front ("option --dtype: unknown dtype 'x'").
  template <class Parse>
  auto parsed(const std::string& name, const std::string& fallback, Parse parse) const {
    const std::string v = value_or(name, fallback);
    try {
      return parse(v);
    } catch (const ArgumentError& e) {
      throw ArgumentError("option --" + name + ": " + e.what());
    }
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;  // flags map to {""}
  std::vector<std::string> positional_;
  bool help_ = false;
};

// " (did you mean 'X'?)" for the candidate nearest to a mistyped `word` (edit distance at most a
// third of its length, or one containing the other), "" when none is near.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                         const std::string& prefix = "");

// "  --name VALUE   help" lines, aligned.
std::string options_help(const std::vector<OptionSpec>& specs);

}  // namespace wavllm::cli
