#include "wavllm/pipeline/segments.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wavllm {

namespace {

constexpr double kRate = audio::kSampleRate;

}  // namespace

SegmentedRun::SegmentedRun(std::shared_ptr<const Model> model, std::vector<float> samples16k, std::string instruction,
                           GenerationOptions options, const audio::VadOptions& vad, int encoder_batch)
    : model_(std::move(model)), samples_(std::move(samples16k)), instruction_(std::move(instruction)),
      options_(std::move(options)) {
  options_.validate();
  if (encoder_batch < 1 || encoder_batch > kMaxEncoderBatch)
    throw ArgumentError("encoder batch must be 1 to " + std::to_string(kMaxEncoderBatch) + " pieces, got " +
                        std::to_string(encoder_batch));
  encoder_batch_ = size_t(encoder_batch);
  if (const std::string p = vad.problem(); !p.empty()) throw ArgumentError("voice activity option " + p);
  const int64_t fits = model_->longest_audio_samples(instruction_);
  if (int64_t(vad.max_piece_seconds * kRate) > fits) {
    char text[160];
    std::snprintf(text, sizeof text, "pieces of up to %.1f s do not fit the model's context with this instruction "
                  "(%.1f s at most): use a shorter --max-segment", vad.max_piece_seconds, double(fits) / kRate);
    throw ResourceError(text);
  }
  pieces_ = audio::speech_pieces(samples_.data(), samples_.size(), vad);
}

double SegmentedRun::duration_seconds() const { return double(samples_.size()) / kRate; }

double SegmentedRun::speech_seconds() const {
  double total = 0;
  for (const auto& p : pieces_) total += double(p.length()) / kRate;
  return total;
}

double SegmentedRun::done_seconds() const {
  return next_ == 0 ? 0 : next_ == pieces_.size() ? duration_seconds() : double(pieces_[next_ - 1].end) / kRate;
}

std::optional<Segment> SegmentedRun::next(const decoder::TextCallback& on_text) {
  if (next_ >= pieces_.size()) return std::nullopt;
  if (encoded_.empty()) {
    std::vector<std::vector<float>> batch;
    for (size_t k = next_; k < std::min(pieces_.size(), next_ + encoder_batch_); ++k)
      batch.emplace_back(samples_.begin() + pieces_[k].begin, samples_.begin() + pieces_[k].end);
    std::vector<WhisperEncoded> whisper = model_->encode_whisper(batch);
    for (size_t k = 0; k < batch.size(); ++k) encoded_.emplace_back(std::move(batch[k]), std::move(whisper[k]));
  }
  const audio::Span piece = pieces_[next_];
  const auto [samples, whisper] = std::move(encoded_.front());
  encoded_.pop_front();
  GenerationResult r = model_->generate(samples, whisper, instruction_, options_, on_text);
  ++next_;
  // glibc keeps the freed heap of every piece's work (its mmap threshold rises after the first
  // large frees): a one-hour recording grew by 430 MB that way. Handing it back per piece keeps
  // memory at the audio plus one piece (measured: eval/RESULTS.md).
  malloc_trim(0);
  Segment s;
  s.start = double(piece.begin) / kRate;
  s.end = double(piece.end) / kRate;
  s.text = std::move(r.text);
  s.avg_logprob = r.avg_logprob();
  s.token_ids = std::move(r.token_ids);
  s.token_logprobs = std::move(r.token_logprobs);
  s.timings = r.timings;
  return s;
}

}  // namespace wavllm
