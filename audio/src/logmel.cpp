// Whisper log-mel (HF WhisperFeatureExtractor, docs/model.md §2) with double-precision FFTW,
// like the reference's float64 numpy: a float32 FFT leaves ~3e-5 of error in the quiet bins
// just above the (max - 8) clamp, double leaves only the final float32 rounding, and costs
// no measurable time (the FFTs are a small part of the work).
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wavllm::audio {
namespace {

constexpr int kBins = kNfft / 2 + 1;
constexpr int kPad = kNfft / 2;  // centred frames: reflect padding on both sides
constexpr double kLogFloor = -10.0;  // log10(1e-10), the value of a silent frame

// FFTW's planner keeps global state: plan creation and destruction must be serialised.
// Executing a plan on new arrays (fftw_execute_dft_r2c) is thread-safe.
std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

// Slaney mel scale (librosa htk=False): linear below 1 kHz, logarithmic above.
double hz_to_mel(double hz) {
  const double logstep = std::log(6.4) / 27.0;
  return hz < 1000.0 ? 3.0 * hz / 200.0 : 15.0 + std::log(hz / 1000.0) / logstep;
}
double mel_to_hz(double mel) {
  const double logstep = std::log(6.4) / 27.0;
  return mel < 15.0 ? 200.0 * mel / 3.0 : 1000.0 * std::exp(logstep * (mel - 15.0));
}

// An fftw_malloc'd array: SIMD-aligned like the arrays the plan was made on, which
// fftw_execute_dft_r2c requires of the arrays it is given.
template <class T>
struct FftwArray {
  explicit FftwArray(size_t n) : p(static_cast<T*>(fftw_malloc(n * sizeof(T)))) {
    if (!p) throw std::bad_alloc();
  }
  ~FftwArray() { fftw_free(p); }
  FftwArray(const FftwArray&) = delete;
  FftwArray& operator=(const FftwArray&) = delete;
  T* p;
};

}  // namespace

struct LogMelExtractor::Plan {
  fftw_plan plan = nullptr;
};

LogMelExtractor::LogMelExtractor(int n_mels) : n_mels_(n_mels), plan_(std::make_unique<Plan>()) {
  if (n_mels < 1 || n_mels > kBins)
    throw Error("log-mel: n_mels " + std::to_string(n_mels) + " is outside 1 to " + std::to_string(kBins));

  // Periodic Hann window (numpy hanning(401)[:-1]).
  window_.resize(kNfft);
  for (int i = 0; i < kNfft; ++i) window_[i] = 0.5 - 0.5 * std::cos(2.0 * M_PI * i / kNfft);

  // Triangular filters between n_mels + 2 points evenly spaced in mel from 0 to 8 kHz, each
  // scaled by 2 / (its width in Hz) (Slaney area normalisation); double like librosa/HF.
  const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(kSampleRate / 2.0);
  std::vector<double> edges(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) edges[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1));
  first_.resize(n_mels);
  weights_.resize(n_mels);
  for (int m = 0; m < n_mels; ++m) {
    const double norm = 2.0 / (edges[m + 2] - edges[m]);
    std::vector<double> row(kBins);
    for (int k = 0; k < kBins; ++k) {
      const double f = static_cast<double>(k) * kSampleRate / kNfft;
      const double down = (f - edges[m]) / (edges[m + 1] - edges[m]);
      const double up = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
      row[k] = std::max(0.0, std::min(down, up)) * norm;
    }
    int lo = 0, hi = kBins;
    while (lo < hi && row[lo] == 0.0) ++lo;
    while (hi > lo && row[hi - 1] == 0.0) --hi;
    first_[m] = lo;
    weights_[m].assign(row.begin() + lo, row.begin() + hi);
  }

  FftwArray<double> in(kNfft);
  FftwArray<fftw_complex> out(kBins);
  std::lock_guard<std::mutex> lock(planner_mutex());
  plan_->plan = fftw_plan_dft_r2c_1d(kNfft, in.p, out.p, FFTW_ESTIMATE);
  if (!plan_->plan) throw Error("log-mel: FFTW could not plan a " + std::to_string(kNfft) + "-point FFT");
}

LogMelExtractor::~LogMelExtractor() {
  std::lock_guard<std::mutex> lock(planner_mutex());
  fftw_destroy_plan(plan_->plan);
}

void LogMelExtractor::compute_part(const float* samples, size_t n, float* out) const {
  if (n > kPartSamples)
    throw Error("log-mel: a part holds at most " + std::to_string(kPartSamples) + " samples, got " + std::to_string(n));
  // The part zero-padded to 30 s, then reflect-padded by kPad on both sides (numpy "reflect":
  // the edge sample is not repeated).
  constexpr long kLen = static_cast<long>(kPartSamples);
  std::vector<float> padded(kPartSamples + 2 * kPad, 0.0f);
  for (long p = 0; p < static_cast<long>(padded.size()); ++p) {
    long i = p - kPad;
    if (i < 0) i = -i;
    if (i >= kLen) i = 2 * (kLen - 1) - i;
    padded[p] = static_cast<size_t>(i) < n ? samples[i] : 0.0f;
  }

  FftwArray<double> frame(kNfft);
  FftwArray<fftw_complex> spec(kBins);
  std::vector<double> power(kBins);
  double max_log = kLogFloor;
  for (int t = 0; t < kFramesPerPart; ++t) {  // the reference's frame 3000 is dropped
    const float* src = padded.data() + static_cast<size_t>(t) * kHop;
    bool silent = true;
    for (int i = 0; i < kNfft; ++i) {
      frame.p[i] = src[i] * window_[i];
      silent = silent && frame.p[i] == 0.0;
    }
    // A silent frame's spectrum is exactly zero: skip the FFT (most of a short part).
    if (silent) {
      for (int m = 0; m < n_mels_; ++m) out[static_cast<size_t>(m) * kFramesPerPart + t] = static_cast<float>(kLogFloor);
      continue;
    }
    fftw_execute_dft_r2c(plan_->plan, frame.p, spec.p);
    for (int k = 0; k < kBins; ++k) {
      const double re = spec.p[k][0], im = spec.p[k][1];
      power[k] = re * re + im * im;
    }
    for (int m = 0; m < n_mels_; ++m) {
      const std::vector<double>& w = weights_[m];
      const double* pw = power.data() + first_[m];
      double acc = 0.0;
      for (size_t k = 0; k < w.size(); ++k) acc += w[k] * pw[k];
      const double v = std::log10(std::max(1e-10, acc));
      max_log = std::max(max_log, v);
      out[static_cast<size_t>(m) * kFramesPerPart + t] = static_cast<float>(v);
    }
  }
  // Dynamic range of 8 (80 dB) below the window's loudest bin, then scaled to about [-1, 1].
  const double floor = max_log - 8.0;
  for (size_t i = 0; i < static_cast<size_t>(n_mels_) * kFramesPerPart; ++i)
    out[i] = static_cast<float>((std::max(static_cast<double>(out[i]), floor) + 4.0) / 4.0);
}

LogMel LogMelExtractor::compute(const float* samples, size_t n) const {
  if (n == 0) throw Error("log-mel: empty audio (0 samples)");
  LogMel r;
  r.n_mels = n_mels_;
  r.parts = static_cast<int>((n + kPartSamples - 1) / kPartSamples);
  const size_t part_values = static_cast<size_t>(n_mels_) * kFramesPerPart;
  r.values.resize(static_cast<size_t>(r.parts) * part_values);
  for (int p = 0; p < r.parts; ++p) {
    const size_t begin = static_cast<size_t>(p) * kPartSamples;
    const size_t len = std::min(kPartSamples, n - begin);
    compute_part(samples + begin, len, r.values.data() + static_cast<size_t>(p) * part_values);
    r.valid_frames.push_back(static_cast<int64_t>((len + kHop - 1) / kHop));
  }
  return r;
}

LogMel whisper_log_mel(const float* samples, size_t n, int n_mels) {
  // Never destroyed: an extractor outliving exit() cannot race static destruction of the
  // planner mutex it locks in its destructor.
  static std::mutex m;
  static auto* extractors = new std::map<int, std::unique_ptr<LogMelExtractor>>();
  const LogMelExtractor* e;
  {
    std::lock_guard<std::mutex> lock(m);
    auto& slot = (*extractors)[n_mels];
    if (!slot) slot = std::make_unique<LogMelExtractor>(n_mels);
    e = slot.get();
  }
  return e->compute(samples, n);
}

}  // namespace wavllm::audio
