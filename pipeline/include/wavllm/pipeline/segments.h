#pragma once
// A recording as pieces (docs/model.md §11): the voice detector's pieces of speech, each one
// request with the same instruction, their text and tokens with start and end seconds on the
// recording's timeline. Silence is never decoded: a recording without speech has no piece.
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wavllm/audio/vad.h"
#include "wavllm/pipeline/model.h"

namespace wavllm {

struct Segment {
  double start = 0, end = 0;  // seconds from the start of the recording
  std::string text;
  std::vector<int64_t> token_ids;
  std::vector<float> token_logprobs;  // per token id
  double avg_logprob = 0;
  StageTimings timings;
};

class SegmentedRun {
 public:
  // Finds the pieces (no decoding yet). A ResourceError when --max-segment's pieces would not fit
  // the model's context with this instruction; options are checked as generate() checks them.
  // encoder_batch (1 to kMaxEncoderBatch) pieces at a time share one pass of the Whisper encoder;
  // each is then decoded alone, in order.
  SegmentedRun(std::shared_ptr<const Model> model, std::vector<float> samples16k, std::string instruction,
               GenerationOptions options, const audio::VadOptions& vad, int encoder_batch = 1);
  static constexpr int kMaxEncoderBatch = 64;

  const std::vector<audio::Span>& pieces() const { return pieces_; }
  size_t done() const { return next_; }
  double duration_seconds() const;
  double speech_seconds() const;  // the pieces' total
  double done_seconds() const;    // the recording's timeline covered by the pieces decoded so far

  // Decodes the next piece; nullopt once every piece is done.
  std::optional<Segment> next(const decoder::TextCallback& on_text = nullptr);

 private:
  std::shared_ptr<const Model> model_;
  std::vector<float> samples_;
  std::string instruction_;
  GenerationOptions options_;
  std::vector<audio::Span> pieces_;
  size_t next_ = 0;
  size_t encoder_batch_ = 1;
  // Pieces encoded ahead of their decoding (the rest of the current encoder batch).
  std::deque<std::pair<std::vector<float>, WhisperEncoded>> encoded_;
};

}  // namespace wavllm
