#pragma once
// Decoding (SPEC section 6): the reference's procedure (prompt prefill, forced right[1:], EOS
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
  int max_new_tokens = 0;          // tokens after the forced prefix (EOS not counted); 0: no limit
  int max_steps = 512;             // decoder steps in all, forced ones included (reference limit)
  double temperature = 0;          // 0: greedy / beam search; > 0: sampling
  double top_p = 1;                // nucleus sampling mass, in (0, 1]
  int top_k = 0;                   // 0: no top-k cut
  std::optional<uint64_t> seed;    // sampling seed; none: a random one
  int num_beams = 1;               // > 1: beam search (temperature must be 0)
  double length_penalty = 1;       // beam score = sum logprob / length^length_penalty
  double repetition_penalty = 1;   // CTRL-style: logits of already generated ids / or * by this
  int no_repeat_ngram_size = 0;    // forbid repeating an n-gram of generated ids
  std::vector<std::string> stop;   // stop once the text contains one; the text is cut before it
  bool return_step_logits = false; // keep the (processed) logits of every step
  // An Error naming the option when a value is out of range.
  void validate() const;
};

struct GenerateResult {
  std::vector<int64_t> decoded_tokens;  // every token chosen after the initial BOS, forced prefix included
  std::vector<int64_t> generated_ids;   // after the forced prefix, EOS stripped
  std::string text;                     // decode(generated_ids), cut before a stop string
  at::Tensor step_logits;               // [steps, vocab] float32 on CPU, when asked (greedy/sampling: the
                                        // model's logits; beam search: those of the best beam's steps)
  double score = 0;                     // sum of log-probabilities of generated_ids (+ EOS), length-normalised for beams
  double prefill_seconds = 0, decode_seconds = 0;
};

// Receives the text as it grows, in pieces that are always whole UTF-8 characters.
using TextCallback = std::function<void(const std::string& piece)>;

// audio_embeds [T, dim] (any float dtype/device: moved to the model's), lora_scale [dim].
GenerateResult generate(const Llama& llm, const Tokenizer& tok, const at::Tensor& audio_embeds,
                        const PromptIds& prompt, const at::Tensor& lora_scale, const GenerateOptions& opt,
                        const TextCallback& on_text = nullptr);

}  // namespace wavllm::decoder
