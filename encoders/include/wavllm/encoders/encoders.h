#pragma once
// The two speech encoders of WavLLM (docs/model.md §2-§3): HF WhisperEncoder (Whisper-large-v2)
// and HF WavLMModel (WavLM-base) with WavLLM's softmax-weighted sum of its hidden states.
// Both hold views of the checkpoint tensors (no copies except the weight-normed pos_conv
// kernel) and compute in the weights' dtype on their device; inputs may come from any device.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "wavllm/core/config.h"
#include "wavllm/core/weights.h"

namespace wavllm::encoders {

class WhisperEncoder {
 public:
  // Tensors audio_encoder.model.* of `w` (already on the target device/dtype); sizes from cfg.
  // An Error names any tensor that is missing or has the wrong shape.
  WhisperEncoder(const WhisperConfig& cfg, const Weights& w);

  // mel: [parts, num_mel_bins, 2 * max_source_positions] log-mel (3000 frames per 30-s part);
  // valid_frames: one count per part, 1..3000. All parts are encoded as one batch over every
  // position (no mask), then cut to the LONGEST valid output length (valid_frames - 1) / 2 + 1
  // among them: [parts, L, d_model] in the weights' dtype, contiguous.
  at::Tensor forward(const at::Tensor& mel, const std::vector<int64_t>& valid_frames) const;

  // (valid_frames - 1) / 2 + 1: frames left after conv2's stride 2.
  static int64_t output_length(int64_t valid_frames);

  // Bytes of activations forward() holds at its peak for `parts` parts in `dtype` (every live
  // buffer counted: conv outputs, the shared score buffer, a layer's projections and FFN, the
  // float32 softmax of half-precision scores). Lets a caller refuse before any compute.
  uint64_t activation_bytes(int64_t parts, at::ScalarType dtype) const;

 private:
  struct Layer {
    at::Tensor ln1_w, ln1_b, q_w, q_b, k_w, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  // scores: [parts * heads, positions, positions], one buffer reused by every layer.
  at::Tensor self_attention(const at::Tensor& x, const Layer& l, at::Tensor& scores) const;

  WhisperConfig cfg_;
  at::Tensor conv1_w_, conv1_b_, conv2_w_, conv2_b_, pos_, ln_w_, ln_b_;
  std::vector<Layer> layers_;
};

class WavLMEncoder {
 public:
  // Tensors wavlm_encoder.model.* and wavlm_encoder.output_weights of `w`; sizes from cfg.
  WavLMEncoder(const WavLMConfig& cfg, const Weights& w);

  // wave: [n] float samples at 16 kHz, n >= min_samples() (do_normalize, if any, is the
  // caller's). Returns num_hidden_layers + 1 tensors [T, hidden_size]: the encoder's input
  // (after pos_conv and LayerNorm) and each layer's output, contiguous, weights' dtype.
  std::vector<at::Tensor> hidden_states(const at::Tensor& wave) const;

  // softmax(output_weights)-weighted sum of hidden_states(): [T, hidden_size].
  at::Tensor weighted_sum(const std::vector<at::Tensor>& hidden) const;

  // Frames T of the feature extractor for n samples (0 when n is below the receptive field).
  int64_t frames(int64_t samples) const;
  // The receptive field of the feature extractor: the shortest input that gives one frame.
  int64_t min_samples() const { return min_samples_; }

  // Bytes of activations hidden_states() + weighted_sum() hold at their peak for n samples in
  // `dtype` (the feature extractor's two widest conv outputs, the position bias and the score
  // buffer, a layer's temporaries, the kept hidden states and the weighted sum's stack).
  uint64_t activation_bytes(int64_t samples, at::ScalarType dtype) const;

 private:
  struct Layer {
    at::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, gru_w, gru_b, gru_const;
    at::Tensor ln1_w, ln1_b, ff1_w, ff1_b, ff2_w, ff2_b, ln2_w, ln2_b;
  };
  at::Tensor position_bias(int64_t frames) const;  // [heads, T, T], ungated
  // scores: [heads, T, T], one buffer reused by every layer.
  at::Tensor attention(const at::Tensor& x, const Layer& l, const at::Tensor& bias, at::Tensor& scores) const;

  WavLMConfig cfg_;
  int64_t min_samples_ = 0;
  std::vector<at::Tensor> conv_w_, conv_b_;  // conv_b_ entries are undefined without conv_bias
  at::Tensor gn_w_, gn_b_, fp_ln_w_, fp_ln_b_, fp_w_, fp_b_;
  at::Tensor pos_conv_w_, pos_conv_b_;  // weight-normed once at construction
  at::Tensor enc_ln_w_, enc_ln_b_, rel_embed_, output_weights_;
  std::vector<Layer> layers_;
};

}  // namespace wavllm::encoders
