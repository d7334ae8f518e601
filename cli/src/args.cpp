#include "args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace wavllm::cli {

namespace {

const OptionSpec* find_spec(const std::vector<OptionSpec>& specs, const std::string& name) {
  for (const auto& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

std::string fmt(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "-beams" and "--beams" are both looked up by the bare name.
std::string unknown_option(const std::string& as_given, const std::string& name, const std::vector<OptionSpec>& specs) {
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  return "unknown option " + as_given + did_you_mean(name, names, "--");
}

}  // namespace

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                         const std::string& prefix) {
  const std::string* best = nullptr;
  size_t best_distance = std::max<size_t>(1, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    // "beams" for "num-beams": a word inside the name (or the name inside it) is near, and so
    // is a name with the same first word ("audio-root" for "audio-dir").
    const bool inside = word.size() >= 3 && (c.find(word) != std::string::npos || word.find(c) != std::string::npos);
    const size_t dash = c.find('-');
    const bool same_first_word = dash != std::string::npos && word.compare(0, dash + 1, c, 0, dash + 1) == 0;
    const size_t d = inside ? 1 : same_first_word ? std::min<size_t>(2, edit_distance(word, c)) : edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = &c;
  }
  return best ? " (did you mean " + prefix + *best + "?)" : "";
}

Args Args::parse(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs) {
  Args out;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      out.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      out.help_ = true;
      continue;
    }
    const bool is_long = a.rfind("--", 0) == 0;
    const size_t eq = is_long ? a.find('=') : std::string::npos;
    const std::string name = a.substr(is_long ? 2 : 1, eq == std::string::npos ? std::string::npos : eq - 2);
    const OptionSpec* spec = nullptr;
    for (const auto& s : specs)
      if (is_long ? s.name == name : (!s.alias.empty() && s.alias == name)) spec = &s;
    if (!spec) throw ArgumentError(unknown_option(a.substr(0, eq), name, specs));
    const std::string shown = "option " + (is_long ? a.substr(0, eq) : a);
    std::vector<std::string>& slot = out.values_[spec->name];
    if (!spec->repeatable) slot.clear();  // given again, the last value wins (as argparse has it)
    if (spec->metavar.empty()) {
      if (eq != std::string::npos) throw ArgumentError(shown + " takes no value");
      slot = {""};
    } else if (eq != std::string::npos) {
      slot.push_back(a.substr(eq + 1));
    } else {
      if (i + 1 >= args.size()) throw ArgumentError(shown + " needs a value (" + spec->metavar + ")");
      slot.push_back(args[++i]);
    }
  }
  return out;
}

std::optional<std::string> Args::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Args::values(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::value_or(const std::string& name, const std::string& fallback) const {
  return value(name).value_or(fallback);
}

std::optional<int64_t> Args::integer(const std::string& name, int64_t min, int64_t max) const {
  const auto v = value(name);
  if (!v) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE)
    throw ArgumentError("option --" + name + ": '" + *v + "' is not an integer");
  if (n < min || n > max)
    throw ArgumentError("option --" + name + ": " + *v + " is outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return int64_t(n);
}

std::optional<double> Args::number(const std::string& name, double min, double max) const {
  const auto v = value(name);
  if (!v) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x))
    throw ArgumentError("option --" + name + ": '" + *v + "' is not a number");
  if (x < min || x > max)
    throw ArgumentError("option --" + name + ": " + *v + " is outside [" + fmt(min) + ", " + fmt(max) + "]");
  return x;
}

std::string options_help(const std::vector<OptionSpec>& specs) {
  size_t width = 0;
  auto left = [](const OptionSpec& s) {
    return (s.alias.empty() ? "" : "-" + s.alias + ", ") + "--" + s.name + (s.metavar.empty() ? "" : " " + s.metavar);
  };
  for (const auto& s : specs) width = std::max(width, left(s).size());
  std::string out;
  for (const auto& s : specs) {
    const std::string l = left(s);
    out += "  " + l + std::string(width - l.size() + 3, ' ') + s.help + "\n";
  }
  return out;
}

}  // namespace wavllm::cli
