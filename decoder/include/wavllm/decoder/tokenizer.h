#pragma once
// SentencePiece BPE tokenizer (the LLaMA-2 tokenizer.model, or the fixtures' tiny one), read and run
// without libsentencepiece (see decoder/CMakeLists.txt), and the prompt layout of docs/model.md §6.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wavllm::decoder {

class Tokenizer {
 public:
  // An Error names the file when it is missing or not a sentencepiece model.
  static Tokenizer load(const std::string& path);

  // Plain encode (no BOS/EOS added; the model's dummy "▁" prefix applies as in the reference).
  std::vector<int64_t> encode(const std::string& text) const;
  // As sentencepiece decodes; ids outside [0, vocab_size) are an Error. Control ids (bos, eos)
  // decode to nothing, unk to " ⁇ ", byte pieces not forming valid UTF-8 to U+FFFD each.
  std::string decode(const std::vector<int64_t>& ids) const;
  int vocab_size() const;
  // Special ids of the model (LLaMA-2: bos 1, eos 2, unk 0, no pad: -1).
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t unk_id() const;
  int64_t pad_id() const;
  // The piece of one id ("▁the", "<0x0A>"); an Error when out of range.
  std::string id_to_piece(int64_t id) const;
  // The byte of a byte-fallback piece "<0xNN>", or -1 for any other id.
  int byte_value(int64_t id) const;
  const std::string& path() const { return path_; }

 private:
  Tokenizer() = default;  // only load() makes one
  struct Impl;
  std::shared_ptr<const Impl> impl_;  // immutable after load: shared by copies and threads
  std::string path_;
};

// Token ids of one request (docs/model.md §6):
//   left  = [bos] + encode("[INST]<<SYS>>\n" + system + "\n<</SYS>>\n\n<SPEECH>")
//   right = encode(" </SPEECH> " + instruction + " [/INST]")   (right[0] is the lone "▁")
//   orig  = encode('"' + instruction + '"')                    (input of the prompt adapter)
struct PromptIds {
  std::vector<int64_t> left, right, orig;
};

// An empty instruction is valid, as in the reference data (SQQA items carry the question in the
// speech): orig is then encode("\"\""), which still gives the prompt adapter tokens.
PromptIds build_prompt(const Tokenizer& tok, const std::string& system_prompt, const std::string& instruction,
                       int64_t bos);

}  // namespace wavllm::decoder
