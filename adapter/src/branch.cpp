#include "wavllm/adapter/branch.h"

#include "wavllm/core/error.h"
#include "wavllm/core/schema.h"

namespace wavllm::adapter {

namespace {

// The reference's adapter LayerNorm is a default nn.LayerNorm.
constexpr double kAdapterNormEps = 1e-5;

std::string shape_of(const at::Tensor& t) { return shape_str(t.sizes().vec()); }

}  // namespace

Conv1dSubsampler::Conv1dSubsampler(const Weights& w, const std::string& prefix)
    : w0_(w.get(prefix + ".conv_layers.0.weight")),
      b0_(w.get(prefix + ".conv_layers.0.bias")),
      w1_(w.get(prefix + ".conv_layers.1.weight")),
      b1_(w.get(prefix + ".conv_layers.1.bias")) {}

at::Tensor Conv1dSubsampler::forward(const at::Tensor& x) const {
  // Convolutions run over time with channels first: [B, C, T].
  at::Tensor h = x.transpose(1, 2);
  h = at::glu(at::conv1d(h, w0_, b0_, /*stride=*/2, /*padding=*/1), /*dim=*/1);
  h = at::glu(at::conv1d(h, w1_, b1_, /*stride=*/2, /*padding=*/1), /*dim=*/1);
  return h.transpose(1, 2);
}

int64_t Conv1dSubsampler::output_length(int64_t frames) {
  for (int i = 0; i < 2; ++i) frames = (frames - 1) / 2 + 1;
  return frames;
}

Branch Branch::whisper(const ModelConfig& cfg, const Weights& w) {
  return Branch(w, "audio_encoder", cfg.whisper.d_model);
}

Branch Branch::wavlm(const ModelConfig& cfg, const Weights& w) {
  return Branch(w, "wavlm_encoder", cfg.wavlm.hidden_size);
}

Branch::Branch(const Weights& w, const std::string& prefix, int64_t in_channels)
    : prefix_(prefix),
      in_channels_(in_channels),
      subsample_(w, prefix + ".subsample"),
      down_w_(w.get(prefix + ".adapter.down_layer.weight")),
      down_b_(w.get(prefix + ".adapter.down_layer.bias")),
      up_w_(w.get(prefix + ".adapter.up_layer.weight")),
      up_b_(w.get(prefix + ".adapter.up_layer.bias")),
      norm_w_(w.get(prefix + ".adapter.layer_norm.weight")),
      norm_b_(w.get(prefix + ".adapter.layer_norm.bias")),
      proj_w_(w.get(prefix + ".projector.weight")),
      proj_b_(w.get(prefix + ".projector.bias")) {}

at::Tensor Branch::forward(const at::Tensor& encoder_out) const {
  const bool parts = encoder_out.dim() == 3;
  if ((encoder_out.dim() != 2 && !parts) || encoder_out.size(-1) != in_channels_ ||
      encoder_out.size(-2) < 1 || (parts && encoder_out.size(0) < 1))
    throw Error(prefix_ + " adapter: expected encoder output [T, " + std::to_string(in_channels_) +
                "] or [parts, T, " + std::to_string(in_channels_) + "] with T >= 1, got " +
                shape_of(encoder_out));
  at::Tensor x = encoder_out.to(down_w_.device(), down_w_.scalar_type());
  x = subsample_.forward(parts ? x : x.unsqueeze(0));
  // Concatenating the parts in time is a reshape: [parts, T', C] is contiguous per part.
  x = x.reshape({-1, x.size(-1)});
  const at::Tensor bottleneck = at::linear(at::gelu(at::linear(x, down_w_, down_b_)), up_w_, up_b_);
  x = at::layer_norm(bottleneck, {x.size(-1)}, norm_w_, norm_b_, kAdapterNormEps) + x;
  return at::linear(x, proj_w_, proj_b_);
}

Fusion::Fusion(const ModelConfig& cfg, const Weights& w)
    : branch_dim_(cfg.adapter.branch_dim), w_(w.get("wavlm_audio_proj.weight")), b_(w.get("wavlm_audio_proj.bias")) {}

at::Tensor Fusion::forward(const at::Tensor& whisper_branch, const at::Tensor& wavlm_branch) const {
  for (const at::Tensor* t : {&whisper_branch, &wavlm_branch})
    if (t->dim() != 2 || t->size(1) != branch_dim_ || t->size(0) < 1)
      throw Error("fusion: expected branch outputs [T, " + std::to_string(branch_dim_) + "] with T >= 1, got " +
                  shape_of(*t) + (t == &whisper_branch ? " (whisper)" : " (wavlm)"));
  const int64_t n = std::min(whisper_branch.size(0), wavlm_branch.size(0));
  const at::Tensor both = at::cat({whisper_branch.slice(0, 0, n), wavlm_branch.slice(0, 0, n)}, 1);
  return at::linear(both.to(w_.device(), w_.scalar_type()), w_, b_);
}

}  // namespace wavllm::adapter
