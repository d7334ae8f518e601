#pragma once
// Audio front end (docs/model.md §1-§2): decode any file libsndfile reads, resample to 16 kHz
// and mix to mono like the reference (SoX `rate 16000` then `channels 1`), and the Whisper
// log-mel of HF's WhisperFeatureExtractor. Torch-free: the fuzzer and tools use it alone.
// Every failure is a wavllm::Error naming the input (path or label) and the reason.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wavllm::audio {

constexpr int kSampleRate = 16000;
constexpr size_t kPartSamples = 480000;  // one 30 s Whisper window
constexpr int kFramesPerPart = 3000;
constexpr int kHop = 160;
constexpr int kNfft = 400;
constexpr int kMaxChannels = 32;
// Sample rates outside this range are refused as corrupt headers, not resampled.
constexpr int kMinSampleRate = 1000;
constexpr int kMaxSampleRate = 768000;

struct DecodeOptions {
  // Longer audio is an Error: checked against the header's length before decoding, and against
  // what was decoded while decoding (for formats that do not tell their length).
  double max_seconds = 7200.0;
};

// The most samples (frames x channels) decode_file / decode_memory hold: 512 MiB of float32.
// A 60-s FLAC at 655 kHz with 8 channels is 2.5 times that; load_mono_16k takes any such file,
// in blocks.
constexpr size_t kMaxRawSamples = size_t(1) << 27;

// Decoded audio as float32 (integer formats scaled to [-1, 1]).
struct Buffer {
  std::vector<float> interleaved;
  int sample_rate = 0;
  int channels = 0;
  size_t frames() const { return channels > 0 ? interleaved.size() / static_cast<size_t>(channels) : 0; }
};

// The file's samples as decoded, for tools and tests; an Error beyond kMaxRawSamples.
Buffer decode_file(const std::string& path, const DecodeOptions& opt = {});
// `label` names the bytes in error messages.
Buffer decode_memory(const void* data, size_t size, const std::string& label, const DecodeOptions& opt = {});

// Resamples every channel to 16 kHz (libsoxr with SoX `rate`'s default: high quality, linear
// phase), THEN averages the channels: the reference's order. Streaming: push() blocks of any
// size, then finish(); the output is the same whatever the block sizes.
class MonoResampler {
 public:
  MonoResampler(int sample_rate, int channels);  // an Error for an unsupported rate or channel count
  ~MonoResampler();
  MonoResampler(const MonoResampler&) = delete;
  MonoResampler& operator=(const MonoResampler&) = delete;
  // Appends the 16 kHz mono samples that `frames` more input frames make ready to `out`.
  void push(const float* interleaved, size_t frames, std::vector<float>& out);
  // Appends the rest (the filter's tail).
  void finish(std::vector<float>& out);

 private:
  void drain(const float* in, size_t frames, bool flush, std::vector<float>& out);
  void mix(const float* interleaved, size_t frames, std::vector<float>& out) const;
  int rate_, channels_;
  void* soxr_ = nullptr;     // soxr_t; null at 16 kHz
  std::vector<float> block_;  // resampled interleaved frames of one soxr call
};

// One-shot MonoResampler. 16 kHz mono input is copied as is.
std::vector<float> to_mono_16k(const float* interleaved, size_t frames, int sample_rate, int channels);

// Decodes, checks, resamples and mixes down block by block: memory is the 16 kHz mono result
// plus one block, whatever the file's rate and channel count (no decompression bomb). An Error
// names the first NaN/Inf sample (of the file, or of the resampled result).
std::vector<float> load_mono_16k(const std::string& path, const DecodeOptions& opt = {});
std::vector<float> decode_mono_16k(const void* data, size_t size, const std::string& label,
                                   const DecodeOptions& opt = {});

// Empty input or a NaN/Inf sample is an Error naming `label` (and the first bad sample).
void check_samples(const float* s, size_t n, const std::string& label);

// In place (x - mean) / sqrt(var + 1e-7): HF Wav2Vec2FeatureExtractor's do_normalize, for a
// WavLM checkpoint that asks for it (wavlm-base does not).
void normalize_zero_mean_unit_var(std::vector<float>& samples);

struct LogMel {
  int parts = 0;
  int n_mels = 0;
  std::vector<float> values;          // [parts, n_mels, kFramesPerPart] row-major
  std::vector<int64_t> valid_frames;  // ceil(part_samples / kHop) per part
};

// Whisper log-mel of one 16 kHz waveform, cut into consecutive 30 s parts (the last shorter,
// each zero-padded to kPartSamples). The FFT plan and mel filterbank are built once per
// extractor; compute() is thread-safe and may run concurrently on one extractor.
class LogMelExtractor {
 public:
  explicit LogMelExtractor(int n_mels = 80);
  ~LogMelExtractor();
  LogMelExtractor(const LogMelExtractor&) = delete;
  LogMelExtractor& operator=(const LogMelExtractor&) = delete;

  int n_mels() const { return n_mels_; }
  LogMel compute(const float* samples, size_t n) const;
  // One part (n <= kPartSamples) into out[n_mels * kFramesPerPart].
  void compute_part(const float* samples, size_t n, float* out) const;

 private:
  struct Plan;
  int n_mels_;
  std::vector<double> window_;
  // Sparse Slaney filterbank: filter m covers FFT bins [first_[m], first_[m] + weights_[m].size()).
  std::vector<int> first_;
  std::vector<std::vector<double>> weights_;
  std::unique_ptr<Plan> plan_;
};

// Uses a process-wide extractor per n_mels (built on first use).
LogMel whisper_log_mel(const float* samples, size_t n, int n_mels = 80);

}  // namespace wavllm::audio
