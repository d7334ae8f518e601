#pragma once
// The model directory's config.json: every hyperparameter of docs/model.md §2-§6. Sizes that
// tensor shapes also tell are checked against the weights when the model loads.
#include <cstdint>
#include <string>
#include <vector>

#include "wavllm/core/generation.h"

namespace wavllm {

struct WhisperConfig {
  int num_mel_bins = 80;
  int d_model = 1280;
  int encoder_layers = 32;
  int encoder_attention_heads = 20;
  int encoder_ffn_dim = 5120;
  int max_source_positions = 1500;
  double layer_norm_eps = 1e-5;
};

struct WavLMConfig {
  std::vector<int> conv_dim = std::vector<int>(7, 512);
  std::vector<int> conv_kernel = {10, 3, 3, 3, 3, 2, 2};
  std::vector<int> conv_stride = {5, 2, 2, 2, 2, 2, 2};
  bool conv_bias = false;
  int hidden_size = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int intermediate_size = 3072;
  double layer_norm_eps = 1e-5;
  int num_conv_pos_embeddings = 128;
  int num_conv_pos_embedding_groups = 16;
  int num_buckets = 320;
  int max_bucket_distance = 800;
  bool do_normalize = false;  // zero-mean unit-variance input normalisation

  static constexpr int64_t kMaxReceptiveField = int64_t(1) << 31;  // samples (37 h at 16 kHz)
  // Samples the feature extractor needs for one frame: r = (r - 1) * stride + kernel from the
  // last conv back. An Error when it passes kMaxReceptiveField (each value valid alone, their
  // product would overflow int64).
  int64_t receptive_field() const;
};

// Conv1dSubsampler + bottleneck adapter + projector of each branch.
struct AdapterConfig {
  int whisper_sub_mid = 1280;  // first conv's output channels (GLU halves them)
  int wavlm_sub_mid = 512;
  int sub_out = 1024;          // channels after the second conv's GLU (the conv has 2 x sub_out)
  int adapter_down = 512;
  int branch_dim = 2048;       // projector output; fusion input is 2 x branch_dim
};

struct LlamaConfig {
  int dim = 4096;
  int n_layers = 32;
  int n_heads = 32;
  int vocab_size = 32000;
  int multiple_of = 256;
  int ffn_dim = 11008;  // derived from dim and multiple_of when absent from the JSON
  double norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int max_seq_len = 1024;  // the rotary table has 2 * max_seq_len positions, as in the reference
  int lora_r = 32;
  int prompt_hidden = 1024;  // scale_fc_1 output

  int head_dim() const { return dim / n_heads; }
  int max_positions() const { return 2 * max_seq_len; }
  static int derive_ffn_dim(int dim, int multiple_of);
};

struct TokenConfig {
  int64_t bos = 1;
  int64_t eos = 2;
  int64_t pad = 0;
};

// How the matrices the layers mark quantizable are stored (docs/kernels.md); every other
// tensor keeps a float dtype.
struct QuantizationConfig {
  static constexpr const char* kQ8_0 = "q8_0";
  static constexpr const char* kQ4_0 = "q4_0";
  std::string format;  // "" (none: float weights), "q8_0" or "q4_0"
};

struct ModelConfig {
  static constexpr int kFormatVersion = 1;
  int format_version = kFormatVersion;
  WhisperConfig whisper;
  WavLMConfig wavlm;
  AdapterConfig adapter;
  LlamaConfig llama;
  TokenConfig tokens;
  GenerationOptions generation;  // the "generation" section: defaults of every request
  QuantizationConfig quantization;
  std::string system_prompt =
      "As a helpful language and speech assistant, you are able to understand the speech content "
      "provided by the user, and assist the user with a variety of tasks using natural language.";

  // The released WavLLM sizes (Whisper-large-v2, WavLM-base, LLaMA-2-7B).
  static ModelConfig released();
  static ModelConfig from_json_text(const std::string& text, const std::string& label);
  static ModelConfig load(const std::string& path);  // a config.json or a model directory
  std::string to_json_text() const;
  void save(const std::string& path) const;  // a new file: an existing one is an Error
  void validate(const std::string& label) const;  // throws Error naming the bad field
};

}  // namespace wavllm
