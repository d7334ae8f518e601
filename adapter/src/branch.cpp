#include "wavllm/adapter/branch.h"

#include "wavllm/core/error.h"
#include "wavllm/core/tensor_spec.h"

namespace wavllm::adapter {

namespace {

// The reference's adapter LayerNorm is a default nn.LayerNorm.
constexpr double kAdapterNormEps = 1e-5;

std::string shape_of(const at::Tensor& t) { return shape_str(t.sizes().vec()); }

}  // namespace

Conv1dSubsampler::Conv1dSubsampler(const nn::Scope& s, const Dim& in, const Dim& mid, const Dim& out)
    : conv0_(s / "conv_layers", "0", mid, in, 3, {2, 1, 1}),
      conv1_(s / "conv_layers", "1", out, mid.over(2), 3, {2, 1, 1}) {}

at::Tensor Conv1dSubsampler::forward(const at::Tensor& x) const {
  // Convolutions run over time with channels first: [B, C, T].
  at::Tensor h = x.transpose(1, 2);
  h = at::glu(conv0_.forward(h), /*dim=*/1);
  h = at::glu(conv1_.forward(h), /*dim=*/1);
  return h.transpose(1, 2);
}

int64_t Conv1dSubsampler::output_length(int64_t frames) {
  for (int i = 0; i < 2; ++i) frames = (frames - 1) / 2 + 1;
  return frames;
}

Branch Branch::whisper(const ModelConfig& cfg, const nn::Scope& s) {
  return Branch(s, cfg.adapter, {cfg.whisper.d_model, "whisper.d_model"},
                {cfg.adapter.whisper_sub_mid, "adapter.whisper_sub_mid"});
}

Branch Branch::wavlm(const ModelConfig& cfg, const nn::Scope& s) {
  return Branch(s, cfg.adapter, {cfg.wavlm.hidden_size, "wavlm.hidden_size"},
                {cfg.adapter.wavlm_sub_mid, "adapter.wavlm_sub_mid"});
}

Branch::Branch(const nn::Scope& s, const AdapterConfig& cfg, const Dim& in_channels, const Dim& mid)
    : label_(s.prefix().substr(0, s.prefix().size() - 1) + " adapter"),  // "audio_encoder adapter"
      in_channels_(in_channels.size),
      subsample_(s / "subsample", in_channels, mid, Dim{cfg.sub_out, "adapter.sub_out"}.times(2)),
      bottleneck_(s / "adapter", "down_layer", "up_layer", {cfg.sub_out, "adapter.sub_out"},
                  {cfg.adapter_down, "adapter.adapter_down"}),
      norm_(s / "adapter", "layer_norm", {cfg.sub_out, "adapter.sub_out"}, kAdapterNormEps),
      projector_(s, "projector", {cfg.branch_dim, "adapter.branch_dim"}, {cfg.sub_out, "adapter.sub_out"}) {}

at::Tensor Branch::forward(const at::Tensor& encoder_out) const {
  const bool parts = encoder_out.dim() == 3;
  if ((encoder_out.dim() != 2 && !parts) || encoder_out.size(-1) != in_channels_ ||
      encoder_out.size(-2) < 1 || (parts && encoder_out.size(0) < 1))
    throw Error(label_ + ": expected encoder output [T, " + std::to_string(in_channels_) +
                "] or [parts, T, " + std::to_string(in_channels_) + "] with T >= 1, got " +
                shape_of(encoder_out));
  const at::Tensor& like = projector_.weight();
  at::Tensor x = encoder_out.to(like.device(), like.scalar_type());
  x = subsample_.forward(parts ? x : x.unsqueeze(0));
  // Concatenating the parts in time is a reshape: [parts, T', C] is contiguous per part.
  x = x.reshape({-1, x.size(-1)});
  x = norm_.forward(bottleneck_.forward(x)) + x;
  return projector_.forward(x);
}

Fusion::Fusion(const ModelConfig& cfg, const nn::Scope& s)
    : branch_dim_(cfg.adapter.branch_dim),
      projection_(s, "wavlm_audio_proj", {cfg.llama.dim, "llama.dim"},
                  Dim{cfg.adapter.branch_dim, "adapter.branch_dim"}.times(2)) {
  // The reference's single-branch projection: saved in checkpoints, unused by the dual-encoder model.
  s.unused("audio_proj.weight", {{cfg.llama.dim, "llama.dim"}, {cfg.adapter.branch_dim, "adapter.branch_dim"}});
  s.unused("audio_proj.bias", {{cfg.llama.dim, "llama.dim"}}, InitKind::Zeros);
}

at::Tensor Fusion::forward(const at::Tensor& whisper_branch, const at::Tensor& wavlm_branch) const {
  for (const at::Tensor* t : {&whisper_branch, &wavlm_branch})
    if (t->dim() != 2 || t->size(1) != branch_dim_ || t->size(0) < 1)
      throw Error("fusion: expected branch outputs [T, " + std::to_string(branch_dim_) + "] with T >= 1, got " +
                  shape_of(*t) + (t == &whisper_branch ? " (whisper)" : " (wavlm)"));
  const int64_t n = std::min(whisper_branch.size(0), wavlm_branch.size(0));
  const at::Tensor both = at::cat({whisper_branch.slice(0, 0, n), wavlm_branch.slice(0, 0, n)}, 1);
  const at::Tensor& like = projection_.weight();
  return projection_.forward(both.to(like.device(), like.scalar_type()));
}

}  // namespace wavllm::adapter
