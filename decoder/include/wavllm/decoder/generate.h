#pragma once
// Decoding (docs/model.md §6): the reference's procedure (prompt prefill, forced right[1:], EOS
// forbidden at the first free step, pad/unk never chosen, step limit) with greedy, sampling
// (temperature, top-k, top-p, seed) or beam search, plus repetition controls, stop strings and
// streaming text.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wavllm/decoder/llama.h"
#include "wavllm/decoder/tokenizer.h"

namespace wavllm::decoder {

struct GenerateOptions {
  static constexpr size_t kMaxStopStrings = 64;
  static constexpr size_t kMaxStopBytes = 1024;

  int max_new_tokens = 0;          // stop after this many tokens past the forced prefix; 0: no limit
  int max_steps = 512;             // decoder steps in all, forced ones included: at step max_steps only
                                   // EOS may be chosen (the reference's max_len)
  double temperature = 0;          // 0: greedy / beam search; > 0: sampling from softmax(logits / T)
  double top_p = 1;                // nucleus sampling mass, in (0, 1]
  int top_k = 0;                   // sampling among the k best tokens; 0: all
  std::optional<uint64_t> seed;    // sampling seed (same seed, same output); none: a random one
  int num_beams = 1;               // > 1: beam search (temperature must be 0)
  double length_penalty = 1;       // score = sum of log-probs / (tokens decoded)^length_penalty
  double repetition_penalty = 1;   // logits of already generated ids: / p when > 0, * p when < 0
  int no_repeat_ngram_size = 0;    // never repeat an n-gram of the generated ids
  std::vector<std::string> stop;   // stop once the text contains one of these; the text is cut before it
  bool return_step_logits = false; // keep the model's logits of every step
  // An Error naming the option when a value is out of range.
  void validate() const;
};

struct GenerateResult {
  std::vector<int64_t> decoded_tokens;  // every token chosen after the initial BOS, forced prefix (and EOS) included
  std::vector<int64_t> generated_ids;   // after the forced prefix, EOS stripped (a stop string's tokens kept)
  std::string text;                     // decode(generated_ids), cut before a stop string
  at::Tensor step_logits;               // [decoded_tokens, vocab] float32 on CPU, when asked (beam search: the
                                        // logits along the best hypothesis)
  // Sum of the log-probabilities of decoded_tokens (forced ones included, each under the model's whole
  // distribution as in fairseq) / decoded_tokens.size()^length_penalty.
  double score = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Receives the text as it grows, in pieces that are always whole UTF-8 characters.
using TextCallback = std::function<void(const std::string& piece)>;

// audio_embeds [T >= 1, dim] (any float dtype/device: moved to the model's), lora_scale [dim]
// (PromptAdapter::scale of the instruction). Step 0 feeds [emb(left); audio; emb(bos)]; the
// first len(right) - 1 steps are forced to right[1:]. An Error before any computation when the
// prompt with its forced prefix and one free token does not fit in the rotary table, or an option
// is invalid. Beam search calls on_text once, with the final text.
GenerateResult generate(const Llama& llm, const Tokenizer& tok, const at::Tensor& audio_embeds,
                        const PromptIds& prompt, const at::Tensor& lora_scale, const GenerateOptions& opt,
                        const TextCallback& on_text = nullptr);

}  // namespace wavllm::decoder
