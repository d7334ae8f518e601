#pragma once
// The reference's TSV manifests (WavLLM test_data/*.tsv): a header row naming the columns,
// then one item per row, tab-separated, no quoting. Columns are found by name, in any order:
// id and audio are required; n_frames, prompt, tgt_text and with_speech are optional.
// Torch-free: the fuzzer links it alone.
#include <cstdint>
#include <string>
#include <vector>

namespace wavllm::cli {

struct ManifestItem {
  std::string id;
  std::string audio;     // as written: relative to the batch's --audio-root unless absolute
  int64_t n_frames = -1; // samples at 16 kHz as listed; -1 when the column is absent
  std::string prompt;
  std::string tgt_text;
  bool with_speech = true;
  size_t line = 0;       // 1-based line in the manifest (for messages)
};

// An Error naming the label, the line and the column for: no header, a missing id/audio
// column, a column named twice, a row with a different number of fields than the header, an
// empty or duplicate id, an empty audio path, a bad n_frames or with_speech value.
// Accepts LF or CRLF line ends; blank lines are skipped.
std::vector<ManifestItem> parse_manifest(const std::string& text, const std::string& label = "manifest");

// "i/n" with 0 <= i < n: an Error otherwise.
struct Shard {
  int64_t index = 0, count = 1;
};
Shard parse_shard(const std::string& text);
// Items i, i + n, i + 2n, ... of the manifest: the shards of one manifest are disjoint and
// together cover it, whatever has already been done.
std::vector<ManifestItem> select_shard(const std::vector<ManifestItem>& items, const Shard& shard);

}  // namespace wavllm::cli
