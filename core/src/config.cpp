#include "wavllm/core/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <limits>
#include <type_traits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "wavllm/core/error.h"
#include "wavllm/core/files.h"
#include "wavllm/core/json_strict.h"

namespace wavllm {
namespace fs = std::filesystem;
using json = nlohmann::json;

int LlamaConfig::derive_ffn_dim(int dim, int multiple_of) {
  const int64_t hidden = 2 * (4 * int64_t(dim)) / 3;
  const int64_t m = std::max(1, multiple_of);
  return static_cast<int>(std::min<int64_t>(m * ((hidden + m - 1) / m), std::numeric_limits<int>::max()));
}

namespace {

// Reads the keys of one JSON section into fields; an unknown key is an error, so a typo in
// a hand-written config cannot silently fall back to a default.
// Checked conversions: nlohmann's get<int>() of 1e30 or 2^40 is undefined behaviour or wraps.
bool convert(const json& v, bool& out) {
  if (!v.is_boolean()) return false;
  out = v.get<bool>();
  return true;
}
template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
bool convert(const json& v, T& out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    out = static_cast<T>(u);
    return true;
  }
  if (!v.is_number_integer()) return false;
  const int64_t i = v.get<int64_t>();
  if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) || i > static_cast<int64_t>(std::numeric_limits<T>::max()))
    return false;
  out = static_cast<T>(i);
  return true;
}
bool convert(const json& v, double& out) {
  if (!v.is_number()) return false;
  out = v.get<double>();
  return std::isfinite(out);
}
bool convert(const json& v, std::string& out) {
  if (!v.is_string()) return false;
  out = v.get<std::string>();
  return true;
}
bool convert(const json& v, std::vector<int>& out) {
  if (!v.is_array()) return false;
  std::vector<int> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    if (!convert(v[i], r[i])) return false;
  out = std::move(r);
  return true;
}

class Section {
 public:
  Section(const json& parent, const std::string& name, const std::string& label, bool required)
      : label_(label + ": " + name) {
    if (!parent.contains(name)) {
      if (required) throw Error(label + ": missing section \"" + name + "\"");
      return;
    }
    obj_ = &parent.at(name);
    if (!obj_->is_object()) throw Error(label_ + " must be an object");
  }
  template <typename T>
  Section& get(const char* key, T& out) {
    known_.insert(key);
    if (!obj_ || !obj_->contains(key)) return *this;
    if (!convert(obj_->at(key), out))
      throw Error(label_ + "." + key + " has the wrong type or is out of range (" + obj_->at(key).dump() + ")");
    return *this;
  }
  bool has(const char* key) const { return obj_ && obj_->contains(key); }
  void finish() const {
    if (!obj_) return;
    for (auto it = obj_->begin(); it != obj_->end(); ++it)
      if (!known_.count(it.key())) throw Error(label_ + ": unknown key \"" + it.key() + "\"");
  }

 private:
  std::string label_;
  const json* obj_ = nullptr;
  std::set<std::string> known_;
};

// Sizes beyond this are no model but a corrupt or hostile config; the bound also keeps every
// product of two sizes inside int64.
constexpr double kMaxSize = 1 << 20;

void positive(const std::string& label, const char* what, double v) {
  if (!(v > 0)) throw Error(label + ": " + what + " must be positive (got " + std::to_string(v) + ")");
  if (v > kMaxSize) throw Error(label + ": " + what + " = " + std::to_string(v) + " is absurdly large (limit 1048576)");
}

// Layer counts: each layer adds a dozen tensors to the schema the loader builds before it reads
// a weight, so a config of 2^20 layers alone would cost a gigabyte. The largest models have ~130.
constexpr int kMaxLayers = 1024;

void layer_count(const std::string& label, const char* what, int v) {
  positive(label, what, v);
  if (v > kMaxLayers) throw Error(label + ": " + what + " = " + std::to_string(v) + " layers (limit 1024)");
}

}  // namespace

int64_t WavLMConfig::receptive_field() const {
  if (conv_kernel.size() != conv_stride.size())
    throw Error("wavlm.conv_kernel and conv_stride must have equal length");
  int64_t r = 1;
  for (size_t i = conv_kernel.size(); i-- > 0;) {
    if (conv_kernel[i] < 1 || conv_stride[i] < 1) throw Error("wavlm.conv_kernel and conv_stride must be positive");
    // r <= 2^31 and stride, kernel < 2^31 keep the product inside int64.
    r = (r - 1) * conv_stride[i] + conv_kernel[i];
    if (r > kMaxReceptiveField)
      throw Error("wavlm.conv_kernel and conv_stride give a receptive field of more than " +
                  std::to_string(kMaxReceptiveField) + " samples");
  }
  return r;
}

ModelConfig ModelConfig::released() { return ModelConfig{}; }

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& label) {
  const json j = parse_json_strict(text, label);
  if (!j.is_object()) throw Error(label + ": must be a JSON object");
  ModelConfig c;
  std::set<std::string> top = {"format_version", "model_type", "whisper", "wavlm", "adapter",
                               "llama", "tokens", "generation", "quantization", "system_prompt"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!top.count(it.key())) throw Error(label + ": unknown key \"" + it.key() + "\"");
  if (!j.contains("format_version") || !convert(j["format_version"], c.format_version))
    throw Error(label + ": missing integer \"format_version\"");
  if (c.format_version != kFormatVersion)
    throw Error(label + ": format_version " + std::to_string(c.format_version) +
                " is not supported (this build reads " + std::to_string(kFormatVersion) + ")");
  if (j.contains("model_type") && j["model_type"] != "wavllm")
    throw Error(label + ": model_type must be \"wavllm\"");
  if (j.contains("system_prompt")) {
    if (!j["system_prompt"].is_string()) throw Error(label + ": system_prompt must be a string");
    c.system_prompt = j["system_prompt"].get<std::string>();
  }

  auto& w = c.whisper;
  Section(j, "whisper", label, true)
      .get("num_mel_bins", w.num_mel_bins).get("d_model", w.d_model)
      .get("encoder_layers", w.encoder_layers).get("encoder_attention_heads", w.encoder_attention_heads)
      .get("encoder_ffn_dim", w.encoder_ffn_dim).get("max_source_positions", w.max_source_positions)
      .get("layer_norm_eps", w.layer_norm_eps).finish();
  auto& v = c.wavlm;
  Section(j, "wavlm", label, true)
      .get("conv_dim", v.conv_dim).get("conv_kernel", v.conv_kernel).get("conv_stride", v.conv_stride)
      .get("conv_bias", v.conv_bias).get("hidden_size", v.hidden_size)
      .get("num_hidden_layers", v.num_hidden_layers).get("num_attention_heads", v.num_attention_heads)
      .get("intermediate_size", v.intermediate_size).get("layer_norm_eps", v.layer_norm_eps)
      .get("num_conv_pos_embeddings", v.num_conv_pos_embeddings)
      .get("num_conv_pos_embedding_groups", v.num_conv_pos_embedding_groups)
      .get("num_buckets", v.num_buckets).get("max_bucket_distance", v.max_bucket_distance)
      .get("do_normalize", v.do_normalize).finish();
  auto& a = c.adapter;
  Section(j, "adapter", label, true)
      .get("whisper_sub_mid", a.whisper_sub_mid).get("wavlm_sub_mid", a.wavlm_sub_mid)
      .get("sub_out", a.sub_out).get("adapter_down", a.adapter_down).get("branch_dim", a.branch_dim)
      .finish();
  auto& l = c.llama;
  Section ls(j, "llama", label, true);
  ls.get("dim", l.dim).get("n_layers", l.n_layers).get("n_heads", l.n_heads)
      .get("vocab_size", l.vocab_size).get("multiple_of", l.multiple_of).get("ffn_dim", l.ffn_dim)
      .get("norm_eps", l.norm_eps).get("rope_theta", l.rope_theta).get("max_seq_len", l.max_seq_len)
      .get("lora_r", l.lora_r).get("prompt_hidden", l.prompt_hidden).finish();
  if (!ls.has("ffn_dim")) l.ffn_dim = LlamaConfig::derive_ffn_dim(l.dim, l.multiple_of);
  auto& t = c.tokens;
  Section(j, "tokens", label, false).get("bos", t.bos).get("eos", t.eos).get("pad", t.pad).finish();
  auto& g = c.generation;
  Section(j, "generation", label, false)
      .get("max_steps", g.max_steps).get("temperature", g.temperature).get("top_p", g.top_p)
      .get("top_k", g.top_k).get("num_beams", g.num_beams).get("length_penalty", g.length_penalty)
      .get("repetition_penalty", g.repetition_penalty)
      .get("no_repeat_ngram_size", g.no_repeat_ngram_size).finish();
  Section(j, "quantization", label, false).get("format", c.quantization.format).finish();
  c.validate(label);
  return c;
}

void ModelConfig::validate(const std::string& label) const {
  const auto& w = whisper;
  positive(label, "whisper.num_mel_bins", w.num_mel_bins);
  positive(label, "whisper.d_model", w.d_model);
  layer_count(label, "whisper.encoder_layers", w.encoder_layers);
  positive(label, "whisper.encoder_attention_heads", w.encoder_attention_heads);
  positive(label, "whisper.encoder_ffn_dim", w.encoder_ffn_dim);
  positive(label, "whisper.max_source_positions", w.max_source_positions);
  positive(label, "whisper.layer_norm_eps", w.layer_norm_eps);
  if (w.d_model % w.encoder_attention_heads)
    throw Error(label + ": whisper.d_model must be divisible by encoder_attention_heads");
  const auto& v = wavlm;
  if (v.conv_dim.empty() || v.conv_dim.size() != v.conv_kernel.size() || v.conv_dim.size() != v.conv_stride.size())
    throw Error(label + ": wavlm.conv_dim, conv_kernel and conv_stride must be non-empty and of equal length");
  if (v.conv_dim.size() > 64) throw Error(label + ": wavlm.conv_dim has " + std::to_string(v.conv_dim.size()) + " layers (limit 64)");
  for (size_t i = 0; i < v.conv_dim.size(); ++i) {
    positive(label, "wavlm.conv_dim[i]", v.conv_dim[i]);
    positive(label, "wavlm.conv_kernel[i]", v.conv_kernel[i]);
    positive(label, "wavlm.conv_stride[i]", v.conv_stride[i]);
  }
  try {
    v.receptive_field();
  } catch (const Error& e) {
    throw Error(label + ": " + e.what());
  }
  positive(label, "wavlm.hidden_size", v.hidden_size);
  layer_count(label, "wavlm.num_hidden_layers", v.num_hidden_layers);
  positive(label, "wavlm.num_attention_heads", v.num_attention_heads);
  positive(label, "wavlm.intermediate_size", v.intermediate_size);
  positive(label, "wavlm.layer_norm_eps", v.layer_norm_eps);
  positive(label, "wavlm.num_conv_pos_embeddings", v.num_conv_pos_embeddings);
  positive(label, "wavlm.num_conv_pos_embedding_groups", v.num_conv_pos_embedding_groups);
  positive(label, "wavlm.max_bucket_distance", v.max_bucket_distance);
  if (v.num_buckets < 4 || v.num_buckets % 4)
    throw Error(label + ": wavlm.num_buckets must be a positive multiple of 4");
  if (v.hidden_size % v.num_attention_heads || v.hidden_size % v.num_conv_pos_embedding_groups)
    throw Error(label + ": wavlm.hidden_size must be divisible by num_attention_heads and num_conv_pos_embedding_groups");
  const auto& a = adapter;
  positive(label, "adapter.whisper_sub_mid", a.whisper_sub_mid);
  positive(label, "adapter.wavlm_sub_mid", a.wavlm_sub_mid);
  positive(label, "adapter.sub_out", a.sub_out);
  positive(label, "adapter.adapter_down", a.adapter_down);
  positive(label, "adapter.branch_dim", a.branch_dim);
  if (a.whisper_sub_mid % 2 || a.wavlm_sub_mid % 2)
    throw Error(label + ": adapter.*_sub_mid must be even (GLU halves the channels)");
  const auto& l = llama;
  positive(label, "llama.dim", l.dim);
  layer_count(label, "llama.n_layers", l.n_layers);
  positive(label, "llama.n_heads", l.n_heads);
  positive(label, "llama.vocab_size", l.vocab_size);
  positive(label, "llama.ffn_dim", l.ffn_dim);
  positive(label, "llama.multiple_of", l.multiple_of);
  positive(label, "llama.norm_eps", l.norm_eps);
  // theta^(-2i/d) spans the rotary frequencies: below 1 they overflow float32, and no model uses
  // a base beyond 1e12 (LLaMA-2: 1e4, LLaMA-3: 5e5).
  if (!(l.rope_theta >= 1 && l.rope_theta <= 1e12))
    throw Error(label + ": llama.rope_theta must be in [1, 1e12] (got " + std::to_string(l.rope_theta) + ")");
  positive(label, "llama.max_seq_len", l.max_seq_len);
  positive(label, "llama.lora_r", l.lora_r);
  positive(label, "llama.prompt_hidden", l.prompt_hidden);
  if (l.dim % l.n_heads || l.head_dim() % 2)
    throw Error(label + ": llama.dim / n_heads must be an even integer (rotary pairs)");
  for (int64_t id : {tokens.bos, tokens.eos, tokens.pad})
    if (id < 0 || id >= l.vocab_size) throw Error(label + ": token id " + std::to_string(id) + " is outside the vocabulary");
  if (const std::string p = generation.problem(); !p.empty()) throw Error(label + ": generation." + p);
  if (!quantization.format.empty() && quantization.format != QuantizationConfig::kQ8_0 &&
      quantization.format != QuantizationConfig::kQ4_0)
    throw Error(label + ": quantization.format \"" + quantization.format + "\" is not one this build runs (q8_0, q4_0)");
}

std::string GenerationOptions::problem() const {
  if (max_steps < 1 || max_steps > kMaxSteps) return "max_steps: must be in [1, " + std::to_string(kMaxSteps) + "]";
  if (!std::isfinite(temperature) || !(temperature == 0 || (temperature >= kMinTemperature && temperature <= kMaxTemperature)))
    return "temperature: must be 0 (greedy) or in [0.001, 100]";
  if (!(top_p > 0 && top_p <= 1)) return "top_p: must be in (0, 1]";
  if (top_k < 0) return "top_k: must be >= 0 (0: no cut)";
  if (num_beams < 1 || num_beams > kMaxBeams) return "num_beams: must be in [1, " + std::to_string(kMaxBeams) + "]";
  if (num_beams > 1 && temperature > 0) return "num_beams: beam search needs temperature 0 (no sampling)";
  if (!std::isfinite(length_penalty)) return "length_penalty: must be finite";
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
    return "repetition_penalty: must be a finite value > 0";
  // Banning repeats scans the generated ids once per step and n-gram position.
  if (no_repeat_ngram_size < 0 || no_repeat_ngram_size > kMaxNoRepeatNgram)
    return "no_repeat_ngram_size: must be in [0, " + std::to_string(kMaxNoRepeatNgram) + "]";
  if (max_new_tokens < 0) return "max_new_tokens: must be >= 0 (0: no limit)";
  if (stop.size() > kMaxStopStrings) return "stop: at most " + std::to_string(kMaxStopStrings) + " stop strings";
  for (const auto& s : stop)
    if (s.empty() || s.size() > kMaxStopBytes)
      return "stop: stop strings must have 1 to " + std::to_string(kMaxStopBytes) + " bytes";
  return "";
}

void GenerationOptions::validate() const {
  if (const std::string p = problem(); !p.empty()) throw ArgumentError("generation option " + p);
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) p /= "config.json";
  if (!fs::exists(fs::symlink_status(p, ec))) throw Error(p.string() + ": no such file (a model directory needs config.json)");
  return from_json_text(read_regular_file(p.string(), "config", kMaxJsonFileBytes), p.string());
}

std::string ModelConfig::to_json_text() const {
  const auto& w = whisper;
  const auto& v = wavlm;
  const auto& a = adapter;
  const auto& l = llama;
  const auto& g = generation;
  json j = {
      {"format_version", format_version},
      {"model_type", "wavllm"},
      {"whisper", {{"num_mel_bins", w.num_mel_bins}, {"d_model", w.d_model}, {"encoder_layers", w.encoder_layers},
                   {"encoder_attention_heads", w.encoder_attention_heads}, {"encoder_ffn_dim", w.encoder_ffn_dim},
                   {"max_source_positions", w.max_source_positions}, {"layer_norm_eps", w.layer_norm_eps}}},
      {"wavlm", {{"conv_dim", v.conv_dim}, {"conv_kernel", v.conv_kernel}, {"conv_stride", v.conv_stride},
                 {"conv_bias", v.conv_bias}, {"hidden_size", v.hidden_size}, {"num_hidden_layers", v.num_hidden_layers},
                 {"num_attention_heads", v.num_attention_heads}, {"intermediate_size", v.intermediate_size},
                 {"layer_norm_eps", v.layer_norm_eps}, {"num_conv_pos_embeddings", v.num_conv_pos_embeddings},
                 {"num_conv_pos_embedding_groups", v.num_conv_pos_embedding_groups}, {"num_buckets", v.num_buckets},
                 {"max_bucket_distance", v.max_bucket_distance}, {"do_normalize", v.do_normalize}}},
      {"adapter", {{"whisper_sub_mid", a.whisper_sub_mid}, {"wavlm_sub_mid", a.wavlm_sub_mid}, {"sub_out", a.sub_out},
                   {"adapter_down", a.adapter_down}, {"branch_dim", a.branch_dim}}},
      {"llama", {{"dim", l.dim}, {"n_layers", l.n_layers}, {"n_heads", l.n_heads}, {"vocab_size", l.vocab_size},
                 {"multiple_of", l.multiple_of}, {"ffn_dim", l.ffn_dim}, {"norm_eps", l.norm_eps},
                 {"rope_theta", l.rope_theta}, {"max_seq_len", l.max_seq_len}, {"lora_r", l.lora_r},
                 {"prompt_hidden", l.prompt_hidden}}},
      {"tokens", {{"bos", tokens.bos}, {"eos", tokens.eos}, {"pad", tokens.pad}}},
      {"generation", {{"max_steps", g.max_steps}, {"temperature", g.temperature}, {"top_p", g.top_p},
                      {"top_k", g.top_k}, {"num_beams", g.num_beams}, {"length_penalty", g.length_penalty},
                      {"repetition_penalty", g.repetition_penalty},
                      {"no_repeat_ngram_size", g.no_repeat_ngram_size}}},
      {"system_prompt", system_prompt},
  };
  if (!quantization.format.empty()) j["quantization"] = {{"format", quantization.format}};
  return j.dump(1) + "\n";
}

void ModelConfig::save(const std::string& path) const {
  // "x": a config.json that is already there is never overwritten.
  std::FILE* f = std::fopen(path.c_str(), "wx");
  if (!f) throw Error(path + (errno == EEXIST ? std::string(": already exists; refusing to overwrite it")
                                              : ": cannot open for writing: " + std::string(std::strerror(errno))));
  const std::string text = to_json_text();
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) throw Error(path + ": write failed (disk full?)");
}

}  // namespace wavllm
