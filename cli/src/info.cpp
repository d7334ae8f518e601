// `wavllm info DIR`, `wavllm tasks` and `wavllm --version`: what a model folder holds and what
// each task preset sends, without running the model.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "commands.h"
#include "wavllm/core/cpu_allocator.h"
#include "wavllm/core/runtime.h"
#include "torch/version.h"
#include "wavllm/decoder/tokenizer.h"
#include "wavllm/kernels/isa.h"
#include "wavllm/kernels/sgemm.h"
#include "wavllm/pipeline/model.h"
#include "wavllm/pipeline/stages.h"

namespace wavllm::cli {

namespace {

// What a model run will use (install_cpu_allocator() is idempotent).
bool installed_cpu_allocator() {
  install_cpu_allocator();
  return cpu_allocator_installed();
}

std::string gigabytes(double bytes) {
  char s[32];
  std::snprintf(s, sizeof s, bytes >= 1e9 ? "%.2f GB" : "%.1f MB", bytes >= 1e9 ? bytes / 1e9 : bytes / 1e6);
  return s;
}

std::string count(double n) {
  char s[32];
  std::snprintf(s, sizeof s, n >= 1e9 ? "%.2f B" : n >= 1e6 ? "%.1f M" : "%.0f", n >= 1e9 ? n / 1e9 : n >= 1e6 ? n / 1e6 : n);
  return s;
}

// Parameters a declared tensor stores (a Q4_0 byte packs two; scales are not parameters) and
// the bytes it takes in memory when float tensors are `dtype`.
struct Footprint {
  double parameters = 0, bytes = 0;
};

Footprint footprint(const TensorDecl& t, at::ScalarType dtype) {
  double numel = 1;
  for (int64_t d : t.shape) numel *= double(d);
  switch (t.storage) {
    case Storage::Float: return {numel, numel * double(c10::elementSize(dtype))};
    case Storage::Q8Values: return {numel, numel};
    case Storage::Q4Values: return {2 * numel, numel};
    case Storage::Q8Scales: return {0, 4 * numel};
    case Storage::Q4Scales: return {0, 2 * numel};
  }
  return {};
}

// The model of a command taking one directory, as DIR or as --model DIR.
std::shared_ptr<Model> the_model(const Args& a, const char* command) {
  if (a.positional().size() > 1) throw ArgumentError(std::string(command) + " takes one model directory");
  if (a.positional().size() == 1 && a.value("model"))
    throw ArgumentError(std::string(command) + " takes the model directory once: as DIR or as --model DIR");
  return load_model(model_choice(a, a.positional().empty() ? "" : a.positional()[0]));
}

}  // namespace

int run_cache_prompts(const Command& self, const Args& a) {
  const std::shared_ptr<Model> model = the_model(a, "cache-prompts");
  const std::string path = model->save_preset_scales();
  std::printf("%s: %zu instructions' LoRA scales (%s on %s, %d threads)\n", path.c_str(), preset_instructions().size(),
              dtype_label(model->dtype()).c_str(), model->device().str().c_str(), model->threads());
  return 0;
}

int run_info(const Command& self, const Args& a) {
  const std::shared_ptr<Model> model = the_model(a, "info");
  const ModelConfig& cfg = model->config();
  const ModelSpec spec = model_spec(cfg);

  ModelSpec declared;
  const nn::Scope root = nn::Scope::declaring(declared);
  const std::pair<std::string, std::string> stages[] = {
      {whisper_module(root).prefix(), "Whisper encoder and its adapter"},
      {wavlm_module(root).prefix(), "WavLM encoder, layer weights and its adapter"},
      {decoder_module(root).prefix(), "LLaMA decoder, LoRA and the prompt adapter"}};
  std::map<std::string, Footprint> per_stage;
  Footprint total;
  for (const TensorDecl& t : spec.tensors) {
    if (!t.used) continue;
    std::string stage = "fusion and the rest";
    for (const auto& [prefix, label] : stages)
      if (t.name.rfind(prefix, 0) == 0) stage = label;
    const Footprint f = footprint(t, model->dtype());
    per_stage[stage].parameters += f.parameters;
    per_stage[stage].bytes += f.bytes;
    total.parameters += f.parameters;
    total.bytes += f.bytes;
  }
  const double kv_bytes = 2.0 * cfg.llama.n_layers * cfg.llama.max_positions() * cfg.llama.dim *
                          double(c10::elementSize(model->dtype()));
  const decoder::Tokenizer tokenizer = decoder::Tokenizer::load(model->directory() + "/tokenizer.model");

  std::printf("model:        %s%s\n", model->directory().c_str(), model->random_weights() ? " (random weights)" : "");
  std::printf("stored dtype: %s (loaded as %s on %s)\n",
              dtype_label(stored_dtype(model->directory())).c_str(), dtype_label(model->dtype()).c_str(),
              model->device().str().c_str());
  std::printf("quantization: %s\n", cfg.quantization.format.empty()
                                        ? "none"
                                        : (cfg.quantization.format + " (the decoder layers' projections)").c_str());
  std::printf("preset scales: %zu of %zu task instructions from prompt_scales.safetensors%s\n",
              model->preset_scales_loaded(), preset_instructions().size(),
              model->preset_scales_loaded() ? "" : " (none stored for this build, dtype, device and threads: wavllm cache-prompts)");
  std::printf("parameters:   %s\n", count(total.parameters).c_str());
  for (const auto& [prefix, label] : stages)
    std::printf("  %-46s %s\n", label.c_str(), count(per_stage[label].parameters).c_str());
  if (per_stage.count("fusion and the rest"))
    std::printf("  %-46s %s\n", "fusion and the rest", count(per_stage["fusion and the rest"].parameters).c_str());
  std::printf("memory:       %s of weights + up to %s of KV cache (%d positions, one beam)\n",
              gigabytes(total.bytes).c_str(), gigabytes(kv_bytes).c_str(), cfg.llama.max_positions());
  std::printf("context:      %d decoder positions; the longest audio transcribed in one request: %.1f s\n",
              cfg.llama.max_positions(),
              // to 0.1 s, never rounded up past the limit
              std::floor(double(model->longest_audio_samples(transcribe_instruction())) / 1600.0) / 10);
  std::printf("tokenizer:    %s (%d pieces, bos %lld, eos %lld)\n", tokenizer.path().c_str(), tokenizer.vocab_size(),
              (long long)tokenizer.bos_id(), (long long)tokenizer.eos_id());
  return 0;
}

int run_tasks(const Command& self, const Args& a) {
  if (!a.positional().empty()) throw ArgumentError("tasks takes no argument");
  const std::pair<const char*, std::string> presets[] = {
      {"transcribe", transcribe_instruction()},
      {"translate --to LANGUAGE", translate_instruction("German") + "   (for --to German)"},
      {"ask QUESTION", "the question itself, options included (e.g. \"What will the man do next? A. ...; B. ...; C. ...\")"},
      {"verify-speaker", speaker_verification_instruction()},
      {"emotion", emotion_instruction()},
      {"run --prompt TEXT", "TEXT"}};
  std::printf("Each task sends one instruction with the audio (docs/model.md §7):\n\n");
  for (const auto& [task, instruction] : presets) std::printf("  %-24s %s\n", task, instruction.c_str());
  std::string languages;
  for (const auto& l : translation_languages()) languages += (languages.empty() ? "" : ", ") + l;
  std::printf("\ntranslate --to takes: %s\n", languages.c_str());
  return 0;
}

std::string version_text() {
  const std::string core = kernels::blas_core_name();
  return std::string("wavllm ") + WAVLLM_VERSION + " (LibTorch " + TORCH_VERSION + ", CPU kernels: " +
         kernels::isa_name(kernels::active_isa()) + ", float32 products: " + kernels::fp32_gemm_summary() +
         (core.empty() ? std::string(" (the BLAS is not OpenBLAS)") : " (OpenBLAS runs " + core + ")") +
         ", bfloat16 products: " +
         (kernels::bf16_gemm() == kernels::Bf16Gemm::Native ? "LibTorch's" : "widened to float32") +
         ", tensors from 32 MiB: " + (installed_cpu_allocator() ? "cached huge-page blocks" : "LibTorch's allocator") +
         ")\n";
}

}  // namespace wavllm::cli
