#include "wavllm/decoder/text_stream.h"

#include <algorithm>

#include "wavllm/core/error.h"

namespace wavllm::decoder {

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stop) : tok_(tok), stop_(std::move(stop)) {
  for (const auto& s : stop_)
    if (s.empty()) throw Error("stop strings must not be empty");
}

size_t TextStream::complete_prefix(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  size_t start = ids.size();
  while (start > 0 && tok.byte_value(ids[start - 1]) >= 0) --start;
  // The run starts after a whole piece, so at a character boundary: walk it character by character.
  for (size_t i = start; i < ids.size();) {
    const int b = tok.byte_value(ids[i]);
    const size_t len = (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
    if (i + len > ids.size()) return i;
    i += len;
  }
  return ids.size();
}

std::string TextStream::push(const std::vector<int64_t>& ids) {
  if (stopped_) return {};
  std::string text = tok_.decode({ids.begin(), ids.begin() + complete_prefix(tok_, ids)});
  if (cut_at_stop(text)) {
    stopped_ = text;
    return take(text, text.size());
  }
  return take(text, text.size() - stop_prefix_suffix(text));
}

std::string TextStream::finish(const std::vector<int64_t>& ids, std::string& rest) {
  std::string text = stopped_ ? *stopped_ : tok_.decode(ids);
  cut_at_stop(text);
  rest = take(text, text.size());
  return text;
}

bool TextStream::cut_at_stop(std::string& text) const {
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, text.find(s));
  if (cut == std::string::npos) return false;
  text.resize(cut);
  return true;
}

// Length of the longest end of `text` that could begin a stop string.
size_t TextStream::stop_prefix_suffix(const std::string& text) const {
  size_t hold = 0;
  for (const auto& s : stop_)
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

std::string TextStream::take(const std::string& text, size_t upto) {
  if (upto <= emitted_) return {};
  std::string piece = text.substr(emitted_, upto - emitted_);
  emitted_ = upto;
  return piece;
}

}  // namespace wavllm::decoder
