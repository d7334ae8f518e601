#include "wavllm/pipeline/model.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "wavllm/adapter/branch.h"
#include "wavllm/adapter/prompt_adapter.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/weights.h"
#include "wavllm/decoder/llama.h"
#include "wavllm/encoders/encoders.h"

namespace fs = std::filesystem;

namespace wavllm {

namespace {

constexpr double kSampleRate = 16000.0;
// Distinct instructions whose LoRA scale is kept; a batch of free-form questions must not
// grow the cache without bound.
constexpr size_t kScaleCacheEntries = 256;
// The same limit as audio files (audio::DecodeOptions): sample buffers from the binding too.
constexpr double kMaxAudioSeconds = audio::DecodeOptions{}.max_seconds;

class Stopwatch {
 public:
  // Seconds since the previous call (or construction).
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// A clear Error, listing everything absent, before any file is parsed.
void check_model_dir(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": no such model directory");
  std::vector<std::string> missing;
  if (!fs::exists(fs::path(dir) / "config.json")) missing.push_back("config.json");
  bool weights = false;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("model", 0) == 0 && e.path().extension() == ".safetensors") weights = true;
  }
  if (!weights) missing.push_back("model*.safetensors");
  if (!fs::exists(fs::path(dir) / "tokenizer.model")) missing.push_back("tokenizer.model");
  if (missing.empty()) return;
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  throw Error(dir + ": not a wavllm model directory (missing " + list + ")");
}

at::Tensor to_cpu_float(const at::Tensor& t) { return t.to(at::kCPU, at::kFloat).contiguous(); }

}  // namespace

struct Model::Impl {
  Impl(const std::string& dir, const ModelConfig& c, at::Device device, at::ScalarType dtype)
      : directory(dir),
        cfg(c),
        weights(Weights::load(dir, cfg, device, dtype)),
        tokenizer(decoder::Tokenizer::load((fs::path(dir) / "tokenizer.model").string())),
        log_mel(cfg.whisper.num_mel_bins),
        whisper(cfg.whisper, weights),
        wavlm(cfg.wavlm, weights),
        whisper_branch(adapter::Branch::whisper(cfg, weights)),
        wavlm_branch(adapter::Branch::wavlm(cfg, weights)),
        fusion(cfg, weights),
        llama(cfg.llama, weights),
        prompt_adapter(cfg.llama, weights) {
    if (tokenizer.vocab_size() != cfg.llama.vocab_size)
      throw Error(dir + ": tokenizer.model has " + std::to_string(tokenizer.vocab_size()) +
                  " pieces, config.json says vocab_size " + std::to_string(cfg.llama.vocab_size));
  }

  // Refuses audio the model cannot take before any compute: too short for WavLM's receptive
  // field, longer than the audio limit, or more attention memory than the machine has.
  void check_samples(const std::vector<float>& samples) const {
    audio::check_samples(samples.data(), samples.size(), "audio");
    const int64_t n = int64_t(samples.size());
    if (n < wavlm.min_samples())
      throw Error("the audio is too short: " + std::to_string(n) + " samples at 16 kHz, the model needs at least " +
                  std::to_string(wavlm.min_samples()));
    const double seconds = n / kSampleRate;
    if (seconds > kMaxAudioSeconds)
      throw Error("the audio is " + std::to_string(int64_t(seconds)) + " s long; the limit is " +
                  std::to_string(int64_t(kMaxAudioSeconds)) + " s");
    if (weights.device().is_cpu()) {
      // WavLM attends over the whole waveform: one [heads, T, T] score buffer dominates.
      const uint64_t t = uint64_t(wavlm.frames(n));
      const uint64_t scores = uint64_t(cfg.wavlm.num_attention_heads) * t * t * c10::elementSize(weights.dtype());
      check_memory_budget(scores, available_memory_bytes(),
                          "WavLM attention over " + std::to_string(int64_t(seconds)) + " s of audio");
    }
  }

  // Audio embeddings of n samples: the shorter of the two subsampled branches (SPEC section 4).
  int64_t audio_tokens(int64_t n) const {
    const int64_t parts = (n + int64_t(audio::kPartSamples) - 1) / int64_t(audio::kPartSamples);
    int64_t longest = 0;
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t part_samples = std::min<int64_t>(int64_t(audio::kPartSamples), n - p * int64_t(audio::kPartSamples));
      longest = std::max(longest, encoders::WhisperEncoder::output_length((part_samples + audio::kHop - 1) / audio::kHop));
    }
    auto sub = [](int64_t frames) { return adapter::Conv1dSubsampler::output_length(frames); };
    return std::min(parts * sub(longest), sub(wavlm.frames(n)));
  }

  // The decoder's first step holds left + audio + BOS and the forced prefix follows: all of it
  // must fit the rotary table, checked before the encoders run.
  void check_context(int64_t samples, const decoder::PromptIds& ids) const {
    const int64_t needed = int64_t(ids.left.size()) + audio_tokens(samples) + int64_t(ids.right.size());
    const int64_t table = cfg.llama.max_positions();
    if (needed > table) {
      char audio_text[64];
      std::snprintf(audio_text, sizeof audio_text, "%.1f s", samples / kSampleRate);
      throw Error("the request needs " + std::to_string(needed) + " decoder positions (" +
                  std::to_string(audio_tokens(samples)) + " of them for " + audio_text +
                  " of audio); the model's rotary table has " + std::to_string(table) +
                  ": use shorter audio or a shorter instruction");
    }
  }

  // [parts, L, d] in the weights' dtype.
  at::Tensor whisper_out(const std::vector<float>& samples, StageTimings* t) const {
    Stopwatch sw;
    audio::LogMel mel = log_mel.compute(samples.data(), samples.size());
    const at::Tensor input = at::from_blob(mel.values.data(), {mel.parts, mel.n_mels, audio::kFramesPerPart}, at::kFloat);
    if (t) t->frontend += sw.lap();
    at::Tensor out = whisper.forward(input, mel.valid_frames);
    if (t) t->whisper += sw.lap();
    return out;
  }

  std::vector<at::Tensor> wavlm_hidden(const std::vector<float>& samples) const {
    if (cfg.wavlm.do_normalize) {
      std::vector<float> normalized = samples;
      audio::normalize_zero_mean_unit_var(normalized);
      return wavlm.hidden_states(at::from_blob(normalized.data(), {int64_t(normalized.size())}, at::kFloat));
    }
    // The encoder only reads its input (and copies it to its device/dtype).
    return wavlm.hidden_states(at::from_blob(const_cast<float*>(samples.data()), {int64_t(samples.size())}, at::kFloat));
  }

  // Callers check the samples first.
  at::Tensor embeddings(const std::vector<float>& samples, StageTimings* t) const {
    const at::Tensor w_out = whisper_out(samples, t);
    Stopwatch sw;
    const at::Tensor v_out = wavlm.weighted_sum(wavlm_hidden(samples));
    if (t) t->wavlm += sw.lap();
    at::Tensor fused = fusion.forward(whisper_branch.forward(w_out), wavlm_branch.forward(v_out));
    if (t) t->adapters += sw.lap();
    return fused;
  }

  decoder::PromptIds prompt(const std::string& instruction) const {
    return decoder::build_prompt(tokenizer, cfg.system_prompt, instruction, cfg.tokens.bos);
  }

  // [dim] in the weights' dtype on their device.
  at::Tensor scale(const std::string& instruction) const {
    {
      std::lock_guard<std::mutex> lock(scale_mu);
      auto it = scale_cache.find(instruction);
      if (it != scale_cache.end()) return it->second;
    }
    // Computed outside the lock: two threads may both compute a new instruction's scale,
    // which is cheaper than serialising every request behind one.
    at::Tensor s = prompt_adapter.scale(llama.prompt_hidden(prompt(instruction).orig));
    std::lock_guard<std::mutex> lock(scale_mu);
    if (scale_cache.size() >= kScaleCacheEntries) scale_cache.clear();
    scale_cache.emplace(instruction, s);
    return s;
  }

  std::string directory;
  ModelConfig cfg;
  Weights weights;  // before every stage: they hold views of its tensors
  decoder::Tokenizer tokenizer;
  audio::LogMelExtractor log_mel;
  encoders::WhisperEncoder whisper;
  encoders::WavLMEncoder wavlm;
  adapter::Branch whisper_branch, wavlm_branch;
  adapter::Fusion fusion;
  decoder::Llama llama;
  adapter::PromptAdapter prompt_adapter;

  mutable std::mutex scale_mu;
  mutable std::map<std::string, at::Tensor> scale_cache;
};

std::shared_ptr<Model> Model::load(const std::string& model_dir, const ModelOptions& opt) {
  const at::Device device = parse_device(opt.device);
  const at::ScalarType dtype = parse_dtype(opt.dtype);
  // LibTorch has no float16 convolutions on CPU; bfloat16 is the half-size CPU type.
  if (device.is_cpu() && dtype == at::kHalf)
    throw Error("dtype float16 is not supported on CPU (LibTorch lacks float16 convolutions there): use bfloat16 or float32");
  if (opt.threads < 0) throw Error("threads must be >= 0 (0 = all cores), got " + std::to_string(opt.threads));
  check_model_dir(model_dir);
  set_threads(opt.threads);
  InferenceGuard guard;
  const ModelConfig cfg = ModelConfig::load((fs::path(model_dir) / "config.json").string());
  return std::shared_ptr<Model>(new Model(std::make_unique<Impl>(model_dir, cfg, device, dtype)));
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelConfig& Model::config() const { return impl_->cfg; }
const std::string& Model::directory() const { return impl_->directory; }
at::Device Model::device() const { return impl_->weights.device(); }
at::ScalarType Model::dtype() const { return impl_->weights.dtype(); }

decoder::GenerateOptions Model::default_generate_options() const {
  const GenerationConfig& g = impl_->cfg.generation;
  decoder::GenerateOptions o;
  o.max_steps = g.max_steps;
  o.temperature = g.temperature;
  o.top_p = g.top_p;
  o.top_k = g.top_k;
  o.num_beams = g.num_beams;
  o.length_penalty = g.length_penalty;
  o.repetition_penalty = g.repetition_penalty;
  o.no_repeat_ngram_size = g.no_repeat_ngram_size;
  return o;
}

std::vector<at::Tensor> Model::whisper_encoder(const std::vector<float>& samples16k) const {
  InferenceGuard guard;
  impl_->check_samples(samples16k);
  const at::Tensor out = impl_->whisper_out(samples16k, nullptr);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < out.size(0); ++i) parts.push_back(to_cpu_float(out[i]));
  return parts;
}

std::vector<at::Tensor> Model::wavlm_hidden_states(const std::vector<float>& samples16k) const {
  InferenceGuard guard;
  impl_->check_samples(samples16k);
  std::vector<at::Tensor> hidden = impl_->wavlm_hidden(samples16k);
  for (auto& h : hidden) h = to_cpu_float(h);
  return hidden;
}

at::Tensor Model::audio_embeddings(const std::vector<float>& samples16k) const {
  InferenceGuard guard;
  impl_->check_samples(samples16k);
  return to_cpu_float(impl_->embeddings(samples16k, nullptr));
}

int64_t Model::audio_token_count(int64_t samples16k) const {
  if (samples16k < impl_->wavlm.min_samples()) return 0;
  return impl_->audio_tokens(samples16k);
}

decoder::PromptIds Model::prompt_ids(const std::string& instruction) const { return impl_->prompt(instruction); }

at::Tensor Model::prompt_scale(const std::string& instruction) const {
  InferenceGuard guard;
  // A copy: the caller (a numpy array, say) must not be able to write into the cache.
  return impl_->scale(instruction).to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

GenerationResult Model::generate(const std::vector<float>& samples16k, const std::string& instruction,
                                 const decoder::GenerateOptions& opt, const decoder::TextCallback& on_text) const {
  InferenceGuard guard;
  opt.validate();
  GenerationResult r;
  const decoder::PromptIds ids = impl_->prompt(instruction);  // a bad instruction fails before any compute
  impl_->check_samples(samples16k);
  impl_->check_context(int64_t(samples16k.size()), ids);
  const at::Tensor embeds = impl_->embeddings(samples16k, &r.timings);
  Stopwatch sw;
  const at::Tensor scale = impl_->scale(instruction);
  r.timings.prompt_adapter = sw.lap();
  decoder::GenerateResult g = decoder::generate(impl_->llama, impl_->tokenizer, embeds, ids, scale, opt, on_text);
  r.text = std::move(g.text);
  r.token_ids = std::move(g.generated_ids);
  r.decoded_tokens = std::move(g.decoded_tokens);
  r.step_logits = g.step_logits;
  r.timings.prefill = g.prefill_seconds;
  r.timings.decode = g.decode_seconds;
  r.audio_seconds = double(samples16k.size()) / kSampleRate;
  r.real_time_factor = r.timings.total() / r.audio_seconds;
  return r;
}

}  // namespace wavllm
