// Times both speech encoders at the released model's sizes (Whisper-large-v2 on one 30-s part,
// WavLM-base on 30 s of audio) with random weights built in memory (nn::Scope::random); after each, runs
// eval/bench_encoders.py: the same computation written in PyTorch, same threads and sizes.
// Reports seconds per forward and GFLOP/s (matrix products and convolutions only).
//
//   bench_encoders [--threads N] [--seconds S] [--repeat R] [--device cpu] [--dtype float32]
//                  [--whisper-layers L] [--whisper-batch B] [--whisper-margin S]
//                  [--python /usr/bin/python3 | --no-python]
// --seconds is WavLM's input length (default 30); --whisper-layers shortens a run on a slow
// machine (default: all 32; time scales with the layers); --whisper-batch also times B parts in
// one batch (the row "batchB", per part); --whisper-margin also times a part holding --seconds
// of audio encoded over the audio plus S seconds only (the row "marginS").
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_util.h"
#include "wavllm/core/config.h"
#include "wavllm/core/error.h"
#include "wavllm/core/cpu_allocator.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/random_model.h"
#include "wavllm/encoders/encoders.h"

namespace {

using namespace wavllm;

struct Options {
  int threads = 0;
  double seconds = 30.0;
  int repeat = 1;
  int whisper_layers = 0;  // 0: the released model's
  int whisper_batch = 0;   // >0: also time this many 30-s parts in one batch (long recordings' --encoder-batch)
  double whisper_margin = -1;  // >= 0: also time --seconds of audio with this --whisper-margin
  std::string device = "cpu";
  std::string dtype = "float32";
  std::string python = "/usr/bin/python3";
};

Options parse(int argc, char** argv) {
  Options o;
  bench::parse_options(argc, argv, [&](const std::string& a, const auto& value) {
    if (a == "--threads") o.threads = std::stoi(value());
    else if (a == "--seconds") o.seconds = std::stod(value());
    else if (a == "--repeat") o.repeat = std::stoi(value());
    else if (a == "--whisper-layers") o.whisper_layers = std::stoi(value());
    else if (a == "--whisper-batch") o.whisper_batch = std::stoi(value());
    else if (a == "--whisper-margin") o.whisper_margin = std::stod(value());
    else if (a == "--device") o.device = value();
    else if (a == "--dtype") o.dtype = value();
    else if (a == "--python") o.python = value();
    else if (a == "--no-python") o.python.clear();
    else return false;
    return true;
  });
  if (o.seconds <= 0 || o.repeat < 1 || o.whisper_layers < 0 || o.whisper_batch < 0)
    throw Error("--seconds must be > 0, --repeat >= 1, --whisper-layers and --whisper-batch >= 0");
  return o;
}

// Multiply-adds x 2 of the matrix products and convolutions (elementwise work is left out).
double whisper_flops(const WhisperConfig& c) {
  const double d = c.d_model, n = c.max_source_positions, frames = 2 * n;
  const double stem = 2 * frames * d * c.num_mel_bins * 3 + 2 * n * d * d * 3;
  const double layer = 2 * n * d * d * 4 + 2 * 2 * n * n * d + 2 * 2 * n * d * c.encoder_ffn_dim;
  return stem + c.encoder_layers * layer;
}

double wavlm_flops(const WavLMConfig& c, int64_t samples, int64_t frames) {
  double flops = 0, t = double(samples), in_ch = 1;
  for (size_t i = 0; i < c.conv_dim.size(); ++i) {
    t = std::floor((t - c.conv_kernel[i]) / c.conv_stride[i]) + 1;
    flops += 2 * t * c.conv_dim[i] * in_ch * c.conv_kernel[i];
    in_ch = c.conv_dim[i];
  }
  const double h = c.hidden_size, n = double(frames);
  flops += 2 * n * in_ch * h;                                                       // feature projection
  flops += 2 * n * h * (h / c.num_conv_pos_embedding_groups) * c.num_conv_pos_embeddings;  // pos_conv
  const double layer = 2 * n * h * h * 4 + 2 * 2 * n * n * h + 2 * 2 * n * h * c.intermediate_size;
  return flops + c.num_hidden_layers * layer;
}

// A negative time: that run failed.
void report(const std::string& encoder, const std::string& impl, double seconds, double flops) {
  if (seconds < 0) {
    std::printf("%-8s %-8s %9s\n", encoder.c_str(), impl.c_str(), "failed");
    std::fflush(stdout);
    return;
  }
  std::printf("%-8s %-8s %9.2f %9.0f %9.1f\n", encoder.c_str(), impl.c_str(), seconds, flops / 1e9,
              flops / 1e9 / seconds);
  std::fflush(stdout);
}

// The script times one encoder and prints "RESULT <encoder> <seconds>"; its other lines are
// shown. Returns a negative time when it fails.
double run_python(const Options& o, const std::string& config, int threads, const std::string& encoder) {
  std::vector<std::string> notes;
  const auto results = bench::run_script(
      o.python + " " + WAVLLM_EVAL_DIR + "/bench_encoders.py --config " + config + " --encoder " + encoder +
          " --threads " + std::to_string(threads) + " --seconds " + std::to_string(o.seconds) + " --repeat " +
          std::to_string(o.repeat) + " --device " + o.device + " --dtype " + dtype_label(parse_dtype(o.dtype)),
      notes);
  for (const std::string& n : notes) std::printf("  [python] %s", n.c_str());
  const auto it = results.find(encoder);
  return it == results.end() ? -1 : it->second;
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  set_threads(o.threads);
  const int threads = at::get_num_threads();
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = parse_dtype(o.dtype);
  InferenceGuard guard;

  ModelConfig cfg = ModelConfig::released();
  if (o.whisper_layers > 0) cfg.whisper.encoder_layers = o.whisper_layers;
  const int64_t samples = int64_t(o.seconds * 16000);
  std::printf("encoders at the released sizes, random weights, %s %s, %d threads, best of %d run(s)\n",
              o.device.c_str(), dtype_label(dtype).c_str(), threads, o.repeat);
  std::printf("  Whisper d %d x %d layers on one 30-s part; WavLM h %d x %d layers on %.1f s\n", cfg.whisper.d_model,
              cfg.whisper.encoder_layers, cfg.wavlm.hidden_size, cfg.wavlm.num_hidden_layers, o.seconds);
  std::printf("%-8s %-8s %9s %9s %9s\n", "encoder", "impl", "seconds", "GFLOP", "GFLOP/s");
  std::fflush(stdout);
  const std::string config = "/tmp/wavllm_bench_encoders_" + std::to_string(::getpid()) + ".json";
  if (!o.python.empty()) std::ofstream(config) << cfg.to_json_text();

  // Each encoder is timed here, its weights freed, then timed in PyTorch right after, so that
  // both see about the same machine load and only one copy of the weights is in memory.
  // .item() waits for the device, so a time covers the whole forward.
  {
    RandomModelOptions random;
    random.dtype = dtype;
    const nn::Scope w = nn::Scope::random(random, device);
    const at::Tensor mel = at::randn({1, cfg.whisper.num_mel_bins, 2 * cfg.whisper.max_source_positions});
    const std::vector<int64_t> valid = {2 * cfg.whisper.max_source_positions};
    WhisperConfig one_layer = cfg.whisper;  // warm-up (allocator, thread pools) at a fraction of the cost
    one_layer.encoder_layers = 1;
    encoders::WhisperEncoder(one_layer, w).forward(mel, valid).sum().item();
    const encoders::WhisperEncoder whisper(cfg.whisper, w);
    report("whisper", "wavllm", bench::best_seconds(o.repeat, [&] { whisper.forward(mel, valid).sum().item(); }),
           whisper_flops(cfg.whisper));
    if (o.whisper_batch > 0) {
      // The same parts in one batch: seconds and GFLOP/s per part, beside the single part above.
      const at::Tensor mels = mel.expand({o.whisper_batch, -1, -1}).contiguous();
      const std::vector<int64_t> valids(size_t(o.whisper_batch), valid.front());
      const double s = bench::best_seconds(o.repeat, [&] { whisper.forward(mels, valids).sum().item(); });
      report("whisper", "batch" + std::to_string(o.whisper_batch), s / o.whisper_batch, whisper_flops(cfg.whisper));
    }
    if (o.whisper_margin >= 0) {
      // --seconds of audio in the part, encoded over the audio plus the margin only (GFLOP/s
      // counted as for the whole window: the row shows the time saved, not a rate).
      const std::vector<int64_t> short_valid = {std::min<int64_t>(valid.front(), int64_t(o.seconds * 100))};
      const int64_t margin = int64_t(o.whisper_margin * 100);
      const double s = bench::best_seconds(o.repeat, [&] { whisper.forward(mel, short_valid, margin).sum().item(); });
      char label[32];
      std::snprintf(label, sizeof label, "margin%g", o.whisper_margin);
      report("whisper", label, s, whisper_flops(cfg.whisper));
    }
  }
  if (!o.python.empty()) report("whisper", "pytorch", run_python(o, config, threads, "whisper"), whisper_flops(cfg.whisper));
  {
    RandomModelOptions random;
    random.dtype = dtype;
    const nn::Scope w = nn::Scope::random(random, device);
    const at::Tensor wave = at::randn({samples}) * 0.1;
    const encoders::WavLMEncoder wavlm(cfg.wavlm, w);
    wavlm.weighted_sum(wavlm.hidden_states(wave.narrow(0, 0, std::min<int64_t>(samples, 16000)))).sum().item();
    report("wavlm", "wavllm", bench::best_seconds(o.repeat, [&] { wavlm.weighted_sum(wavlm.hidden_states(wave)).sum().item(); }),
           wavlm_flops(cfg.wavlm, samples, wavlm.frames(samples)));
    if (!o.python.empty())
      report("wavlm", "pytorch", run_python(o, config, threads, "wavlm"), wavlm_flops(cfg.wavlm, samples, wavlm.frames(samples)));
  }
  if (!o.python.empty()) std::remove(config.c_str());
  if (cpu_allocator_installed()) {
    const BlockCache::Stats a = cpu_allocator_stats();
    std::printf("tensor blocks from 32 MiB (core/cpu_allocator.h): %llu reused, %llu mapped\n",
                static_cast<unsigned long long>(a.hits), static_cast<unsigned long long>(a.misses));
  } else {
    std::printf("tensor blocks: LibTorch's allocator (WAVLLM_CPU_ALLOCATOR=system)\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return wavllm::bench::guarded_main("bench_encoders", run, argc, argv); }
