// 16 kHz mono conversion. The reference data loader runs SoX `rate 16000` (default quality
// -h: 20-bit precision, linear phase, 95% bandwidth, which is libsoxr's SOXR_HQ recipe: libsoxr
// is SoX's rate code as a library) and then `channels 1` (the mean of the channels).
#include <soxr.h>

#include <cmath>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wavllm::audio {

namespace {
constexpr size_t kBlockOutFrames = 1 << 14;  // resampled frames per soxr call
}

MonoResampler::MonoResampler(int sample_rate, int channels) : rate_(sample_rate), channels_(channels) {
  if (channels < 1 || channels > kMaxChannels)
    throw Error("audio: " + std::to_string(channels) + " channels (supported: 1 to " + std::to_string(kMaxChannels) + ")");
  if (sample_rate < kMinSampleRate || sample_rate > kMaxSampleRate)
    throw Error("audio: sample rate " + std::to_string(sample_rate) + " Hz is outside " + std::to_string(kMinSampleRate) +
                " to " + std::to_string(kMaxSampleRate) + " Hz");
  if (sample_rate == kSampleRate) return;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, SOXR_LINEAR_PHASE);
  const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);
  soxr_error_t err = nullptr;
  soxr_ = soxr_create(sample_rate, kSampleRate, static_cast<unsigned>(channels), &err, &io, &quality, &runtime);
  if (err || !soxr_)
    throw Error(std::string("audio: cannot resample from ") + std::to_string(sample_rate) + " Hz: " + (err ? err : "?"));
  block_.resize(kBlockOutFrames * static_cast<size_t>(channels));
}

MonoResampler::~MonoResampler() {
  if (soxr_) soxr_delete(static_cast<soxr_t>(soxr_));
}

void MonoResampler::mix(const float* interleaved, size_t frames, std::vector<float>& out) const {
  const size_t ch = static_cast<size_t>(channels_);
  if (ch == 1) {
    out.insert(out.end(), interleaved, interleaved + frames);
    return;
  }
  for (size_t i = 0; i < frames; ++i) {
    const float* row = interleaved + i * ch;
    float sum = 0.0f;
    for (size_t c = 0; c < ch; ++c) sum += row[c];
    out.push_back(sum / static_cast<float>(ch));
  }
}

void MonoResampler::drain(const float* in, size_t frames, bool flush, std::vector<float>& out) {
  const size_t ch = static_cast<size_t>(channels_);
  for (;;) {
    size_t used = 0, made = 0;
    const soxr_error_t err = soxr_process(static_cast<soxr_t>(soxr_), flush ? nullptr : in, flush ? 0 : frames,
                                          flush ? nullptr : &used, block_.data(), kBlockOutFrames, &made);
    if (err) throw Error(std::string("audio: resampling from ") + std::to_string(rate_) + " Hz failed: " + err);
    mix(block_.data(), made, out);
    if (!flush && frames > 0 && used == 0 && made == 0)  // never expected of libsoxr: a loop would hang
      throw Error("audio: the resampler from " + std::to_string(rate_) + " Hz made no progress");
    if (!flush) {
      in += used * ch;
      frames -= used;
    }
    // Done once the input is taken and a call no longer fills the block (nothing is pending).
    if (flush ? made == 0 : frames == 0 && made < kBlockOutFrames) return;
  }
}

void MonoResampler::push(const float* interleaved, size_t frames, std::vector<float>& out) {
  if (frames == 0) return;
  if (!soxr_) return mix(interleaved, frames, out);
  drain(interleaved, frames, false, out);
}

void MonoResampler::finish(std::vector<float>& out) {
  if (soxr_) drain(nullptr, 0, true, out);
}

std::vector<float> to_mono_16k(const float* interleaved, size_t frames, int sample_rate, int channels) {
  MonoResampler r(sample_rate, channels);
  if (frames == 0) throw Error("audio: contains no samples (empty audio)");
  std::vector<float> out;
  out.reserve(static_cast<size_t>(std::ceil(static_cast<double>(frames) * kSampleRate / sample_rate)) + 1);
  r.push(interleaved, frames, out);
  r.finish(out);
  return out;
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
