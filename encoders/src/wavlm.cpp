// HF WavLMModel, post-LN layout of WavLM-base (docs/model.md §3), plus WavLLM's weighted sum.
#include <algorithm>
#include <cmath>
#include <string>

#include "common.h"
#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/schema.h"
#include "wavllm/encoders/encoders.h"

namespace wavllm::encoders {

using detail::take;

namespace {
// HF builds the feature extractor's GroupNorm with torch's default eps, not layer_norm_eps.
constexpr double kGroupNormEps = 1e-5;
}  // namespace

WavLMEncoder::WavLMEncoder(const WavLMConfig& cfg, const Weights& w) : cfg_(cfg) {
  const size_t n_conv = cfg.conv_dim.size();
  if (n_conv == 0 || cfg.conv_kernel.size() != n_conv || cfg.conv_stride.size() != n_conv)
    throw Error("wavlm encoder: conv_dim, conv_kernel and conv_stride must be non-empty and of equal length");
  const int64_t h = cfg.hidden_size, heads = cfg.num_attention_heads, groups = cfg.num_conv_pos_embedding_groups;
  if (h <= 0 || heads <= 0 || h % heads != 0 || groups <= 0 || h % groups != 0)
    throw Error("wavlm encoder: hidden_size " + std::to_string(h) + " must be a positive multiple of "
                "num_attention_heads and num_conv_pos_embedding_groups");
  if (cfg.num_buckets < 4 || cfg.num_buckets % 2 != 0 || cfg.max_bucket_distance <= cfg.num_buckets / 4)
    throw Error("wavlm encoder: num_buckets must be even and >= 4, and max_bucket_distance > num_buckets / 4");

  try {
    min_samples_ = cfg.receptive_field();
  } catch (const Error& e) {
    throw Error(std::string("wavlm encoder: ") + e.what());
  }

  const std::string p = "wavlm_encoder.model.";
  for (size_t i = 0; i < n_conv; ++i) {
    const std::string c = p + "feature_extractor.conv_layers." + std::to_string(i) + ".";
    conv_w_.push_back(take(w, c + "conv.weight", {cfg.conv_dim[i], i == 0 ? 1 : cfg.conv_dim[i - 1], cfg.conv_kernel[i]}));
    conv_b_.push_back(cfg.conv_bias ? take(w, c + "conv.bias", {cfg.conv_dim[i]}) : at::Tensor());
  }
  const std::string gn = p + "feature_extractor.conv_layers.0.layer_norm.";
  gn_w_ = take(w, gn + "weight", {cfg.conv_dim[0]});
  gn_b_ = take(w, gn + "bias", {cfg.conv_dim[0]});
  const int64_t c_out = cfg.conv_dim.back();
  fp_ln_w_ = take(w, p + "feature_projection.layer_norm.weight", {c_out});
  fp_ln_b_ = take(w, p + "feature_projection.layer_norm.bias", {c_out});
  fp_w_ = take(w, p + "feature_projection.projection.weight", {h, c_out});
  fp_b_ = take(w, p + "feature_projection.projection.bias", {h});

  // torch weight_norm(dim=2): weight = g * v / ||v||, the norm taken over every axis but the
  // kernel axis (one norm per tap). Computed once here, in float32, then kept in the weights' dtype.
  const int64_t k = cfg.num_conv_pos_embeddings;
  const std::string pc = p + "encoder.pos_conv_embed.conv.";
  const at::Tensor g = take(w, pc + "weight_g", {1, 1, k});
  const at::Tensor v = take(w, pc + "weight_v", {h, h / groups, k});
  {
    InferenceGuard guard;
    const at::Tensor vf = v.to(at::kFloat);
    const at::Tensor norm = vf.pow(2).sum(at::IntArrayRef{0, 1}, /*keepdim=*/true).sqrt();
    pos_conv_w_ = (vf * (g.to(at::kFloat) / norm)).to(v.scalar_type()).contiguous();
  }
  pos_conv_b_ = take(w, pc + "bias", {h});
  enc_ln_w_ = take(w, p + "encoder.layer_norm.weight", {h});
  enc_ln_b_ = take(w, p + "encoder.layer_norm.bias", {h});
  rel_embed_ = take(w, p + "encoder.layers.0.attention.rel_attn_embed.weight", {cfg.num_buckets, heads});
  output_weights_ = take(w, "wavlm_encoder.output_weights", {cfg.num_hidden_layers + 1});

  const int64_t ffn = cfg.intermediate_size;
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string q = p + "encoder.layers." + std::to_string(i) + ".";
    const std::string a = q + "attention.";
    Layer l;
    l.q_w = take(w, a + "q_proj.weight", {h, h});
    l.q_b = take(w, a + "q_proj.bias", {h});
    l.k_w = take(w, a + "k_proj.weight", {h, h});
    l.k_b = take(w, a + "k_proj.bias", {h});
    l.v_w = take(w, a + "v_proj.weight", {h, h});
    l.v_b = take(w, a + "v_proj.bias", {h});
    l.o_w = take(w, a + "out_proj.weight", {h, h});
    l.o_b = take(w, a + "out_proj.bias", {h});
    l.gru_w = take(w, a + "gru_rel_pos_linear.weight", {8, h / heads});
    l.gru_b = take(w, a + "gru_rel_pos_linear.bias", {8});
    l.gru_const = take(w, a + "gru_rel_pos_const", {1, heads, 1, 1}).view({heads, 1, 1});
    l.ln1_w = take(w, q + "layer_norm.weight", {h});
    l.ln1_b = take(w, q + "layer_norm.bias", {h});
    l.ff1_w = take(w, q + "feed_forward.intermediate_dense.weight", {ffn, h});
    l.ff1_b = take(w, q + "feed_forward.intermediate_dense.bias", {ffn});
    l.ff2_w = take(w, q + "feed_forward.output_dense.weight", {h, ffn});
    l.ff2_b = take(w, q + "feed_forward.output_dense.bias", {h});
    l.ln2_w = take(w, q + "final_layer_norm.weight", {h});
    l.ln2_b = take(w, q + "final_layer_norm.bias", {h});
    layers_.push_back(std::move(l));
  }
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
  const auto longs = at::TensorOptions().dtype(at::kLong).device(rel_embed_.device());
  const at::Tensor offset = at::arange(-(t - 1), t, longs);
  const at::Tensor dist = offset.abs();
  // log(0) never matters (distance 0 is exact) but is kept finite before the integer cast.
  at::Tensor far = at::log(dist.clamp_min(1).to(at::kFloat) / exact);
  far = far / std::log(double(cfg_.max_bucket_distance) / exact) * (half - exact);
  far = (far + exact).to(at::kLong).clamp_max(half - 1);
  const at::Tensor bucket = (offset > 0).to(at::kLong) * half + at::where(dist < exact, dist, far);
  const at::Tensor per_offset = at::embedding(rel_embed_, bucket);  // [2t - 1, heads], row t - 1 + offset
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
  // Transformer: the ungated bias and the score buffer; half-precision scores are softmaxed in
  // float32 (a float32 copy and the float32 result are alive together). Beside them a layer's projections (q, k, v, context, gates,
  // output) and its FFN input/activation, and every hidden state kept so far.
  uint64_t scores = 2 * heads * t * t * elt;
  if (elt != 4 && elt != 8) scores += heads * t * t * 8;  // the float32 copy and the float32 softmax
  // One head's worth of float32 scores more: measured peaks differ by that much from run to run
  // (kernel scratch landing on fresh pages or on memory the allocator kept).
  scores += t * t * 4;
  const uint64_t layer = (8 * t * h + 2 * t * uint64_t(cfg_.intermediate_size)) * elt;
  const uint64_t hidden = layers * t * h * elt;
  // weighted_sum: the hidden states, their stack and the weighted stack.
  const uint64_t weighted = 3 * hidden;
  return n * elt + std::max({conv, scores + layer + hidden, weighted});
}

at::Tensor WavLMEncoder::attention(const at::Tensor& x, const Layer& l, const at::Tensor& bias,
                                   at::Tensor& scores) const {
  const int64_t t = x.size(0), heads = cfg_.num_attention_heads, hd = cfg_.hidden_size / heads;
  auto split = [&](const at::Tensor& y) { return y.view({t, heads, hd}).transpose(0, 1); };  // [heads, t, hd]
  // Gate per head and query from the layer input: sigmoid of two sums of 4 projections.
  const at::Tensor proj = at::linear(split(x), l.gru_w, l.gru_b).view({heads, t, 2, 4}).sum(-1).sigmoid();
  const at::Tensor gate_a = proj.narrow(-1, 0, 1), gate_b = proj.narrow(-1, 1, 1);
  const at::Tensor gate = gate_a * (gate_b * l.gru_const - 1.0) + 2.0;  // [heads, t, 1]

  const at::Tensor q = split(at::linear(x, l.q_w, l.q_b).mul_(1.0 / std::sqrt(double(hd))));
  const at::Tensor k = split(at::linear(x, l.k_w, l.k_b));
  const at::Tensor v = split(at::linear(x, l.v_w, l.v_b));
  at::mul_out(scores, gate, bias).baddbmm_(q, k.transpose(1, 2));  // gated bias + q k^T
  const at::Tensor ctx = at::bmm(detail::softmax_scores(scores), v).transpose(0, 1).reshape({t, cfg_.hidden_size});
  return at::linear(ctx, l.o_w, l.o_b);
}

std::vector<at::Tensor> WavLMEncoder::hidden_states(const at::Tensor& wave) const {
  InferenceGuard guard;
  if (wave.dim() != 1)
    throw Error("wavlm encoder: expected a mono waveform [samples], got " + shape_str(wave.sizes().vec()));
  if (wave.size(0) < min_samples_)
    throw Error("wavlm encoder: " + std::to_string(wave.size(0)) + " samples is shorter than the feature "
                "extractor's receptive field of " + std::to_string(min_samples_) + " samples");
  const int64_t h = cfg_.hidden_size;
  const double eps = cfg_.layer_norm_eps;

  at::Tensor x = wave.to(conv_w_[0].device(), conv_w_[0].scalar_type()).view({1, 1, -1});
  for (size_t i = 0; i < conv_w_.size(); ++i) {
    x = at::conv1d(x, conv_w_[i], conv_b_[i], cfg_.conv_stride[i]);
    if (i == 0) x = at::group_norm(x, cfg_.conv_dim[0], gn_w_, gn_b_, kGroupNormEps);
    x = at::gelu(x);
  }
  x = x[0].t();  // [T, channels]
  x = at::linear(at::layer_norm(x, {x.size(1)}, fp_ln_w_, fp_ln_b_, eps), fp_w_, fp_b_);
  const int64_t t = x.size(0);

  // Positional conv over time; an even kernel gives one extra frame, which is dropped.
  const int64_t k = cfg_.num_conv_pos_embeddings;
  const at::Tensor pos = at::conv1d(x.t().unsqueeze(0), pos_conv_w_, pos_conv_b_, 1, k / 2, 1,
                                    cfg_.num_conv_pos_embedding_groups);
  x = at::layer_norm(x + at::gelu(pos.narrow(2, 0, t))[0].t(), {h}, enc_ln_w_, enc_ln_b_, eps);

  // Layer 0's bias, ungated, serves every layer (each gates it with its own input).
  const at::Tensor bias = position_bias(t);
  at::Tensor scores = at::empty_like(bias);
  std::vector<at::Tensor> out{x};
  for (const Layer& l : layers_) {
    x = at::layer_norm(x + attention(x, l, bias, scores), {h}, l.ln1_w, l.ln1_b, eps);
    const at::Tensor ff = at::linear(at::gelu(at::linear(x, l.ff1_w, l.ff1_b)), l.ff2_w, l.ff2_b);
    x = at::layer_norm(x + ff, {h}, l.ln2_w, l.ln2_b, eps);
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
