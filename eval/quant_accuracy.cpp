// Accuracy of the quantized formats on a decoder at a real size (random weights: a harsh case,
// flat logits). The float decoder and each quantized one are built from the same random weights
// (nn::Scope::random makes every tensor from its name, so a quantized matrix is the float one
// quantized); each decodes greedily from the same random prompt embeddings. Prints, per format,
// the agreement of the greedy tokens with the float decoder's (first divergence and the share of
// equal tokens), and the max abs error and min cosine of the step logits while the tokens agree.
//
//   quant_accuracy [--shape 1b|7b] [--layers L] [--steps N] [--prompt P] [--threads N]
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"
#include "wavllm/core/config.h"
#include "wavllm/core/random_model.h"
#include "wavllm/core/runtime.h"
#include "wavllm/decoder/llama.h"

namespace {

using namespace wavllm;

struct Run {
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> logits;  // [vocab] float32 per step
};

Run decode(const LlamaConfig& cfg, const std::string& format, const at::Tensor& prompt, int steps) {
  RandomModelOptions random;
  const decoder::Llama llm(cfg, nn::Scope::random(random, at::kCPU).with_quantization(format));
  const at::Tensor scale = at::ones({cfg.dim});
  auto cache = llm.new_cache(1, prompt.size(0) + steps);
  Run r;
  at::Tensor logits = llm.forward(prompt, cache, scale)[0];
  for (int s = 0; s < steps; ++s) {
    r.logits.push_back(logits);
    r.tokens.push_back(logits.argmax().item<int64_t>());
    logits = llm.forward(llm.embed({r.tokens.back()}), cache, scale)[0];
  }
  return r;
}

int run(int argc, char** argv) {
  std::string shape = "1b";
  int layers = 0, steps = 256, prompt_len = 64, threads = 0;
  bench::parse_options(argc, argv, [&](const std::string& a, const std::function<std::string()>& value) {
    if (a == "--shape") shape = value();
    else if (a == "--layers") layers = std::stoi(value());
    else if (a == "--steps") steps = std::stoi(value());
    else if (a == "--prompt") prompt_len = std::stoi(value());
    else if (a == "--threads") threads = std::stoi(value());
    else return false;
    return true;
  });
  LlamaConfig cfg = ModelConfig::released().llama;
  if (shape == "1b") {
    cfg.dim = 2048;
    cfg.n_layers = 22;
    cfg.n_heads = 16;
    cfg.ffn_dim = 5632;
    cfg.prompt_hidden = 512;
  } else if (shape != "7b") {
    throw Error("--shape must be 1b or 7b");
  }
  if (layers > 0) cfg.n_layers = layers;
  if (steps < 1 || prompt_len < 1) throw Error("--steps and --prompt must be >= 1");
  set_threads(threads);
  InferenceGuard guard;
  const at::Tensor prompt = at::randn({prompt_len, cfg.dim}, at::make_generator<at::CPUGeneratorImpl>(1)) * 0.02;
  std::printf("decoder dim %d, %d layers, float32, random weights; prompt %d, greedy %d steps\n", cfg.dim, cfg.n_layers,
              prompt_len, steps);
  const Run reference = decode(cfg, "", prompt, steps);
  std::printf("%-6s %16s %12s %14s %12s\n", "format", "first different", "equal tokens", "max |dlogit|", "min cosine");
  for (const char* format : {"q8_0", "q4_0"}) {
    const Run q = decode(cfg, format, prompt, steps);
    int first = steps, equal = 0;
    double max_err = 0, min_cos = 1;
    for (int s = 0; s < steps; ++s) {
      if (q.tokens[s] == reference.tokens[s]) ++equal;
      else if (first == steps) first = s;
      if (s > first) continue;  // after a divergence the inputs differ: logits are not comparable
      max_err = std::max(max_err, (q.logits[s] - reference.logits[s]).abs().max().item<double>());
      min_cos = std::min(min_cos, at::cosine_similarity(q.logits[s], reference.logits[s], 0).item<double>());
    }
    std::printf("%-6s %16s %11.1f%% %14.4f %12.6f\n", format, first == steps ? "none" : std::to_string(first).c_str(),
                100.0 * equal / steps, max_err, min_cos);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return wavllm::bench::guarded_main("quant_accuracy", run, argc, argv); }
