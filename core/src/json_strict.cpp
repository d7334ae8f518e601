#include "wavllm/core/json_strict.h"

#include <unordered_set>
#include <vector>

#include "wavllm/core/error.h"

namespace wavllm {

using json = nlohmann::json;

namespace {

class DuplicateKeyCheck : public json::json_sax_t {
 public:
  explicit DuplicateKeyCheck(int max_depth) : max_depth_(max_depth) {}
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    Level& l = levels_.back();
    if (!l.keys.insert(k).second) {
      problem_ = "duplicate key \"" + k + "\"" + (path().empty() ? "" : " in " + path());
      return false;
    }
    l.current = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    problem_ = std::string("not valid JSON: ") + e.what();
    return false;
  }
  const std::string& problem() const { return problem_; }

 private:
  struct Level {
    bool object;
    std::unordered_set<std::string> keys;
    std::string current;
  };
  bool value() { return true; }
  bool open(bool object) {
    if (static_cast<int>(levels_.size()) >= max_depth_) {
      problem_ = "nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    levels_.push_back({object, {}, {}});
    return true;
  }
  bool close() {
    levels_.pop_back();
    return true;
  }
  std::string path() const {
    std::string p;
    for (const Level& l : levels_)
      if (l.object && !l.current.empty() && &l != &levels_.back()) p += (p.empty() ? "" : ".") + l.current;
    return p;
  }
  int max_depth_;
  std::vector<Level> levels_;
  std::string problem_;
};

}  // namespace

json parse_json_strict(const std::string& text, const std::string& label, int max_depth) {
  DuplicateKeyCheck check(max_depth);
  if (!json::sax_parse(text, &check)) throw Error(label + ": " + check.problem());
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(label + ": not valid JSON: " + e.what());
  }
}

}  // namespace wavllm
