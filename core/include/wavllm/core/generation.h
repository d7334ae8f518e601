#pragma once
// Decoding options (docs/model.md §6): one struct with one rule set, filled from config.json's
// "generation" section, overridden by CLI flags and Python keywords (the binding exposes this
// very struct as wavllm.GenerationOptions).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wavllm {

struct GenerationOptions {
  // The bounds every source of these values shares.
  static constexpr int kMaxBeams = 16;            // beam search cost grows with beams x steps
  static constexpr int kMaxSteps = 1 << 16;
  static constexpr double kMinTemperature = 1e-3;  // smaller values underflow logits / T in float32
  static constexpr double kMaxTemperature = 100.0;
  static constexpr int kMaxNoRepeatNgram = 64;
  static constexpr size_t kMaxStopStrings = 64;    // each decoded piece is matched against every one
  static constexpr size_t kMaxStopBytes = 1024;

  // Read from and written to config.json:
  int max_steps = 512;             // decoder steps in all, forced ones included: at step max_steps only
                                   // EOS may be chosen (the reference's max_len)
  double temperature = 0;          // 0: greedy / beam search (the reference); > 0: sampling from softmax(logits / T)
  double top_p = 1;                // nucleus sampling mass, in (0, 1]
  int top_k = 0;                   // sampling among the k best tokens; 0: all
  int num_beams = 1;               // > 1: beam search (temperature must be 0)
  double length_penalty = 1;       // score = sum of log-probs / (tokens decoded)^length_penalty
  double repetition_penalty = 1;   // logits of already generated ids: / p when > 0, * p when < 0
  int no_repeat_ngram_size = 0;    // never repeat an n-gram of the generated ids
  // Per request only:
  int max_new_tokens = 0;          // stop after this many tokens past the forced prefix; 0: no limit
  std::optional<uint64_t> seed;    // sampling seed (same seed, same output); none: a random one
  std::vector<std::string> stop;   // stop once the text contains one of these; the text is cut before it
  bool return_step_logits = false; // keep the model's logits of every step

  // The one rule set: "" when valid, else "temperature: must be ..." naming the first field
  // that breaks it (config.json reports it as bad input, a request as a bad argument).
  std::string problem() const;
  // An ArgumentError "generation option <problem>" when a value is out of range.
  void validate() const;
};

}  // namespace wavllm
