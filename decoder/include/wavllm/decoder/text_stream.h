#pragma once
// Text of a growing sequence of generated ids, handed out only once it can no longer change:
// byte-fallback pieces are held until their UTF-8 character completes, and text that could be
// the start of a stop string is held until it is known not to be one.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wavllm/decoder/tokenizer.h"

namespace wavllm::decoder {

class TextStream {
 public:
  // The tokenizer must outlive the stream.
  TextStream(const Tokenizer& tok, std::vector<std::string> stop = {});

  // `ids`: every id generated so far (the previous call's plus new ones). Returns the text that
  // became final since the last call: whole UTF-8 characters, possibly empty.
  std::string push(const std::vector<int64_t>& ids);
  // True once the text contains a stop string (push returned everything before it).
  bool stopped() const { return stopped_.has_value(); }
  // The whole text, cut before the first stop string; `rest` receives what push() has not returned.
  std::string finish(const std::vector<int64_t>& ids, std::string& rest);

  // How many leading ids have final text: a trailing run of byte-fallback ids that ends inside a
  // UTF-8 character is excluded.
  static size_t complete_prefix(const Tokenizer& tok, const std::vector<int64_t>& ids);

 private:
  bool cut_at_stop(std::string& text) const;
  size_t stop_prefix_suffix(const std::string& text) const;
  std::string take(const std::string& text, size_t upto);

  const Tokenizer& tok_;
  std::vector<std::string> stop_;
  size_t emitted_ = 0;
  std::optional<std::string> stopped_;
};

}  // namespace wavllm::decoder
