#include "manifest.h"

#include <cctype>
#include <map>
#include <set>

#include "wavllm/core/error.h"

namespace wavllm::cli {

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return fields;
    start = tab + 1;
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Digits only, and small enough for int64 (a manifest's n_frames is a sample count).
bool parse_count(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::vector<ManifestItem> parse_manifest(const std::string& text, const std::string& label) {
  // Lines with their 1-based numbers; CR of CRLF files dropped; blank lines skipped.
  std::vector<std::pair<size_t, std::string>> lines;
  // A UTF-8 byte order mark (spreadsheet exports) is not part of the first column's name.
  size_t start = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0, number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ++number;
    if (line.find_first_not_of(" \t") != std::string::npos) lines.emplace_back(number, std::move(line));
    start = end + 1;
  }
  if (lines.empty()) throw Error(label + ": empty manifest (expected a header row: id, audio, ...)");

  const std::vector<std::string> header = split_tabs(lines[0].second);
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i].empty()) continue;
    if (!column.emplace(header[i], i).second)
      throw Error(label + ": line " + std::to_string(lines[0].first) + ": column '" + header[i] + "' appears twice");
  }
  for (const char* required : {"id", "audio"})
    if (!column.count(required))
      throw Error(label + ": the header has no '" + required + "' column (columns are found by name, tab-separated)");
  auto index_of = [&](const char* name) { return column.count(name) ? int64_t(column.at(name)) : int64_t(-1); };
  const int64_t c_id = index_of("id"), c_audio = index_of("audio"), c_frames = index_of("n_frames"),
                c_prompt = index_of("prompt"), c_tgt = index_of("tgt_text"), c_speech = index_of("with_speech");

  std::vector<ManifestItem> items;
  std::set<std::string> ids;
  for (size_t r = 1; r < lines.size(); ++r) {
    const auto& [line_no, line] = lines[r];
    const std::string where = label + ": line " + std::to_string(line_no) + ": ";
    const std::vector<std::string> f = split_tabs(line);
    if (f.size() != header.size())
      throw Error(where + std::to_string(f.size()) + " tab-separated fields, the header has " + std::to_string(header.size()));
    ManifestItem item;
    item.line = line_no;
    item.id = f[size_t(c_id)];
    item.audio = f[size_t(c_audio)];
    if (item.id.empty()) throw Error(where + "empty id");
    if (!ids.insert(item.id).second) throw Error(where + "id '" + item.id + "' appears twice");
    if (item.audio.empty()) throw Error(where + "empty audio path");
    if (c_frames >= 0 && !parse_count(f[size_t(c_frames)], &item.n_frames))
      throw Error(where + "n_frames '" + f[size_t(c_frames)] + "' is not a non-negative integer");
    if (c_prompt >= 0) item.prompt = f[size_t(c_prompt)];
    if (c_tgt >= 0) item.tgt_text = f[size_t(c_tgt)];
    if (c_speech >= 0) {
      const std::string v = lower(f[size_t(c_speech)]);
      if (v == "true" || v == "1") item.with_speech = true;
      else if (v == "false" || v == "0") item.with_speech = false;
      else throw Error(where + "with_speech '" + f[size_t(c_speech)] + "' is not True or False");
    }
    items.push_back(std::move(item));
  }
  return items;
}

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  Shard s;
  if (slash == std::string::npos || !parse_count(text.substr(0, slash), &s.index) ||
      !parse_count(text.substr(slash + 1), &s.count) || s.count < 1 || s.index >= s.count)
    throw ArgumentError("option --shard: '" + text + "' is not i/n with 0 <= i < n (e.g. 0/4 ... 3/4)");
  return s;
}

std::vector<ManifestItem> select_shard(const std::vector<ManifestItem>& items, const Shard& shard) {
  std::vector<ManifestItem> out;
  for (size_t i = size_t(shard.index); i < items.size(); i += size_t(shard.count)) out.push_back(items[i]);
  return out;
}

}  // namespace wavllm::cli
