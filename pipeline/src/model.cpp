#include "wavllm/pipeline/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "wavllm/audio/audio.h"
#include "wavllm/core/cpu_allocator.h"
#include "wavllm/core/error.h"
#include "wavllm/core/files.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/safetensors.h"
#include "wavllm/core/weights.h"
#include "wavllm/pipeline/stages.h"
#include "preset_scales.h"

namespace fs = std::filesystem;

namespace wavllm {

namespace {

// LibTorch has no float16 convolutions on CPU; bfloat16 is the half-size CPU type.
const char* const kNoHalfOnCpu =
    "dtype float16 runs on CUDA only (LibTorch has no float16 convolutions on CPU): use bfloat16, float32 or auto";

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

// A clear Error, listing everything absent, before any file is parsed. Filesystem failures
// (a symlink loop, no permission) are Errors naming the path, never std::filesystem exceptions.
void check_model_dir(const std::string& dir) {
  if (dir.find('\0') != std::string::npos) throw Error(dir + ": the model directory path contains a NUL byte");
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw Error(dir + ": cannot access the model directory: " + ec.message());
  if (!fs::is_directory(status)) throw Error(dir + ": no such model directory");
  auto present = [&](const char* name) { return fs::exists(fs::symlink_status(fs::path(dir) / name, ec)); };
  std::vector<std::string> missing;
  if (!present("config.json")) missing.push_back("config.json");
  bool weights = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("model", 0) == 0 && e.path().extension() == ".safetensors") weights = true;
  }
  if (ec) throw Error(dir + ": cannot list the model directory: " + ec.message());
  if (!weights) missing.push_back("model*.safetensors");
  if (!present("tokenizer.model")) missing.push_back("tokenizer.model");
  if (missing.empty()) return;
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  throw Error(dir + ": not a wavllm model directory (missing " + list + ")");
}

at::Tensor to_cpu_float(const at::Tensor& t) { return t.to(at::kCPU, at::kFloat).contiguous(); }

// Bytes of the decoder's rotary table (complex64) and of the float temporaries building it.
uint64_t rotary_table_bytes(const LlamaConfig& c) {
  return uint64_t(c.max_positions()) * uint64_t(c.head_dim() / 2) * (8 + 3 * 4);
}

std::string magnitude_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// A stage whose output is not finite has failed: NaN from hostile audio or corrupt weights must
// never reach the decoder and come out as an empty "success". The input audio's largest
// magnitude, found only then, tells the two causes apart.
void require_finite(const at::Tensor& t, const std::string& stage, const std::vector<float>& samples) {
  if (at::isfinite(t).all().item<bool>()) return;
  float peak = 0;
  for (float v : samples) peak = std::max(peak, std::fabs(v));
  std::string why = peak > 1e3f ? "the audio's samples reach " + magnitude_text(peak) +
                                      " in magnitude (audio is expected within [-1, 1]); rescale it"
                                : "the audio is in range (peak " + magnitude_text(peak) +
                                      "), so the model's weights likely hold NaN or infinite values";
  throw Error(stage + " produced non-finite values (NaN or infinity): " + why);
}

// 30-s parts of n samples, and Whisper's output length for them: the longest among the parts
// (docs/model.md §2).
int64_t part_count(int64_t n) { return (n + int64_t(audio::kPartSamples) - 1) / int64_t(audio::kPartSamples); }

int64_t whisper_length(int64_t n) {
  int64_t longest = 0;
  for (int64_t p = 0; p < part_count(n); ++p) {
    const int64_t part_samples = std::min<int64_t>(int64_t(audio::kPartSamples), n - p * int64_t(audio::kPartSamples));
    longest = std::max(longest, encoders::WhisperEncoder::output_length((part_samples + audio::kHop - 1) / audio::kHop));
  }
  return longest;
}

}  // namespace

struct Model::Impl {
  Impl(const std::string& dir, const ModelConfig& c, at::Device device, at::ScalarType dtype)
      : directory(dir),
        cfg(c),
        weights(Weights::load(dir, model_spec(cfg), device, dtype)),
        tokenizer(decoder::Tokenizer::load((fs::path(dir) / "tokenizer.model").string())),
        log_mel(cfg.whisper.num_mel_bins),
        stages(cfg, weights) {
    if (tokenizer.vocab_size() != cfg.llama.vocab_size)
      throw Error(dir + ": tokenizer.model has " + std::to_string(tokenizer.vocab_size()) +
                  " pieces, config.json says vocab_size " + std::to_string(cfg.llama.vocab_size));
    if (tokenizer.bos_id() != cfg.tokens.bos || tokenizer.eos_id() != cfg.tokens.eos)
      throw Error(dir + ": tokenizer.model has bos " + std::to_string(tokenizer.bos_id()) + " and eos " +
                  std::to_string(tokenizer.eos_id()) + ", config.json's tokens say bos " +
                  std::to_string(cfg.tokens.bos) + " and eos " + std::to_string(cfg.tokens.eos));
  }

  // Refuses audio the model cannot take before any compute: too short for WavLM's receptive
  // field, longer than the audio limit, or more attention memory than the machine has.
  void check_samples(const std::vector<float>& samples) const {
    audio::check_samples(samples.data(), samples.size(), "audio");
    const int64_t n = int64_t(samples.size());
    if (n < stages.wavlm.min_samples())
      throw Error("the audio is too short: " + std::to_string(n) + " samples at 16 kHz, the model needs at least " +
                  std::to_string(stages.wavlm.min_samples()));
    check_audio_length(n);
    const double seconds = n / kSampleRate;
    if (weights.device().is_cpu())
      check_memory_budget(activation_bytes(n), available_memory_bytes(),
                          "encoding " + std::to_string(int64_t(seconds)) + " s of audio");
  }

  // Peak bytes of encoding n samples: the samples and their log-mel, then the larger of the
  // two encoders' peaks (they run one after the other; Whisper's output stays alive), plus the
  // allocator's and the kernels' scratch (measured: 6 to 17 MB on the demo model) and the CPU
  // allocator's reuse slack (core/cpu_allocator.h).
  uint64_t activation_bytes(int64_t n) const {
    constexpr uint64_t kScratch = 32ull << 20;
    const int64_t parts = part_count(n);
    const uint64_t elt = c10::elementSize(weights.dtype());
    const uint64_t mel = uint64_t(parts) * cfg.whisper.num_mel_bins * audio::kFramesPerPart * 4;
    const uint64_t whisper_out = uint64_t(parts) * cfg.whisper.max_source_positions * cfg.whisper.d_model * elt;
    const uint64_t encoder = std::max(stages.whisper.activation_bytes(parts, weights.dtype()),
                                      stages.wavlm.activation_bytes(n, weights.dtype()));
    const uint64_t reuse_slack = cpu_allocator_installed() ? encoder / kReuseSlack : 0;
    return kScratch + uint64_t(n) * 4 + mel + whisper_out + encoder + reuse_slack;
  }

  // Audio embeddings of n samples: the shorter of the two subsampled branches (docs/model.md §4).
  int64_t audio_tokens(int64_t n) const {
    const int64_t parts = part_count(n);
    const int64_t longest = whisper_length(n);
    auto sub = [](int64_t frames) { return adapter::Conv1dSubsampler::output_length(frames); };
    return std::min(parts * sub(longest), sub(stages.wavlm.frames(n)));
  }

  // The decoder's first step holds left + audio + BOS and the forced prefix follows: all of it
  // must fit the rotary table, checked before the encoders run.
  void check_context(int64_t samples, const decoder::PromptIds& ids) const {
    const int64_t needed = int64_t(ids.left.size()) + audio_tokens(samples) + int64_t(ids.right.size());
    const int64_t table = cfg.llama.max_positions();
    if (needed > table) {
      char audio_text[64];
      std::snprintf(audio_text, sizeof audio_text, "%.1f s", samples / kSampleRate);
      throw ResourceError("the request needs " + std::to_string(needed) + " decoder positions (" +
                  std::to_string(audio_tokens(samples)) + " of them for " + audio_text +
                  " of audio); the model's rotary table has " + std::to_string(table) +
                  ": use shorter audio or a shorter instruction");
    }
  }

  // [parts, L, d] in the weights' dtype.
  at::Tensor whisper_out(const std::vector<float>& samples, StageTimings* t) const {
    WhisperEncoded e = std::move(whisper_batch({&samples}).front());
    if (t) t->frontend += e.frontend_seconds, t->whisper += e.whisper_seconds;
    return e.output;
  }

  // Every piece's 30-s parts through the encoder as one batch, then each piece's rows cut to the
  // longest valid output among its own parts: what the piece alone gives (forward() cuts a batch
  // to its longest part, and no operation mixes parts).
  std::vector<WhisperEncoded> whisper_batch(const std::vector<const std::vector<float>*>& pieces) const {
    Stopwatch sw;
    std::vector<audio::LogMel> mels;
    std::vector<int64_t> valid;
    for (const std::vector<float>* p : pieces) {
      mels.push_back(log_mel.compute(p->data(), p->size()));
      valid.insert(valid.end(), mels.back().valid_frames.begin(), mels.back().valid_frames.end());
    }
    std::vector<at::Tensor> inputs;
    for (audio::LogMel& mel : mels)
      inputs.push_back(at::from_blob(mel.values.data(), {mel.parts, mel.n_mels, audio::kFramesPerPart}, at::kFloat));
    const at::Tensor input = inputs.size() == 1 ? inputs.front() : at::cat(inputs);
    const double frontend = sw.lap();
    std::optional<int64_t> margin;  // in 10-ms log-mel frames
    if (whisper_margin) margin = int64_t(std::lround(*whisper_margin * kSampleRate / audio::kHop));
    const at::Tensor out = stages.whisper.forward(input, valid, margin);
    trim_cpu_allocator();  // the encoder's cached blocks: the next stage needs other sizes
    const double whisper = sw.lap();
    std::vector<WhisperEncoded> encoded;
    int64_t first = 0;
    for (const audio::LogMel& mel : mels) {
      int64_t longest = 0;
      for (int64_t v : mel.valid_frames) longest = std::max(longest, encoders::WhisperEncoder::output_length(v));
      const double share = double(mel.parts) / double(valid.size());
      encoded.push_back({out.narrow(0, first, mel.parts).narrow(1, 0, longest).contiguous(), frontend * share,
                         whisper * share});
      first += mel.parts;
    }
    return encoded;
  }

  std::vector<at::Tensor> wavlm_hidden(const std::vector<float>& samples) const {
    if (cfg.wavlm.do_normalize) {
      std::vector<float> normalized = samples;
      audio::normalize_zero_mean_unit_var(normalized);
      return stages.wavlm.hidden_states(at::from_blob(normalized.data(), {int64_t(normalized.size())}, at::kFloat));
    }
    // The encoder only reads its input (and copies it to its device/dtype).
    return stages.wavlm.hidden_states(at::from_blob(const_cast<float*>(samples.data()), {int64_t(samples.size())}, at::kFloat));
  }

  // Callers check the samples first. `whisper`: the samples' Whisper output when it was computed
  // in a batch (encode_whisper).
  at::Tensor embeddings(const std::vector<float>& samples, StageTimings* t, const WhisperEncoded* whisper = nullptr) const {
    if (whisper && t) t->frontend += whisper->frontend_seconds, t->whisper += whisper->whisper_seconds;
    const at::Tensor w_out = whisper ? whisper->output : whisper_out(samples, t);
    require_finite(w_out, "the Whisper encoder", samples);
    Stopwatch sw;
    const at::Tensor v_out = stages.wavlm.weighted_sum(wavlm_hidden(samples));
    trim_cpu_allocator();  // as after Whisper
    require_finite(v_out, "the WavLM encoder", samples);
    if (t) t->wavlm += sw.lap();
    at::Tensor fused = stages.fusion.forward(stages.whisper_branch.forward(w_out), stages.wavlm_branch.forward(v_out));
    require_finite(fused, "the modality adapters", samples);
    if (t) t->adapters += sw.lap();
    return fused;
  }

  // Refused before tokenizing: BPE holds a few dozen bytes per input byte, and no token of the
  // LLaMA vocabulary covers more than kMaxBytesPerToken bytes, so a longer instruction could not
  // fit the context anyway.
  decoder::PromptIds prompt(const std::string& instruction) const {
    constexpr size_t kMaxBytesPerToken = 64;
    const size_t limit = size_t(cfg.llama.max_positions()) * kMaxBytesPerToken;
    if (instruction.size() > limit)
      throw ResourceError("the instruction is " + std::to_string(instruction.size()) + " bytes; it cannot fit the decoder's " +
                  std::to_string(cfg.llama.max_positions()) + " positions (limit " + std::to_string(limit) + " bytes)");
    return decoder::build_prompt(tokenizer, cfg.system_prompt, instruction, cfg.tokens.bos);
  }

  // [dim] in the weights' dtype on their device.
  at::Tensor scale(const std::string& instruction) const {
    const auto preset = preset_scales.find(instruction);
    if (preset != preset_scales.end()) return preset->second;
    {
      std::lock_guard<std::mutex> lock(scale_mu);
      auto it = scale_cache.find(instruction);
      if (it != scale_cache.end()) return it->second;
    }
    // Computed outside the lock: two threads may both compute a new instruction's scale,
    // which is cheaper than serialising every request behind one.
    at::Tensor s = stages.prompt_adapter.scale(stages.llama.prompt_hidden(prompt(instruction).orig));
    if (!at::isfinite(s).all().item<bool>())
      throw Error("the prompt adapter produced non-finite LoRA scales (NaN or infinity) for this instruction: "
                  "the decoder's or the prompt adapter's weights hold NaN or infinite values");
    std::lock_guard<std::mutex> lock(scale_mu);
    if (scale_cache.size() >= kScaleCacheEntries) scale_cache.clear();
    scale_cache.emplace(instruction, s);
    return s;
  }

  // A request's decoder inputs: its audio encoded, its prompt and LoRA scale; the stages'
  // times so far.
  struct Prepared {
    decoder::PromptIds ids;
    at::Tensor embeds, lora_scale;
    StageTimings timings;
  };

  // Callers hold the InferenceGuard and ThreadScope.
  Prepared prepare(const std::vector<float>& samples, const WhisperEncoded* whisper, const std::string& instruction,
                   const GenerationOptions& opt) const {
    opt.validate();
    Prepared p;
    p.ids = prompt(instruction);  // a bad instruction fails before any compute
    check_samples(samples);
    check_context(int64_t(samples.size()), p.ids);
    if (whisper) check_whisper_output(samples, whisper->output);
    p.embeds = embeddings(samples, &p.timings, whisper);
    Stopwatch sw;
    p.lora_scale = scale(instruction);
    p.timings.prompt_adapter = sw.lap();
    return p;
  }

  static GenerationResult result(decoder::Completion g, const StageTimings& timings, size_t samples) {
    GenerationResult r;
    r.timings = timings;
    r.text = std::move(g.text);
    r.token_ids = std::move(g.generated_ids);
    r.token_logprobs = std::move(g.generated_logprobs);
    r.decoded_tokens = std::move(g.decoded_tokens);
    r.step_logits = g.step_logits;
    r.timings.prefill = g.prefill_seconds;
    r.timings.decode = g.decode_seconds;
    r.audio_seconds = double(samples) / kSampleRate;
    r.real_time_factor = r.timings.total() / r.audio_seconds;
    return r;
  }

  GenerationResult generate(const std::vector<float>& samples, const WhisperEncoded* whisper,
                            const std::string& instruction, const GenerationOptions& opt,
                            const decoder::TextCallback& on_text) const {
    InferenceGuard guard;
    ThreadScope scope(threads);
    Prepared p = prepare(samples, whisper, instruction, opt);
    return result(decoder::complete(stages.llama, tokenizer, p.embeds, p.ids, p.lora_scale, opt, on_text), p.timings,
                  samples.size());
  }

  // A Whisper output handed in with the samples must be the one these samples give.
  void check_whisper_output(const std::vector<float>& samples, const at::Tensor& out) const {
    const int64_t n = int64_t(samples.size());
    const int64_t parts = part_count(n);
    const int64_t longest = whisper_length(n);
    if (!out.defined() || out.dim() != 3 || out.size(0) != parts || out.size(1) != longest ||
        out.size(2) != cfg.whisper.d_model || out.scalar_type() != weights.dtype())
      throw ArgumentError("the Whisper output given with the audio is not the one this audio gives (expected [" +
                          std::to_string(parts) + ", " + std::to_string(longest) + ", " +
                          std::to_string(cfg.whisper.d_model) + "]): encode it with encode_whisper");
  }

  std::string directory;
  ModelConfig cfg;
  int threads = 1;
  std::optional<double> whisper_margin;  // ModelOptions::whisper_margin_seconds
  Weights weights;  // before every stage: they hold views of its tensors
  decoder::Tokenizer tokenizer;
  audio::LogMelExtractor log_mel;
  Stages stages;

  // Takes the stored presets' scales when they were computed under this load's identity.
  void load_preset_scales() {
    preset_identity = presets::identity(directory, weights.dtype(), weights.device(), threads);
    std::map<std::string, at::Tensor> stored;
    try {
      stored = presets::read(directory, preset_identity, cfg.llama.dim);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (the task presets' stored LoRA scales: delete the file, or write it " +
                  "again with wavllm cache-prompts)");
    }
    for (auto& [instruction, s] : stored) preset_scales.emplace(instruction, s.to(weights.device()).to(weights.dtype()));
  }

  mutable std::mutex scale_mu;
  mutable std::map<std::string, at::Tensor> scale_cache;
  std::string preset_identity;
  std::map<std::string, at::Tensor> preset_scales;  // from prompt_scales.safetensors, fixed after load
};

ModelOptions ModelOptions::parse(const std::string& device, const std::string& dtype, int threads) {
  ModelOptions o;
  o.device = parse_device(device);
  if (dtype != "auto") o.dtype = parse_dtype(dtype);
  if (o.device.is_cpu() && o.dtype == at::kHalf) throw ArgumentError(kNoHalfOnCpu);
  o.threads = threads;
  return o;
}

at::ScalarType stored_dtype(const std::string& model_dir) {
  std::map<st::DType, int64_t> elements;
  const st::ShardSet shards = st::ShardSet::open(model_dir);
  for (const auto& [name, entry] : shards.tensors()) elements[entry.second->dtype] += entry.second->numel();
  at::ScalarType best = at::kFloat;
  int64_t most = -1;
  for (const auto& [dtype, type] : {std::pair{st::DType::F32, at::kFloat}, {st::DType::BF16, at::kBFloat16},
                                    {st::DType::F16, at::kHalf}}) {
    if (elements.count(dtype) && elements[dtype] > most) most = elements[dtype], best = type;
  }
  return best;
}

std::shared_ptr<Model> Model::load(const std::string& model_dir, const ModelOptions& opt) {
  const at::Device device = opt.device;
  if (device.is_cpu() && opt.dtype == at::kHalf) throw ArgumentError(kNoHalfOnCpu);
  check_model_dir(model_dir);
  // "auto" on CPU widens float16 weights to float32: LibTorch cannot run float16 there.
  const at::ScalarType requested = opt.dtype ? *opt.dtype : stored_dtype(model_dir);
  const at::ScalarType dtype = requested == at::kHalf && device.is_cpu() ? at::kFloat : requested;
  if (dtype != at::kFloat && dtype != at::kHalf && dtype != at::kBFloat16)
    throw ArgumentError("dtype " + dtype_label(dtype) + " is not supported (float32, float16 or bfloat16)");
  if (opt.threads < 0) throw ArgumentError("threads must be >= 0 (0 = all cores), got " + std::to_string(opt.threads));
  if (opt.whisper_margin_seconds &&
      !(*opt.whisper_margin_seconds >= 0 && *opt.whisper_margin_seconds <= audio::kPartSamples / kSampleRate))
    throw ArgumentError("the Whisper margin must be 0 to 30 seconds, got " + std::to_string(*opt.whisper_margin_seconds));
  InferenceGuard guard;
  const ModelConfig cfg = ModelConfig::load((fs::path(model_dir) / "config.json").string());
  // The front end cuts 30-s parts of 3000 frames and Whisper's conv stride halves them: another
  // window is a valid config this engine cannot run (refused before the weights are read).
  if (2 * int64_t(cfg.whisper.max_source_positions) != audio::kFramesPerPart)
    throw Error(model_dir + ": config.json's whisper.max_source_positions is " +
                std::to_string(cfg.whisper.max_source_positions) + "; this engine's 30-s log-mel parts need " +
                std::to_string(audio::kFramesPerPart / 2));
  if (!cfg.quantization.format.empty() && !device.is_cpu())
    throw ArgumentError(model_dir + ": a " + cfg.quantization.format + " model runs on CPU only (its kernels are CPU "
                        "kernels); use the float model on " + device.str());
  // A valid config may ask for a rotary table far larger than its weights (max_seq_len 2^20).
  check_memory_budget(rotary_table_bytes(cfg.llama), available_memory_bytes(),
                      "the decoder's rotary table (llama.max_seq_len " + std::to_string(cfg.llama.max_seq_len) + ")");
  try {
    auto impl = std::make_unique<Impl>(model_dir, cfg, device, dtype);
    impl->threads = resolve_threads(opt.threads);
    impl->whisper_margin = opt.whisper_margin_seconds;
    impl->load_preset_scales();
    return std::shared_ptr<Model>(new Model(std::move(impl)));
  } catch (const fs::filesystem_error& e) {
    throw Error(model_dir + ": " + e.what());
  }
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelConfig& Model::config() const { return impl_->cfg; }

bool Model::random_weights() const {
  if (impl_->weights.formats().count("wavllm-random")) return true;
  std::string readme;
  try {
    readme = RegularFile((fs::path(impl_->directory) / "README.md").string(), "model README").read_all(1 << 16);
  } catch (const Error&) {
    return false;  // no README (or not a regular file): not the bundled demo
  }
  return readme.substr(0, readme.find('\n')).find("RANDOM weights") != std::string::npos;
}
const std::string& Model::directory() const { return impl_->directory; }
at::Device Model::device() const { return impl_->weights.device(); }
at::ScalarType Model::dtype() const { return impl_->weights.dtype(); }
int Model::threads() const { return impl_->threads; }
std::optional<double> Model::whisper_margin_seconds() const { return impl_->whisper_margin; }

GenerationOptions Model::generation_options() const { return impl_->cfg.generation; }

std::vector<at::Tensor> Model::whisper_encoder(const std::vector<float>& samples16k) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  impl_->check_samples(samples16k);
  const at::Tensor out = impl_->whisper_out(samples16k, nullptr);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < out.size(0); ++i) parts.push_back(to_cpu_float(out[i]));
  return parts;
}

std::vector<at::Tensor> Model::wavlm_hidden_states(const std::vector<float>& samples16k) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  impl_->check_samples(samples16k);
  std::vector<at::Tensor> hidden = impl_->wavlm_hidden(samples16k);
  for (auto& h : hidden) h = to_cpu_float(h);
  return hidden;
}

at::Tensor Model::audio_embeddings(const std::vector<float>& samples16k) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  impl_->check_samples(samples16k);
  return to_cpu_float(impl_->embeddings(samples16k, nullptr));
}

int64_t Model::audio_token_count(int64_t samples16k) const {
  if (samples16k < impl_->stages.wavlm.min_samples()) return 0;
  return impl_->audio_tokens(samples16k);
}

void check_audio_length(int64_t samples16k) {
  const double seconds = double(samples16k) / kSampleRate;
  if (seconds > kMaxAudioSeconds)
    throw ResourceError("the audio is " + std::to_string(int64_t(seconds)) + " s long; the limit is " +
                        std::to_string(int64_t(kMaxAudioSeconds)) + " s");
}

int64_t Model::longest_audio_samples(const std::string& instruction) const {
  const decoder::PromptIds ids = impl_->prompt(instruction);
  const int64_t budget = impl_->cfg.llama.max_positions() - int64_t(ids.left.size() + ids.right.size());
  // Audio tokens grow with the sample count: bisect up to the audio time limit.
  int64_t lo = 0, hi = int64_t(audio::DecodeOptions{}.max_seconds * kSampleRate);
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (impl_->audio_tokens(mid) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

uint64_t Model::activation_bytes(int64_t samples16k) const { return impl_->activation_bytes(samples16k); }

decoder::PromptIds Model::prompt_ids(const std::string& instruction) const { return impl_->prompt(instruction); }

std::string Model::token_text(int64_t id) const {
  const int byte = impl_->tokenizer.byte_value(id);
  if (byte >= 0) return std::string(1, char(byte));
  std::string piece = impl_->tokenizer.id_to_piece(id);
  const std::string space = "\xE2\x96\x81";  // U+2581, sentencepiece's word boundary
  for (size_t at = piece.find(space); at != std::string::npos; at = piece.find(space, at + 1)) piece.replace(at, space.size(), " ");
  return piece;
}

at::Tensor Model::prompt_scale(const std::string& instruction) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  // A copy: the caller (a numpy array, say) must not be able to write into the cache.
  return impl_->scale(instruction).to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

std::string Model::save_preset_scales() const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  std::vector<std::pair<std::string, at::Tensor>> scales;
  for (const std::string& instruction : preset_instructions()) scales.emplace_back(instruction, impl_->scale(instruction));
  return presets::write(impl_->directory, impl_->preset_identity, scales);
}

size_t Model::preset_scales_loaded() const { return impl_->preset_scales.size(); }

std::vector<WhisperEncoded> Model::encode_whisper(const std::vector<std::vector<float>>& pieces) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  std::vector<const std::vector<float>*> batch;
  int64_t parts = 0;
  for (const auto& p : pieces) {
    impl_->check_samples(p);
    batch.push_back(&p);
    parts += part_count(int64_t(p.size()));
  }
  if (batch.empty()) return {};
  if (impl_->weights.device().is_cpu())
    check_memory_budget(impl_->stages.whisper.activation_bytes(parts, impl_->weights.dtype()), available_memory_bytes(),
                        "encoding " + std::to_string(parts) + " Whisper parts in one batch");
  return impl_->whisper_batch(batch);
}

GenerationResult Model::generate(const std::vector<float>& samples16k, const std::string& instruction,
                                 const GenerationOptions& opt, const decoder::TextCallback& on_text) const {
  return impl_->generate(samples16k, nullptr, instruction, opt, on_text);
}

GenerationResult Model::generate(const std::vector<float>& samples16k, const WhisperEncoded& whisper,
                                 const std::string& instruction, const GenerationOptions& opt,
                                 const decoder::TextCallback& on_text) const {
  return impl_->generate(samples16k, &whisper, instruction, opt, on_text);
}

std::unique_ptr<RunningRequest> Model::start(const std::vector<float>& samples16k, const WhisperEncoded* whisper,
                                             const std::string& instruction, const GenerationOptions& opt,
                                             const decoder::TextCallback& on_text) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  Impl::Prepared p = impl_->prepare(samples16k, whisper, instruction, opt);
  decoder::Sequence seq(impl_->stages.llama, impl_->tokenizer, p.embeds, p.ids, p.lora_scale, opt, on_text);
  seq.prefill();
  return std::unique_ptr<RunningRequest>(new RunningRequest(std::move(seq), p.timings, samples16k.size()));
}

void Model::step(const std::vector<RunningRequest*>& batch) const {
  InferenceGuard guard;
  ThreadScope threads(impl_->threads);
  std::vector<decoder::Sequence*> rows;
  for (RunningRequest* r : batch) rows.push_back(&r->sequence_);
  decoder::step(impl_->stages.llama, rows);
}

GenerationResult Model::finish(RunningRequest& r) const {
  InferenceGuard guard;
  return Impl::result(r.sequence_.finish(), r.timings_, r.samples_);
}

RunningRequest::RunningRequest(decoder::Sequence s, const StageTimings& t, size_t samples)
    : sequence_(std::move(s)), timings_(t), samples_(samples) {}

std::vector<std::pair<const char*, double>> StageTimings::items() const {
  return {{"audio", audio},       {"frontend", frontend},         {"whisper", whisper}, {"wavlm", wavlm},
          {"adapters", adapters}, {"prompt_adapter", prompt_adapter}, {"prefill", prefill}, {"decode", decode},
          {"total", total()}};
}

double GenerationResult::avg_logprob() const {
  double sum = 0;
  for (float lp : token_logprobs) sum += lp;
  return token_logprobs.empty() ? 0 : sum / double(token_logprobs.size());
}

std::string GenerationResult::to_json() const {
  nlohmann::json stages = nlohmann::json::object();
  for (const auto& [name, seconds] : timings.items()) stages[name] = seconds;
  const nlohmann::json j = {{"text", text},
                            {"token_ids", token_ids},
                            {"audio_seconds", audio_seconds},
                            {"real_time_factor", real_time_factor},
                            {"timings", stages}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

DecodedAudio DecodedAudio::load(const std::string& path) {
  Stopwatch sw;
  DecodedAudio a;
  a.samples = audio::load_mono_16k(path);
  a.seconds = sw.lap();
  return a;
}

GenerationResult Model::generate(const DecodedAudio& audio, const std::string& instruction,
                                 const GenerationOptions& opt, const decoder::TextCallback& on_text) const {
  GenerationResult r = generate(audio.samples, instruction, opt, on_text);
  r.timings.audio = audio.seconds;
  r.real_time_factor = r.timings.total() / r.audio_seconds;
  return r;
}

}  // namespace wavllm
