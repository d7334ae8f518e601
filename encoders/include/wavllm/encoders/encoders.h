#pragma once
// The two speech encoders of WavLLM (docs/model.md §2-§3): HF WhisperEncoder (Whisper-large-v2)
// and HF WavLMModel (WavLM-base) with WavLLM's softmax-weighted sum of its hidden states.
// Both are compositions of nn layers bound to the checkpoint tensors (views, no copies except the
// weight-normed pos_conv kernel) and compute in the weights' dtype on their device; inputs may
// come from any device.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "wavllm/core/config.h"
#include "wavllm/nn/layers.h"

namespace wavllm::encoders {

class WhisperEncoder {
 public:
  // `s`: the checkpoint's audio_encoder module (tensors model.*); sizes from cfg. When binding,
  // an Error names any tensor that is missing or has the wrong shape.
  WhisperEncoder(const WhisperConfig& cfg, const nn::Scope& s);

  // mel: [parts, num_mel_bins, 2 * max_source_positions] log-mel (3000 frames per 30-s part);
  // valid_frames: one count per part, 1..3000. All parts are encoded as one batch over every
  // position (no mask), then cut to the LONGEST valid output length (valid_frames - 1) / 2 + 1
  // among them: [parts, L, d_model] in the weights' dtype, contiguous.
  // margin_frames (beyond the reference, docs/model.md §2): encode only the first (longest
  // valid + margin) frames of each part's window instead of all 3000 (whisper.cpp's audio_ctx
  // idea); the output has the same shape, its values differ by what the cut-off padding changed.
  at::Tensor forward(const at::Tensor& mel, const std::vector<int64_t>& valid_frames,
                     std::optional<int64_t> margin_frames = std::nullopt) const;

  // (valid_frames - 1) / 2 + 1: frames left after conv2's stride 2.
  static int64_t output_length(int64_t valid_frames);

  // Bytes of activations forward() holds at its peak for `parts` parts in `dtype` (every live
  // buffer counted: conv outputs, the shared score buffer, a layer's projections and FFN, the
  // float32 softmax of half-precision scores). Lets a caller refuse before any compute.
  uint64_t activation_bytes(int64_t parts, at::ScalarType dtype) const;

 private:
  // Pre-LN: x += attention(norm(x)); x += ffn(norm(x)). Members in checkpoint order.
  struct Layer {
    Layer(const nn::Scope& s, const WhisperConfig& cfg);
    nn::WhisperAttention attention;
    nn::LayerNorm attention_norm;
    nn::GeluFFN ffn;
    nn::LayerNorm ffn_norm;
  };

  WhisperConfig cfg_;
  nn::Conv1d conv1_, conv2_;
  nn::Embedding positions_;
  std::vector<Layer> layers_;
  nn::LayerNorm final_norm_;
};

class WavLMEncoder {
 public:
  // `s`: the checkpoint's wavlm_encoder module (tensors model.* and output_weights).
  WavLMEncoder(const WavLMConfig& cfg, const nn::Scope& s);

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
  // Post-LN: x = norm(x + attention(x)); x = norm(x + ffn(x)). Members in checkpoint order.
  struct Layer {
    Layer(const nn::Scope& s, const WavLMConfig& cfg);
    nn::WavLMAttention attention;
    nn::LayerNorm attention_norm;
    nn::GeluFFN ffn;
    nn::LayerNorm ffn_norm;
  };
  at::Tensor position_bias(int64_t frames) const;  // [heads, T, T], ungated

  WavLMConfig cfg_;
  int64_t min_samples_ = 0;
  std::vector<nn::Conv1d> convs_;
  nn::GroupNorm conv0_norm_;
  nn::LayerNorm projection_norm_;
  nn::Linear projection_;
  nn::WeightNormConv1d pos_conv_;
  nn::LayerNorm encoder_norm_;
  std::vector<Layer> layers_;
  nn::Embedding rel_embed_;  // the relative position buckets, in layer 0's attention
  at::Tensor output_weights_;
};

}  // namespace wavllm::encoders
