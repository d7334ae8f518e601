// HF WavLMModel, post-LN layout of WavLM-base (docs/model.md §3), plus WavLLM's weighted sum.
#include <algorithm>
#include <cmath>
#include <string>

#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/encoders/encoders.h"

namespace wavllm::encoders {

namespace {

// HF builds the feature extractor's GroupNorm with torch's default eps, not layer_norm_eps.
constexpr double kGroupNormEps = 1e-5;

const WavLMConfig& checked(const WavLMConfig& cfg) {
  const size_t n_conv = cfg.conv_dim.size();
  if (n_conv == 0 || cfg.conv_kernel.size() != n_conv || cfg.conv_stride.size() != n_conv)
    throw Error("wavlm encoder: conv_dim, conv_kernel and conv_stride must be non-empty and of equal length");
  const int64_t h = cfg.hidden_size, heads = cfg.num_attention_heads, groups = cfg.num_conv_pos_embedding_groups;
  if (h <= 0 || heads <= 0 || h % heads != 0 || groups <= 0 || h % groups != 0)
    throw Error("wavlm encoder: hidden_size " + std::to_string(h) + " must be a positive multiple of "
                "num_attention_heads and num_conv_pos_embedding_groups");
  if (cfg.num_buckets < 4 || cfg.num_buckets % 2 != 0 || cfg.max_bucket_distance <= cfg.num_buckets / 4)
    throw Error("wavlm encoder: num_buckets must be even and >= 4, and max_bucket_distance > num_buckets / 4");
  return cfg;
}

Dim width(const WavLMConfig& cfg) { return {cfg.hidden_size, "wavlm.hidden_size"}; }
Dim heads(const WavLMConfig& cfg) { return {cfg.num_attention_heads, "wavlm.num_attention_heads"}; }
Dim conv_channels(const WavLMConfig& cfg, size_t i) { return {cfg.conv_dim[i], "wavlm.conv_dim." + std::to_string(i)}; }

}  // namespace

WavLMEncoder::Layer::Layer(const nn::Scope& s, const WavLMConfig& cfg)
    : attention(s / "attention", width(cfg), heads(cfg)),
      attention_norm(s, "layer_norm", width(cfg), cfg.layer_norm_eps),
      ffn(s / "feed_forward", "intermediate_dense", "output_dense", width(cfg),
          {cfg.intermediate_size, "wavlm.intermediate_size"}),
      ffn_norm(s, "final_layer_norm", width(cfg), cfg.layer_norm_eps) {}

WavLMEncoder::WavLMEncoder(const WavLMConfig& cfg, const nn::Scope& s) : cfg_(checked(cfg)) {
  try {
    min_samples_ = cfg.receptive_field();
  } catch (const Error& e) {
    throw Error(std::string("wavlm encoder: ") + e.what());
  }
  const nn::Scope m = s / "model";
  const auto conv_layers = (m / "feature_extractor").repeat("conv_layers", {int64_t(cfg.conv_dim.size()), "wavlm.conv_dim"});
  for (size_t i = 0; i < conv_layers.size(); ++i) {
    const Dim in = i == 0 ? Dim(1) : conv_channels(cfg, i - 1);
    const Dim kernel{cfg.conv_kernel[i], "wavlm.conv_kernel." + std::to_string(i)};
    convs_.emplace_back(conv_layers[i], "conv", conv_channels(cfg, i), in, kernel, nn::ConvGeometry{cfg.conv_stride[i], 0, 1},
                        nn::Flag{cfg.conv_bias, "wavlm.conv_bias"});
    // GroupNorm with one group per channel, after the first conv only.
    if (i == 0) conv0_norm_ = nn::GroupNorm(conv_layers[0], "layer_norm", cfg.conv_dim[0], conv_channels(cfg, 0), kGroupNormEps);
  }
  const Dim c_out = conv_channels(cfg, cfg.conv_dim.size() - 1);
  projection_norm_ = nn::LayerNorm(m / "feature_projection", "layer_norm", c_out, cfg.layer_norm_eps);
  projection_ = nn::Linear(m / "feature_projection", "projection", width(cfg), c_out);
  m.unused("masked_spec_embed", {width(cfg)});  // the training-time mask embedding

  const Dim groups{cfg.num_conv_pos_embedding_groups, "wavlm.num_conv_pos_embedding_groups"};
  const Dim kernel{cfg.num_conv_pos_embeddings, "wavlm.num_conv_pos_embeddings"};
  pos_conv_ = nn::WeightNormConv1d(m / "encoder" / "pos_conv_embed", "conv", width(cfg), width(cfg).over(groups), kernel,
                                   {1, cfg.num_conv_pos_embeddings / 2, cfg.num_conv_pos_embedding_groups});
  encoder_norm_ = nn::LayerNorm(m / "encoder", "layer_norm", width(cfg), cfg.layer_norm_eps);
  const auto layer_scopes = (m / "encoder").repeat("layers", {cfg.num_hidden_layers, "wavlm.num_hidden_layers"});
  for (const nn::Scope& l : layer_scopes) layers_.emplace_back(l, cfg);
  // Only layer 0 has the bucket table; every layer gates the bias it gives.
  if (!layer_scopes.empty())
    rel_embed_ = nn::Embedding(layer_scopes[0] / "attention", "rel_attn_embed", {cfg.num_buckets, "wavlm.num_buckets"},
                               heads(cfg));
  output_weights_ = s.tensor("output_weights", {cfg.num_hidden_layers + 1}, InitKind::Zeros);
}

int64_t WavLMEncoder::frames(int64_t samples) const {
  for (size_t i = 0; i < cfg_.conv_kernel.size(); ++i) {
    if (samples < cfg_.conv_kernel[i]) return 0;
    samples = (samples - cfg_.conv_kernel[i]) / cfg_.conv_stride[i] + 1;
  }
  return samples;
}

at::Tensor WavLMEncoder::position_bias(int64_t t) const {
  // Bucket of each offset (key - query) in -(t-1)..t-1, with the reference's float32 ops so
  // that offsets on a bucket boundary land in the same bucket.
  const int64_t half = cfg_.num_buckets / 2, exact = half / 2;
  const auto longs = at::TensorOptions().dtype(at::kLong).device(rel_embed_.table().device());
  const at::Tensor offset = at::arange(-(t - 1), t, longs);
  const at::Tensor dist = offset.abs();
  // log(0) never matters (distance 0 is exact) but is kept finite before the integer cast.
  at::Tensor far = at::log(dist.clamp_min(1).to(at::kFloat) / exact);
  far = far / std::log(double(cfg_.max_bucket_distance) / exact) * (half - exact);
  far = (far + exact).to(at::kLong).clamp_max(half - 1);
  const at::Tensor bucket = (offset > 0).to(at::kLong) * half + at::where(dist < exact, dist, far);
  const at::Tensor per_offset = rel_embed_.lookup(bucket);  // [2t - 1, heads], row t - 1 + offset
  // bias[h, q, k] = per_offset[t - 1 - q + k, h]. Rows reversed, that is rev[h, q + (t - 1 - k)]:
  // a strided view over (q, t - 1 - k), flipped along the key axis. Only the [heads, t, t] result
  // is materialised (an index tensor of the same size in int64 would cost twice as much).
  const at::Tensor rev = per_offset.flip(0).t().contiguous();  // [heads, 2t - 1]
  return rev.as_strided({rev.size(0), t, t}, {2 * t - 1, 1, 1}).flip(-1).contiguous();
}

uint64_t WavLMEncoder::activation_bytes(int64_t samples, at::ScalarType dtype) const {
  const uint64_t elt = c10::elementSize(dtype), n = uint64_t(std::max<int64_t>(samples, 0));
  // Feature extractor: a conv's input and output are alive together (GroupNorm and GELU also
  // make a new tensor beside the one they read).
  uint64_t conv = 0, len = n, prev = n;  // prev: elements of the previous activation
  for (size_t i = 0; i < cfg_.conv_kernel.size(); ++i) {
    len = len < uint64_t(cfg_.conv_kernel[i]) ? 0 : (len - cfg_.conv_kernel[i]) / cfg_.conv_stride[i] + 1;
    const uint64_t out = len * uint64_t(cfg_.conv_dim[i]);
    conv = std::max(conv, prev + out);
    if (i == 0) conv = std::max(conv, 2 * out);
    prev = out;
  }
  const uint64_t t = len, h = cfg_.hidden_size, heads = cfg_.num_attention_heads;
  const uint64_t layers = cfg_.num_hidden_layers + 1;
  // Transformer: the ungated bias, the score buffer and the softmax's scratch (nn/layers.h).
  // Beside them a layer's projections (q, k, v, context, gates, output) and its FFN
  // input/activation, and every hidden state kept so far.
  const uint64_t scores = heads * t * t * elt + nn::attention_bytes(heads, t, dtype, /*bias_in_scores=*/true);
  const uint64_t layer = (8 * t * h + 2 * t * uint64_t(cfg_.intermediate_size)) * elt;
  const uint64_t hidden = layers * t * h * elt;
  // weighted_sum: the hidden states, their stack and the weighted stack.
  const uint64_t weighted = 3 * hidden;
  return n * elt + std::max({conv, scores + layer + hidden, weighted});
}

std::vector<at::Tensor> WavLMEncoder::hidden_states(const at::Tensor& wave) const {
  InferenceGuard guard;
  if (wave.dim() != 1)
    throw Error("wavlm encoder: expected a mono waveform [samples], got " + shape_str(wave.sizes().vec()));
  if (wave.size(0) < min_samples_)
    throw Error("wavlm encoder: " + std::to_string(wave.size(0)) + " samples is shorter than the feature "
                "extractor's receptive field of " + std::to_string(min_samples_) + " samples");
  const at::Tensor& conv0_weight = convs_[0].weight();
  at::Tensor x = wave.to(conv0_weight.device(), conv0_weight.scalar_type()).view({1, 1, -1});
  for (size_t i = 0; i < convs_.size(); ++i) {
    x = convs_[i].forward(x);
    if (i == 0) x = conv0_norm_.forward(x);
    x = at::gelu(x);
  }
  x = x[0].t();  // [T, channels]
  x = projection_.forward(projection_norm_.forward(x));
  const int64_t t = x.size(0);

  // Positional conv over time; an even kernel gives one extra frame, which is dropped.
  const at::Tensor pos = pos_conv_.forward(x.t().unsqueeze(0));
  x = encoder_norm_.forward(x + at::gelu(pos.narrow(2, 0, t))[0].t());

  // Layer 0's bias, ungated, serves every layer (each gates it with its own input).
  const at::Tensor bias = position_bias(t);
  at::Tensor scores = at::empty_like(bias);
  std::vector<at::Tensor> out{x};
  for (const Layer& l : layers_) {
    x = l.attention_norm.forward(x + l.attention.forward(x, bias, scores));
    x = l.ffn_norm.forward(x + l.ffn.forward(x));
    out.push_back(x);
  }
  return out;
}

at::Tensor WavLMEncoder::weighted_sum(const std::vector<at::Tensor>& hidden) const {
  InferenceGuard guard;
  if (int64_t(hidden.size()) != output_weights_.size(0))
    throw Error("wavlm weighted sum: " + std::to_string(hidden.size()) + " hidden states, output_weights has " +
                std::to_string(output_weights_.size(0)));
  for (const at::Tensor& t : hidden)
    if (t.sizes() != hidden[0].sizes() || t.dim() != 2 || t.size(1) != cfg_.hidden_size)
      throw Error("wavlm weighted sum: hidden states must all be [T, " + std::to_string(cfg_.hidden_size) +
                  "], got " + shape_str(t.sizes().vec()) + " and " + shape_str(hidden[0].sizes().vec()));
  const at::Tensor weights = at::softmax(output_weights_.to(at::kFloat), 0).to(hidden[0].scalar_type());
  return (at::stack(hidden).to(output_weights_.device()) * weights.view({-1, 1, 1})).sum(0);
}

}  // namespace wavllm::encoders
