// HF WhisperEncoder (docs/model.md §2): conv stem, learned positions, pre-LN transformer blocks.
#include <algorithm>
#include <string>

#include "common.h"
#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/schema.h"
#include "wavllm/encoders/encoders.h"

namespace wavllm::encoders {

using detail::take;

WhisperEncoder::WhisperEncoder(const WhisperConfig& cfg, const Weights& w) : cfg_(cfg) {
  const int64_t d = cfg.d_model, ffn = cfg.encoder_ffn_dim;
  if (d <= 0 || cfg.encoder_attention_heads <= 0 || d % cfg.encoder_attention_heads != 0)
    throw Error("whisper encoder: d_model " + std::to_string(d) + " is not a positive multiple of "
                "encoder_attention_heads " + std::to_string(cfg.encoder_attention_heads));
  const std::string p = "audio_encoder.model.";
  conv1_w_ = take(w, p + "conv1.weight", {d, cfg.num_mel_bins, 3});
  conv1_b_ = take(w, p + "conv1.bias", {d});
  conv2_w_ = take(w, p + "conv2.weight", {d, d, 3});
  conv2_b_ = take(w, p + "conv2.bias", {d});
  pos_ = take(w, p + "embed_positions.weight", {cfg.max_source_positions, d});
  ln_w_ = take(w, p + "layer_norm.weight", {d});
  ln_b_ = take(w, p + "layer_norm.bias", {d});
  for (int i = 0; i < cfg.encoder_layers; ++i) {
    const std::string q = p + "layers." + std::to_string(i) + ".";
    Layer l;
    l.ln1_w = take(w, q + "self_attn_layer_norm.weight", {d});
    l.ln1_b = take(w, q + "self_attn_layer_norm.bias", {d});
    l.q_w = take(w, q + "self_attn.q_proj.weight", {d, d});
    l.q_b = take(w, q + "self_attn.q_proj.bias", {d});
    l.k_w = take(w, q + "self_attn.k_proj.weight", {d, d});
    l.v_w = take(w, q + "self_attn.v_proj.weight", {d, d});
    l.v_b = take(w, q + "self_attn.v_proj.bias", {d});
    l.o_w = take(w, q + "self_attn.out_proj.weight", {d, d});
    l.o_b = take(w, q + "self_attn.out_proj.bias", {d});
    l.ln2_w = take(w, q + "final_layer_norm.weight", {d});
    l.ln2_b = take(w, q + "final_layer_norm.bias", {d});
    l.fc1_w = take(w, q + "fc1.weight", {ffn, d});
    l.fc1_b = take(w, q + "fc1.bias", {ffn});
    l.fc2_w = take(w, q + "fc2.weight", {d, ffn});
    l.fc2_b = take(w, q + "fc2.bias", {d});
    layers_.push_back(std::move(l));
  }
}

int64_t WhisperEncoder::output_length(int64_t valid_frames) { return (valid_frames - 1) / 2 + 1; }

uint64_t WhisperEncoder::activation_bytes(int64_t parts, at::ScalarType dtype) const {
  const uint64_t elt = c10::elementSize(dtype), p = uint64_t(std::max<int64_t>(parts, 0));
  const uint64_t pos = cfg_.max_source_positions, frames = 2 * pos, d = cfg_.d_model;
  const uint64_t heads = cfg_.encoder_attention_heads, ffn = cfg_.encoder_ffn_dim;
  // The mel input (float32 from the caller, plus its cast) and the two convs with their GELUs.
  const uint64_t convs = p * (cfg_.num_mel_bins * frames * (4 + elt) + (2 * frames * d + 2 * pos * d) * elt);
  uint64_t scores = p * heads * pos * pos * elt;
  if (elt != 4 && elt != 8) scores += p * heads * pos * pos * 8;  // float32 copy + float32 softmax
  // A layer: the residual stream, its norm, q/k/v and their head-split copies, the context and
  // its merge, the output projection; the FFN's hidden layer and its GELU.
  const uint64_t layer = p * (11 * pos * d + 2 * pos * ffn) * elt;
  return std::max(convs, scores + layer);
}

at::Tensor WhisperEncoder::self_attention(const at::Tensor& x, const Layer& l, at::Tensor& scores) const {
  const int64_t b = x.size(0), t = x.size(1), heads = cfg_.encoder_attention_heads;
  const int64_t hd = cfg_.d_model / heads;
  // [b, t, d] -> [b * heads, t, hd]
  auto split = [&](const at::Tensor& y) { return y.view({b, t, heads, hd}).transpose(1, 2).reshape({b * heads, t, hd}); };
  // The reference scales q after its bias: (x Wq + bq) * hd^-0.5.
  const at::Tensor q = split(at::linear(x, l.q_w, l.q_b).mul_(1.0 / std::sqrt(double(hd))));
  const at::Tensor k = split(at::linear(x, l.k_w));
  const at::Tensor v = split(at::linear(x, l.v_w, l.v_b));
  at::bmm_out(scores, q, k.transpose(1, 2));
  const at::Tensor ctx = at::bmm(detail::softmax_scores(scores), v);
  return at::linear(ctx.view({b, heads, t, hd}).transpose(1, 2).reshape({b, t, cfg_.d_model}), l.o_w, l.o_b);
}

at::Tensor WhisperEncoder::forward(const at::Tensor& mel, const std::vector<int64_t>& valid_frames) const {
  InferenceGuard guard;
  const int64_t frames = 2 * int64_t(cfg_.max_source_positions);
  if (mel.dim() != 3 || mel.size(0) < 1 || mel.size(1) != cfg_.num_mel_bins || mel.size(2) != frames)
    throw Error("whisper encoder: expected log-mel [parts, " + std::to_string(cfg_.num_mel_bins) + ", " +
                std::to_string(frames) + "], got " + shape_str(mel.sizes().vec()));
  if (int64_t(valid_frames.size()) != mel.size(0))
    throw Error("whisper encoder: " + std::to_string(valid_frames.size()) + " valid frame counts for " +
                std::to_string(mel.size(0)) + " log-mel parts");
  int64_t out_len = 0;
  for (int64_t v : valid_frames) {
    if (v < 1 || v > frames)
      throw Error("whisper encoder: valid frames " + std::to_string(v) + " outside 1.." + std::to_string(frames));
    out_len = std::max(out_len, output_length(v));
  }
  const int64_t d = cfg_.d_model;
  const double eps = cfg_.layer_norm_eps;

  at::Tensor x = mel.to(conv1_w_.device(), conv1_w_.scalar_type());
  x = at::gelu(at::conv1d(x, conv1_w_, conv1_b_, /*stride=*/1, /*padding=*/1));
  x = at::gelu(at::conv1d(x, conv2_w_, conv2_b_, /*stride=*/2, /*padding=*/1));
  x = x.transpose(1, 2).contiguous().add_(pos_);  // [parts, positions, d]
  const int64_t parts = x.size(0), positions = x.size(1);
  at::Tensor scores = at::empty({parts * cfg_.encoder_attention_heads, positions, positions}, x.options());
  for (const Layer& l : layers_) {
    x.add_(self_attention(at::layer_norm(x, {d}, l.ln1_w, l.ln1_b, eps), l, scores));
    const at::Tensor h = at::layer_norm(x, {d}, l.ln2_w, l.ln2_b, eps);
    x.add_(at::linear(at::gelu(at::linear(h, l.fc1_w, l.fc1_b)), l.fc2_w, l.fc2_b));
  }
  // The final LayerNorm is per position: normalising only the kept positions gives the same rows.
  return at::layer_norm(x.narrow(1, 0, out_len), {d}, ln_w_, ln_b_, eps).contiguous();
}

}  // namespace wavllm::encoders
