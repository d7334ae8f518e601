#pragma once
// Decoding (docs/model.md §6): the reference's procedure (prompt prefill, forced right[1:], EOS
// forbidden at the first free step, pad/unk never chosen, step limit) with greedy, sampling
// (temperature, top-k, top-p, seed) or beam search, plus repetition controls, stop strings and
// streaming text.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wavllm/core/generation.h"
#include "wavllm/decoder/llama.h"
#include "wavllm/decoder/tokenizer.h"

namespace wavllm::decoder {

// The decoder's continuation of one prompt.
struct Completion {
  std::vector<int64_t> decoded_tokens;  // every token chosen after the initial BOS, forced prefix (and EOS) included
  std::vector<int64_t> generated_ids;   // after the forced prefix, EOS stripped (a stop string's tokens kept)
  std::vector<float> generated_logprobs;  // per generated id: its log-probability under the step's distribution
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
Completion complete(const Llama& llm, const Tokenizer& tok, const at::Tensor& audio_embeds,
                    const PromptIds& prompt, const at::Tensor& lora_scale, const GenerationOptions& opt,
                    const TextCallback& on_text = nullptr);

// One request's greedy or sampled decoding, advanced a token at a time so that a scheduler can
// decode many requests in one batch: the prompt is prefilled alone (prefill()), then step()
// feeds every live sequence's last token through one Llama::step. complete() is this with a
// batch of one, so a request decodes to the same tokens alone or among others (on CPU: every
// product of a step is row-independent, nn::Linear::rowwise).
class Sequence {
 public:
  // What complete() takes, with num_beams 1 (an ArgumentError otherwise); everything is checked
  // here, before any compute. on_text is called from the thread that runs prefill() and step().
  Sequence(const Llama& llm, const Tokenizer& tok, at::Tensor audio_embeds, PromptIds prompt, at::Tensor lora_scale,
           GenerationOptions opt, TextCallback on_text = nullptr);
  ~Sequence();
  Sequence(Sequence&&) noexcept;

  // The prompt through the decoder, alone, and the first token chosen; then the forced
  // instruction tokens in one more pass, alone, each step's token chosen (docs/model.md §6).
  void prefill();
  // True once the sequence ended (EOS, a stop string, the step limit, stop(), or a failed step).
  bool done() const;
  // Ends the sequence where it is (a cancelled request) and frees its KV cache.
  void stop();
  size_t generated() const;  // tokens generated so far
  // The completion, once done(); an Error when a step failed for this sequence.
  Completion finish();

  struct Impl;

 private:
  friend void step(const Llama& llm, const std::vector<Sequence*>& batch);
  std::unique_ptr<Impl> impl_;
};

// One token more for each prefilled sequence of the batch that is not done, in one decoder pass.
void step(const Llama& llm, const std::vector<Sequence*>& batch);

}  // namespace wavllm::decoder
