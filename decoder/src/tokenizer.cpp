// A reader and BPE encoder/decoder for sentencepiece model files (the LLaMA-2 tokenizer.model),
// written against sentencepiece 0.1.97's behaviour. Not linked to libsentencepiece on purpose:
// Debian's library exports its bundled protobuf 3.14, which clashes with the protobuf 3.21 that
// LibTorch loads (the process crashes while loading).
#include "wavllm/decoder/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "wavllm/core/error.h"
#include "wavllm/core/files.h"

namespace wavllm::decoder {

namespace {

const std::string kSpace = "\xE2\x96\x81";        // U+2581 "▁", sentencepiece's whitespace
const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Minimal protobuf wire-format reader (the ModelProto fields used here).
class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::string& path) : p_(data), path_(path) {}
  bool next(uint32_t& field, int& wire) {
    if (p_.empty()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    wire = static_cast<int>(key & 7);
    return true;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const auto c = static_cast<uint8_t>(p_[0]);
      p_.remove_prefix(1);
      v |= uint64_t(c & 0x7F) << shift;
      if (c < 0x80) return v;
    }
    fail("varint too long");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    need(n);
    const auto out = p_.substr(0, n);
    p_.remove_prefix(n);
    return out;
  }
  float f32() {
    need(4);
    float f;
    std::memcpy(&f, p_.data(), 4);
    p_.remove_prefix(4);
    return f;
  }
  void skip(int wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: need(8); p_.remove_prefix(8); break;
      case 2: bytes(); break;
      case 5: need(4); p_.remove_prefix(4); break;
      default: fail("unknown wire type " + std::to_string(wire));
    }
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("tokenizer " + path_ + ": not a sentencepiece model (" + why + ")");
  }

 private:
  void need(uint64_t n) const {
    if (n > p_.size()) fail("truncated");
  }
  std::string_view p_;
  const std::string& path_;
};

// Length of the UTF-8 character at s[i], or 0 when the bytes there are not a valid character.
size_t utf8_char_len(std::string_view s, size_t i) {
  const auto b = static_cast<uint8_t>(s[i]);
  size_t len;
  uint32_t cp;
  if (b < 0x80) return 1;
  if ((b >> 5) == 0x6) len = 2, cp = b & 0x1F;
  else if ((b >> 4) == 0xE) len = 3, cp = b & 0x0F;
  else if ((b >> 3) == 0x1E) len = 4, cp = b & 0x07;
  else return 0;
  if (i + len > s.size()) return 0;
  for (size_t j = 1; j < len; ++j) {
    const auto c = static_cast<uint8_t>(s[i + j]);
    if ((c >> 6) != 0x2) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

struct Tokenizer::Impl {
  struct Piece {
    std::string text;
    float score = 0;
    int type = kNormal;
  };
  std::vector<Piece> pieces;
  std::unordered_map<std::string, int> mergeable;  // NORMAL, USER_DEFINED, UNUSED: what BPE may form
  std::unordered_map<std::string, int> reserved;   // CONTROL, UNKNOWN, BYTE
  std::vector<std::string> user_defined;           // matched whole, longest first
  int byte_id[256];
  int64_t unk = -1, bos = -1, eos = -1, pad = -1;
  bool byte_fallback = false, add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
  std::string unk_surface = " \xE2\x81\x87 ";

  int piece_id(const std::string& s) const {
    if (auto it = reserved.find(s); it != reserved.end()) return it->second;
    if (auto it = mergeable.find(s); it != mergeable.end()) return it->second;
    return -1;
  }
  std::string normalize(const std::string& text) const;
  std::vector<int64_t> encode(const std::string& text) const;
};

// The "identity" rule: whitespace handling only (other rules need a precompiled charsmap).
std::string Tokenizer::Impl::normalize(const std::string& text) const {
  std::string_view in(text);
  if (remove_extra_whitespaces) {
    while (!in.empty() && in.front() == ' ') in.remove_prefix(1);
    while (!in.empty() && in.back() == ' ') in.remove_suffix(1);
  }
  if (in.empty()) return {};
  const std::string space = escape_whitespaces ? kSpace : " ";
  std::string out = add_dummy_prefix ? space : "";
  for (size_t i = 0; i < in.size();) {
    if (in[i] == ' ') {
      if (!(remove_extra_whitespaces && i > 0 && in[i - 1] == ' ')) out += space;
      ++i;
      continue;
    }
    const size_t len = utf8_char_len(in, i);
    if (len == 0) {
      out += kReplacement;  // malformed input byte
      ++i;
    } else {
      out.append(in.substr(i, len));
      i += len;
    }
  }
  return out;
}

// sentencepiece's BPE: start from characters (user-defined pieces whole), repeatedly merge the
// adjacent pair forming the best-scored piece (leftmost on ties), then map symbols to ids, unknown
// ones to their UTF-8 bytes (byte fallback) or unk.
std::vector<int64_t> Tokenizer::Impl::encode(const std::string& text) const {
  const std::string norm = normalize(text);
  struct Symbol {
    int prev, next;
    std::string_view piece;
    bool frozen;
  };
  std::vector<Symbol> sym;
  const std::string_view all(norm);
  for (size_t i = 0; i < all.size();) {
    size_t len = 0;
    bool frozen = false;
    for (const auto& u : user_defined)
      if (all.compare(i, u.size(), u) == 0) {
        len = u.size();
        frozen = true;
        break;
      }
    if (len == 0) len = std::max<size_t>(1, utf8_char_len(all, i));
    sym.push_back({static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, all.substr(i, len), frozen});
    i += len;
  }
  if (sym.empty()) return {};
  sym.back().next = -1;

  struct Pair {
    int left, right;
    float score;
    size_t size;
  };
  auto worse = [](const Pair& a, const Pair& b) { return a.score != b.score ? a.score < b.score : a.left > b.left; };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
  std::unordered_map<std::string, std::pair<std::string_view, std::string_view>> rev_merge;
  auto add_pair = [&](int l, int r) {
    if (l < 0 || r < 0 || sym[l].frozen || sym[r].frozen) return;
    const std::string_view joined(sym[l].piece.data(), sym[l].piece.size() + sym[r].piece.size());
    const auto it = mergeable.find(std::string(joined));
    if (it == mergeable.end()) return;
    agenda.push({l, r, pieces[it->second].score, joined.size()});
    if (pieces[it->second].type == kUnused) rev_merge[std::string(joined)] = {sym[l].piece, sym[r].piece};
  };
  for (size_t i = 1; i < sym.size(); ++i) add_pair(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol &l = sym[top.left], &r = sym[top.right];
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size) continue;  // stale
    l.piece = std::string_view(l.piece.data(), top.size);
    r.piece = {};
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = top.left;
    add_pair(l.prev, top.left);
    add_pair(top.left, l.next);
  }

  std::vector<int64_t> ids;
  // Unused pieces are never output: split them back into the pair they were merged from.
  std::function<void(std::string_view)> emit = [&](std::string_view w) {
    const std::string s(w);
    const int id = piece_id(s);
    if (id >= 0 && pieces[id].type == kUnused) {
      if (auto it = rev_merge.find(s); it != rev_merge.end()) {
        emit(it->second.first);
        emit(it->second.second);
        return;
      }
    }
    if (id >= 0 && pieces[id].type != kUnknown) {
      ids.push_back(id);
    } else if (byte_fallback) {
      for (char c : w) ids.push_back(byte_id[static_cast<uint8_t>(c)]);
    } else {
      ids.push_back(unk);
    }
  };
  for (int i = 0; i >= 0; i = sym[i].next) emit(sym[i].piece);
  return ids;
}

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string data = read_regular_file(path, "tokenizer", kMaxTokenizerFileBytes);

  auto impl = std::make_shared<Impl>();
  std::fill(std::begin(impl->byte_id), std::end(impl->byte_id), -1);
  int model_type = 1;  // UNIGRAM unless the trainer spec says otherwise
  std::string bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>", charsmap;
  ProtoReader top(data, path);
  uint32_t field;
  int wire;
  while (top.next(field, wire)) {
    if (field == 1 && wire == 2) {  // SentencePiece
      ProtoReader r(top.bytes(), path);
      Impl::Piece p;
      while (r.next(field, wire)) {
        if (field == 1 && wire == 2) p.text = std::string(r.bytes());
        else if (field == 2 && wire == 5) p.score = r.f32();
        else if (field == 3 && wire == 0) p.type = static_cast<int>(r.varint());
        else r.skip(wire);
      }
      impl->pieces.push_back(std::move(p));
    } else if (field == 2 && wire == 2) {  // TrainerSpec
      ProtoReader r(top.bytes(), path);
      while (r.next(field, wire)) {
        if (field == 3 && wire == 0) model_type = static_cast<int>(r.varint());
        else if (field == 35 && wire == 0) impl->byte_fallback = r.varint() != 0;
        else if (field == 44 && wire == 2) impl->unk_surface = std::string(r.bytes());
        else if (field == 46 && wire == 2) bos_piece = std::string(r.bytes());
        else if (field == 47 && wire == 2) eos_piece = std::string(r.bytes());
        else if (field == 48 && wire == 2) pad_piece = std::string(r.bytes());
        else r.skip(wire);
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      ProtoReader r(top.bytes(), path);
      while (r.next(field, wire)) {
        if (field == 2 && wire == 2) charsmap = std::string(r.bytes());
        else if (field == 3 && wire == 0) impl->add_dummy_prefix = r.varint() != 0;
        else if (field == 4 && wire == 0) impl->remove_extra_whitespaces = r.varint() != 0;
        else if (field == 5 && wire == 0) impl->escape_whitespaces = r.varint() != 0;
        else r.skip(wire);
      }
    } else {
      top.skip(wire);
    }
  }
  if (impl->pieces.empty()) top.fail("no pieces");
  if (model_type != 2) throw Error("tokenizer " + path + ": only BPE sentencepiece models are supported (LLaMA's kind)");
  if (!charsmap.empty())
    throw Error("tokenizer " + path + ": normalization rules other than \"identity\" are not supported");
  for (size_t i = 0; i < impl->pieces.size(); ++i) {
    const auto& p = impl->pieces[i];
    const int id = static_cast<int>(i);
    switch (p.type) {
      case kNormal: case kUnused: impl->mergeable.emplace(p.text, id); break;
      case kUserDefined: impl->mergeable.emplace(p.text, id); impl->user_defined.push_back(p.text); break;
      case kUnknown: impl->unk = id; impl->reserved.emplace(p.text, id); break;
      case kControl: impl->reserved.emplace(p.text, id); break;
      case kByte: {
        impl->reserved.emplace(p.text, id);
        // Exactly "<0xHH>": sscanf's %X would also take "-6" and index far outside byte_id
        // (found by fuzz_tokenizer).
        const std::string& t = p.text;
        if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || !std::isxdigit(static_cast<unsigned char>(t[3])) ||
            !std::isxdigit(static_cast<unsigned char>(t[4])) || t[5] != '>')
          top.fail("bad byte piece " + t);
        impl->byte_id[std::stoi(t.substr(3, 2), nullptr, 16)] = id;
        break;
      }
      default: top.fail("piece " + std::to_string(i) + " has unknown type " + std::to_string(p.type));
    }
  }
  std::sort(impl->user_defined.begin(), impl->user_defined.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  if (impl->unk < 0) top.fail("no unknown piece");
  if (impl->byte_fallback)
    for (int b = 0; b < 256; ++b)
      if (impl->byte_id[b] < 0) top.fail("byte fallback without all 256 byte pieces");
  auto control = [&](const std::string& piece) -> int64_t {
    const int id = impl->piece_id(piece);
    return id >= 0 && impl->pieces[id].type == kControl ? id : -1;
  };
  impl->bos = control(bos_piece);
  impl->eos = control(eos_piece);
  impl->pad = control(pad_piece);
  // Decoding indexes the logits with these ids: a model without them is refused here.
  if (impl->bos < 0) top.fail("the begin-of-sequence piece '" + bos_piece + "' is not a CONTROL piece");
  if (impl->eos < 0) top.fail("the end-of-sequence piece '" + eos_piece + "' is not a CONTROL piece");
  Tokenizer t;
  t.impl_ = std::move(impl);
  t.path_ = path;
  return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const { return impl_->encode(text); }

int Tokenizer::vocab_size() const { return static_cast<int>(impl_->pieces.size()); }
int64_t Tokenizer::bos_id() const { return impl_->bos; }
int64_t Tokenizer::eos_id() const { return impl_->eos; }
int64_t Tokenizer::unk_id() const { return impl_->unk; }
int64_t Tokenizer::pad_id() const { return impl_->pad; }

static int checked_id(int64_t id, int vocab, const std::string& path) {
  if (id < 0 || id >= vocab)
    throw Error("tokenizer " + path + ": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab) + ")");
  return static_cast<int>(id);
}

// As sentencepiece decodes: control pieces vanish, unk shows its surface, "▁" becomes a space
// (a leading one dropped while the text is still empty), runs of byte pieces become their bytes
// with each byte that is not part of a valid UTF-8 character replaced by U+FFFD.
std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text, bytes;
  auto flush_bytes = [&] {
    for (size_t i = 0; i < bytes.size();) {
      const size_t len = utf8_char_len(bytes, i);
      if (len == 0) {
        text += kReplacement;
        ++i;
      } else {
        text.append(bytes, i, len);
        i += len;
      }
    }
    bytes.clear();
  };
  for (int64_t raw : ids) {
    const auto& p = impl_->pieces[checked_id(raw, vocab_size(), path_)];
    if (p.type == kByte) {
      bytes.push_back(static_cast<char>(byte_value(raw)));
      continue;
    }
    flush_bytes();
    if (p.type == kControl) continue;
    if (p.type == kUnknown) {
      text += impl_->unk_surface;
      continue;
    }
    std::string_view piece(p.text);
    if (text.empty() && piece.substr(0, kSpace.size()) == kSpace) piece.remove_prefix(kSpace.size());
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpace.size(), kSpace) == 0) {
        text += ' ';
        i += kSpace.size();
      } else {
        text += piece[i++];
      }
    }
  }
  flush_bytes();
  return text;
}

std::string Tokenizer::id_to_piece(int64_t id) const { return impl_->pieces[checked_id(id, vocab_size(), path_)].text; }

int Tokenizer::byte_value(int64_t id) const {
  const auto& p = impl_->pieces[checked_id(id, vocab_size(), path_)];
  if (p.type != kByte) return -1;
  return static_cast<int>(std::stoul(p.text.substr(3, 2), nullptr, 16));
}

PromptIds build_prompt(const Tokenizer& tok, const std::string& system_prompt, const std::string& instruction,
                       int64_t bos) {
  PromptIds p;
  p.left.push_back(bos);
  for (int64_t id : tok.encode("[INST]<<SYS>>\n" + system_prompt + "\n<</SYS>>\n\n<SPEECH>")) p.left.push_back(id);
  p.right = tok.encode(" </SPEECH> " + instruction + " [/INST]");
  p.orig = tok.encode("\"" + instruction + "\"");
  return p;
}

}  // namespace wavllm::decoder
