// HF WhisperEncoder (docs/model.md §2): conv stem, learned positions, pre-LN transformer blocks.
#include <algorithm>
#include <string>

#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/encoders/encoders.h"

namespace wavllm::encoders {

namespace {

const WhisperConfig& checked(const WhisperConfig& cfg) {
  if (cfg.d_model <= 0 || cfg.encoder_attention_heads <= 0 || cfg.d_model % cfg.encoder_attention_heads != 0)
    throw Error("whisper encoder: d_model " + std::to_string(cfg.d_model) + " is not a positive multiple of "
                "encoder_attention_heads " + std::to_string(cfg.encoder_attention_heads));
  return cfg;
}

Dim width(const WhisperConfig& cfg) { return {cfg.d_model, "whisper.d_model"}; }

}  // namespace

WhisperEncoder::Layer::Layer(const nn::Scope& s, const WhisperConfig& cfg)
    : attention(s / "self_attn", width(cfg), cfg.encoder_attention_heads),
      attention_norm(s, "self_attn_layer_norm", width(cfg), cfg.layer_norm_eps),
      ffn(s, "fc1", "fc2", width(cfg), {cfg.encoder_ffn_dim, "whisper.encoder_ffn_dim"}),
      ffn_norm(s, "final_layer_norm", width(cfg), cfg.layer_norm_eps) {}

WhisperEncoder::WhisperEncoder(const WhisperConfig& cfg, const nn::Scope& s)
    : cfg_(checked(cfg)),
      conv1_(s / "model", "conv1", width(cfg), {cfg.num_mel_bins, "whisper.num_mel_bins"}, 3, {1, 1, 1}),
      conv2_(s / "model", "conv2", width(cfg), width(cfg), 3, {2, 1, 1}),
      positions_(s / "model", "embed_positions", {cfg.max_source_positions, "whisper.max_source_positions"},
                 width(cfg)) {
  for (const nn::Scope& l : (s / "model").repeat("layers", {cfg.encoder_layers, "whisper.encoder_layers"}))
    layers_.emplace_back(l, cfg);
  final_norm_ = nn::LayerNorm(s / "model", "layer_norm", width(cfg), cfg.layer_norm_eps);
}

int64_t WhisperEncoder::output_length(int64_t valid_frames) { return (valid_frames - 1) / 2 + 1; }

uint64_t WhisperEncoder::activation_bytes(int64_t parts, at::ScalarType dtype) const {
  const uint64_t elt = c10::elementSize(dtype), p = uint64_t(std::max<int64_t>(parts, 0));
  const uint64_t pos = cfg_.max_source_positions, frames = 2 * pos, d = cfg_.d_model;
  const uint64_t heads = cfg_.encoder_attention_heads, ffn = cfg_.encoder_ffn_dim;
  // The mel input (float32 from the caller, plus its cast) and the two convs with their GELUs.
  const uint64_t convs = p * (cfg_.num_mel_bins * frames * (4 + elt) + (2 * frames * d + 2 * pos * d) * elt);
  const uint64_t scores = nn::attention_bytes(p * heads, pos, dtype, /*bias_in_scores=*/false);
  // A layer: the residual stream, its norm, q/k/v and their head-split copies, the context and
  // its merge, the output projection; the FFN's hidden layer and its GELU.
  const uint64_t layer = p * (11 * pos * d + 2 * pos * ffn) * elt;
  return std::max(convs, scores + layer);
}

at::Tensor WhisperEncoder::forward(const at::Tensor& mel, const std::vector<int64_t>& valid_frames,
                                   std::optional<int64_t> margin_frames) const {
  InferenceGuard guard;
  const int64_t frames = 2 * int64_t(cfg_.max_source_positions);
  if (mel.dim() != 3 || mel.size(0) < 1 || mel.size(1) != cfg_.num_mel_bins || mel.size(2) != frames)
    throw Error("whisper encoder: expected log-mel [parts, " + std::to_string(cfg_.num_mel_bins) + ", " +
                std::to_string(frames) + "], got " + shape_str(mel.sizes().vec()));
  if (int64_t(valid_frames.size()) != mel.size(0))
    throw Error("whisper encoder: " + std::to_string(valid_frames.size()) + " valid frame counts for " +
                std::to_string(mel.size(0)) + " log-mel parts");
  int64_t out_len = 0, longest_valid = 0;
  for (int64_t v : valid_frames) {
    if (v < 1 || v > frames)
      throw Error("whisper encoder: valid frames " + std::to_string(v) + " outside 1.." + std::to_string(frames));
    out_len = std::max(out_len, output_length(v));
    longest_valid = std::max(longest_valid, v);
  }
  if (margin_frames && *margin_frames < 0)
    throw Error("whisper encoder: a margin of " + std::to_string(*margin_frames) + " frames");
  // An even window keeps conv2's positions aligned with the full window's.
  const int64_t window = margin_frames ? std::min(frames, (longest_valid + *margin_frames + 1) / 2 * 2) : frames;
  const at::Tensor& conv1_weight = conv1_.weight();
  at::Tensor x = mel.narrow(2, 0, window).to(conv1_weight.device(), conv1_weight.scalar_type());
  x = at::gelu(conv1_.forward(x));
  x = at::gelu(conv2_.forward(x));
  x = x.transpose(1, 2).contiguous().add_(positions_.table().narrow(0, 0, window / 2));  // [parts, positions, d]
  const int64_t parts = x.size(0), positions = x.size(1);
  at::Tensor scores = at::empty({parts * cfg_.encoder_attention_heads, positions, positions}, x.options());
  for (const Layer& l : layers_) {
    x.add_(l.attention.forward(l.attention_norm.forward(x), scores));
    x.add_(l.ffn.forward(l.ffn_norm.forward(x)));
  }
  // The final LayerNorm is per position: normalising only the kept positions gives the same rows.
  return final_norm_.forward(x.narrow(1, 0, out_len)).contiguous();
}

}  // namespace wavllm::encoders
