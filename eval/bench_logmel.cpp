// Times the Whisper log-mel (wavllm::audio::LogMelExtractor, one thread) on S seconds of
// audio, then runs eval/bench_logmel.py: the same log-mel through torch.stft (the way HF's
// torch path computes it) with 1 thread and with all threads. Reports milliseconds per call
// (best of --repeat) and how many times faster than real time.
//
//   bench_logmel [--seconds S] [--repeat R] [--python /usr/bin/python3 | --no-python]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "bench_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace {

using wavllm::Error;

struct Options {
  double seconds = 30.0;
  int repeat = 20;
  std::string python = "/usr/bin/python3";
};

Options parse(int argc, char** argv) {
  Options o;
  wavllm::bench::parse_options(argc, argv, [&](const std::string& a, const auto& value) {
    if (a == "--seconds") o.seconds = std::stod(value());
    else if (a == "--repeat") o.repeat = std::stoi(value());
    else if (a == "--python") o.python = value();
    else if (a == "--no-python") o.python.clear();
    else return false;
    return true;
  });
  if (o.seconds <= 0 || o.repeat < 1) throw Error("--seconds and --repeat must be positive");
  return o;
}

// Two tones and white noise: no silent frame, so every frame's FFT runs.
std::vector<float> test_signal(size_t n) {
  std::vector<float> s(n);
  uint32_t state = 12345;
  for (size_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    const double noise = (state >> 8) / double(1 << 24) - 0.5;
    s[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * 220.0 * i / 16000) + 0.1 * std::sin(2 * M_PI * 3000.0 * i / 16000) +
                              0.05 * noise);
  }
  return s;
}

void report(const std::string& impl, double seconds_per_call, double audio_seconds) {
  std::printf("%-22s %9.2f %12.0f\n", impl.c_str(), seconds_per_call * 1e3, audio_seconds / seconds_per_call);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::vector<float> wave = test_signal(static_cast<size_t>(o.seconds * wavllm::audio::kSampleRate));
  const wavllm::audio::LogMelExtractor extractor(80);
  extractor.compute(wave.data(), wave.size());  // warm-up: page in buffers
  const double best = wavllm::bench::best_seconds(o.repeat, [&] { extractor.compute(wave.data(), wave.size()); });
  std::vector<std::string> notes;
  std::map<std::string, double> theirs;
  if (!o.python.empty())
    theirs = wavllm::bench::run_script(o.python + " " + WAVLLM_EVAL_DIR + "/bench_logmel.py --seconds " +
                                           std::to_string(o.seconds) + " --repeat " + std::to_string(o.repeat),
                                       notes);

  std::printf("Whisper log-mel (80 mels) of %.1f s of audio, best of %d\n", o.seconds, o.repeat);
  std::printf("%-22s %9s %12s\n", "impl", "ms/call", "x realtime");
  report("wavllm-1-thread", best, o.seconds);
  for (const auto& [impl, seconds] : theirs) report(impl, seconds, o.seconds);
  for (const std::string& n : notes) std::printf("  [python] %s", n.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return wavllm::bench::guarded_main("bench_logmel", run, argc, argv); }
