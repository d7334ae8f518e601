// Times the LLaMA decoder with prompt-aware LoRA: prefill (one forward over the prompt and audio
// positions) and decoding (one token per forward with the KV cache), with random weights built in
// memory one tensor at a time; then eval/bench_decoder.py runs the same computation the
// reference's way in PyTorch, same shapes, dtype and threads. Shapes: "1b" (a 1.1B LLaMA, dim 2048,
// 22 layers, float32) and "7b" (the released LLaMA-2-7B, bfloat16: 13.5 GB, checked against the
// free memory first; float32 would not fit a 24-GB machine). Reports tokens/s and peak RSS.
//
//   bench_decoder [--shape 1b|7b|both] [--prompt P] [--new N] [--repeat R] [--threads N]
//                 [--layers L (fewer layers: quick runs)] [--python /usr/bin/python3 | --no-python]
//                 [--quantize q8_0|q4_0 (the decoder layers' projections quantized; PyTorch stays float)]
// Beside tokens/s it prints the weight bytes a decoding step reads and the GB/s that makes,
// against a streaming read measured in the same run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "bench_util.h"
#include "wavllm/core/config.h"
#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/random_model.h"
#include "wavllm/decoder/llama.h"

namespace {

using namespace wavllm;

struct Options {
  std::string shape = "1b";
  int prompt = 256;  // left prompt (~57) + about 8 s of audio frames + BOS
  int new_tokens = 32;
  int repeat = 2;
  int threads = 0;
  int layers = 0;  // 0: the shape's own
  std::string python = "/usr/bin/python3";
  std::string quantize;  // "" or "q8_0": the decoder layers' projections stored that way
};

struct Shape {
  std::string name;
  LlamaConfig llama;
  at::ScalarType dtype;
};

Shape make_shape(const std::string& name) {
  Shape s{name, ModelConfig::released().llama, at::kBFloat16};
  if (name == "1b") {
    s.llama.dim = 2048;
    s.llama.n_layers = 22;
    s.llama.n_heads = 16;
    s.llama.ffn_dim = 5632;
    s.llama.prompt_hidden = 512;
    s.dtype = at::kFloat;
  }
  return s;
}

double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1048576.0;  // KiB
}

// Bytes of the decoder's weights as stored (quantized values and scales as docs/kernels.md
// says, every other tensor in `dtype`) and the bytes one decoding step reads: all of it but the token
// embedding, of which one row.
struct WeightBytes {
  uint64_t stored = 0, per_token = 0;
};

WeightBytes weight_bytes(const LlamaConfig& cfg, at::ScalarType dtype, const std::string& quantize) {
  ModelSpec spec;
  const nn::Scope declaring = nn::Scope::declaring(spec).with_quantization(quantize);
  decoder::Llama(cfg, declaring);
  WeightBytes b;
  for (const auto& t : spec.tensors) {
    const uint64_t n = uint64_t(c10::multiply_integers(t.shape));
    uint64_t element = c10::elementSize(dtype);
    if (t.storage == Storage::Q8Values || t.storage == Storage::Q4Values) element = 1;
    if (t.storage == Storage::Q8Scales) element = 4;
    if (t.storage == Storage::Q4Scales) element = 2;
    const uint64_t bytes = n * element;
    b.stored += bytes;
    b.per_token += bytes;
  }
  const uint64_t table = uint64_t(cfg.vocab_size) * cfg.dim * c10::elementSize(dtype);
  b.per_token -= table - table / uint64_t(cfg.vocab_size);
  return b;
}

// The decoder alone with random weights (nn::Scope::random), once its size is known to fit.
decoder::Llama random_decoder(const LlamaConfig& cfg, at::ScalarType dtype, const std::string& quantize) {
  const uint64_t bytes = weight_bytes(cfg, dtype, quantize).stored;
  check_memory_budget(bytes + (1ull << 30), available_memory_bytes(), "the " + std::to_string(bytes >> 30) + "-GiB decoder");
  RandomModelOptions random;
  random.dtype = dtype;
  return decoder::Llama(cfg, nn::Scope::random(random, at::kCPU).with_quantization(quantize));
}

// GB/s of a streaming read (a sum over 1 GiB of floats) with the threads the benchmark uses:
// the floor a memory-bound decoding step cannot beat.
double stream_read_gbps() {
  const at::Tensor buffer = at::ones({int64_t(1) << 28}, at::kFloat);
  const double s = bench::best_seconds(5, [&] { buffer.sum().item<float>(); });
  return double(buffer.nbytes()) / s / 1e9;
}

struct Figures {
  double prefill_s = 0, decode_s = 0, peak_gib = 0;
  uint64_t bytes_per_token = 0;  // weights one decoding step reads (ours only)
};

Figures bench_ours(const Shape& s, const Options& o) {
  ModelConfig cfg = ModelConfig::released();
  cfg.llama = s.llama;
  InferenceGuard guard;
  const decoder::Llama llm = random_decoder(cfg.llama, s.dtype, o.quantize);
  const at::Tensor scale = (at::rand({cfg.llama.dim}) * 2).to(s.dtype);
  const auto ids = at::randint(3, cfg.llama.vocab_size, {o.prompt}, at::kLong);
  const at::Tensor prompt = llm.embed(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + o.prompt));
  {  // warm-up: allocator and thread pool
    auto cache = llm.new_cache(1, 9);
    llm.forward(prompt.narrow(0, 0, 8), cache, scale);
    llm.forward(llm.embed({5}), cache, scale);
  }
  Figures f;
  f.prefill_s = 1e30;
  f.decode_s = 1e30;
  for (int r = 0; r < o.repeat; ++r) {
    auto cache = llm.new_cache(1, o.prompt + o.new_tokens);
    f.prefill_s = std::min(f.prefill_s, bench::best_seconds(1, [&] { llm.forward(prompt, cache, scale).sum().item(); }));
    f.decode_s = std::min(f.decode_s, bench::best_seconds(1, [&] {
      for (int t = 0; t < o.new_tokens; ++t) llm.forward(llm.embed({3 + t}), cache, scale).argmax().item();
    }));
  }
  f.peak_gib = peak_rss_gib();
  f.bytes_per_token = weight_bytes(cfg.llama, s.dtype, o.quantize).per_token;
  return f;
}

Figures bench_pytorch(const Shape& s, const Options& o, int threads, std::vector<std::string>& notes) {
  const std::string config = "/tmp/wavllm_bench_decoder_" + std::to_string(::getpid()) + ".json";
  ModelConfig cfg = ModelConfig::released();
  cfg.llama = s.llama;
  std::ofstream(config) << cfg.to_json_text();
  const auto res = bench::run_script(o.python + " " + WAVLLM_EVAL_DIR + "/bench_decoder.py --config " + config +
                                         " --dtype " + dtype_label(s.dtype) + " --prompt " + std::to_string(o.prompt) +
                                         " --new " + std::to_string(o.new_tokens) + " --repeat " +
                                         std::to_string(o.repeat) + " --threads " + std::to_string(threads),
                                     notes);
  std::remove(config.c_str());
  Figures f;
  if (res.count("prefill")) f.prefill_s = res.at("prefill");
  if (res.count("decode")) f.decode_s = res.at("decode");
  if (res.count("peak_rss_gib")) f.peak_gib = res.at("peak_rss_gib");
  return f;
}

void report(const Shape& s, const std::string& impl, const Figures& f, const Options& o) {
  if (f.prefill_s <= 0) {
    std::printf("%-4s %-8s (no result)\n", s.name.c_str(), impl.c_str());
    return;
  }
  std::printf("%-4s %-8s %-9s %10.1f %10.2f %10.2f %9.2f\n", s.name.c_str(), impl.c_str(), dtype_label(s.dtype).c_str(),
              o.prompt / f.prefill_s, o.new_tokens / f.decode_s, 1000 * f.decode_s / o.new_tokens, f.peak_gib);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  Options o;
  bench::parse_options(argc, argv, [&](const std::string& a, const std::function<std::string()>& value) {
    if (a == "--shape") o.shape = value();
    else if (a == "--prompt") o.prompt = std::stoi(value());
    else if (a == "--new") o.new_tokens = std::stoi(value());
    else if (a == "--repeat") o.repeat = std::stoi(value());
    else if (a == "--threads") o.threads = std::stoi(value());
    else if (a == "--layers") o.layers = std::stoi(value());
    else if (a == "--python") o.python = value();
    else if (a == "--no-python") o.python.clear();
    else if (a == "--quantize") o.quantize = value();
    else return false;
    return true;
  });
  if (o.shape != "1b" && o.shape != "7b" && o.shape != "both") throw Error("--shape must be 1b, 7b or both");
  if (o.prompt < 8 || o.new_tokens < 1 || o.repeat < 1) throw Error("--prompt >= 8, --new >= 1, --repeat >= 1");
  set_threads(o.threads);
  const int threads = at::get_num_threads();
  std::vector<Shape> shapes;
  if (o.shape != "7b") shapes.push_back(make_shape("1b"));
  if (o.shape != "1b") shapes.push_back(make_shape("7b"));
  if (o.layers < 0) throw Error("--layers must be >= 1 (0: the shape's own)");
  for (auto& s : shapes)
    if (o.layers > 0) s.llama.n_layers = o.layers;

  std::printf("LLaMA decoder with prompt-aware LoRA, random weights, CPU, %d threads; prefill %d positions, then %d "
              "tokens one by one; best of %d; %d layers\n",
              threads, o.prompt, o.new_tokens, o.repeat, shapes.front().llama.n_layers);
  std::printf("%-4s %-8s %-9s %10s %10s %10s %9s\n", "size", "impl", "dtype", "prefill/s", "decode/s", "ms/token",
              "peakGiB");
  std::vector<std::string> notes;
  const double stream = stream_read_gbps();
  std::printf("streaming read with these threads: %.1f GB/s\n", stream);
  for (const auto& s : shapes) {
    const Figures ours = bench_ours(s, o);
    report(s, o.quantize.empty() ? "wavllm" : "wv-" + o.quantize, ours, o);  // weights freed before PyTorch builds its own
    const double gbps = double(ours.bytes_per_token) * o.new_tokens / ours.decode_s / 1e9;
    std::printf("     decoding reads %.2f GB of weights per token: %.1f GB/s, %.0f %% of the streaming read\n",
                ours.bytes_per_token / 1e9, gbps, 100 * gbps / stream);
    if (!o.python.empty()) report(s, "pytorch", bench_pytorch(s, o, threads, notes), o);
  }
  for (const auto& n : notes) std::cerr << "  [python] " << n;
  std::printf("peak RSS is the process's high-water mark (wavllm: over the shapes run so far)\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return wavllm::bench::guarded_main("bench_decoder", run, argc, argv); }
