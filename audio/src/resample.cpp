// 16 kHz mono conversion. The reference data loader runs SoX `rate 16000` (default quality
// -h: 20-bit precision, linear phase, 95% bandwidth, which is libsoxr's SOXR_HQ recipe: libsoxr
// is SoX's rate code as a library) and then `channels 1` (the mean of the channels).
#include <soxr.h>

#include <cmath>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wavllm::audio {

std::vector<float> to_mono_16k(const float* interleaved, size_t frames, int sample_rate, int channels) {
  if (channels < 1 || channels > kMaxChannels)
    throw Error("audio: " + std::to_string(channels) + " channels (supported: 1 to " + std::to_string(kMaxChannels) + ")");
  if (sample_rate < kMinSampleRate || sample_rate > kMaxSampleRate)
    throw Error("audio: sample rate " + std::to_string(sample_rate) + " Hz is outside " + std::to_string(kMinSampleRate) +
                " to " + std::to_string(kMaxSampleRate) + " Hz");
  if (frames == 0) throw Error("audio: contains no samples (empty audio)");
  const size_t ch = static_cast<size_t>(channels);

  std::vector<float> resampled;
  size_t out_frames = frames;
  const float* src = interleaved;
  if (sample_rate != kSampleRate) {
    const double ratio = static_cast<double>(kSampleRate) / sample_rate;
    // soxr emits round(frames * ratio) frames once flushed; one spare frame of room.
    const size_t capacity = static_cast<size_t>(std::ceil(static_cast<double>(frames) * ratio)) + 1;
    resampled.resize(capacity * ch);
    const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, SOXR_LINEAR_PHASE);
    const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);
    size_t done_out = 0;
    soxr_error_t err = soxr_oneshot(sample_rate, kSampleRate, ch, interleaved, frames, nullptr, resampled.data(),
                                    capacity, &done_out, &io, &quality, &runtime);
    if (err) throw Error(std::string("audio: resampling from ") + std::to_string(sample_rate) + " Hz failed: " + err);
    out_frames = done_out;
    src = resampled.data();
  }

  if (ch == 1) {
    if (resampled.empty()) return std::vector<float>(interleaved, interleaved + frames);
    resampled.resize(out_frames);
    return resampled;
  }
  std::vector<float> mono(out_frames);
  for (size_t i = 0; i < out_frames; ++i) {
    const float* row = src + i * ch;
    float sum = 0.0f;
    for (size_t c = 0; c < ch; ++c) sum += row[c];
    mono[i] = sum / static_cast<float>(ch);
  }
  return mono;
}

void normalize_zero_mean_unit_var(std::vector<float>& samples) {
  if (samples.empty()) return;
  // Double accumulators: hours of audio summed in float would drift.
  double mean = 0.0;
  for (float v : samples) mean += v;
  mean /= static_cast<double>(samples.size());
  double var = 0.0;
  for (float v : samples) var += (v - mean) * (v - mean);
  var /= static_cast<double>(samples.size());
  const double inv = 1.0 / std::sqrt(var + 1e-7);
  for (float& v : samples) v = static_cast<float>((v - mean) * inv);
}

}  // namespace wavllm::audio
