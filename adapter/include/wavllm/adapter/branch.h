#pragma once
// The modality adapters of both encoder branches and their fusion (docs/model.md §2-§4):
// encoder output -> Conv1dSubsampler -> bottleneck adapter -> projector, per branch; then both
// branches are cut to the shorter one, concatenated (Whisper first) and projected to the
// decoder's width. Computation runs in the weights' dtype on their device.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "wavllm/core/config.h"
#include "wavllm/nn/layers.h"

namespace wavllm::adapter {

// Two Conv1d (kernel 3, stride 2, padding 1) over time, each followed by a GLU over channels.
class Conv1dSubsampler {
 public:
  Conv1dSubsampler() = default;
  // `s`: the branch's subsample module; in -> mid (GLU: mid / 2) -> out (GLU: out / 2) channels.
  Conv1dSubsampler(const nn::Scope& s, const Dim& in, const Dim& mid, const Dim& out);
  // [B, T, C] -> [B, T', C']
  at::Tensor forward(const at::Tensor& x) const;
  // T' for an input of T frames: ceil-halved once per conv (the reference's formula).
  static int64_t output_length(int64_t frames);

 private:
  nn::Conv1d conv0_, conv1_;
};

// One branch ("audio_encoder" or "wavlm_encoder"): subsampler, LayerNorm(up(GELU(down(x)))) + x,
// projector Linear.
class Branch {
 public:
  // `s`: the checkpoint module of that encoder (audio_encoder, wavlm_encoder).
  static Branch whisper(const ModelConfig& cfg, const nn::Scope& s);
  static Branch wavlm(const ModelConfig& cfg, const nn::Scope& s);

  // [T, in] -> [T', branch_dim]; or [parts, T, in] -> each part subsampled on its own and
  // the parts concatenated in time: [parts * T', branch_dim] (multi-part Whisper audio).
  at::Tensor forward(const at::Tensor& encoder_out) const;
  int64_t in_channels() const { return in_channels_; }

 private:
  Branch(const nn::Scope& s, const AdapterConfig& cfg, const Dim& in_channels, const Dim& mid);

  std::string label_;
  int64_t in_channels_;
  Conv1dSubsampler subsample_;
  nn::GeluFFN bottleneck_;
  nn::LayerNorm norm_;
  nn::Linear projector_;
};

// wavlm_audio_proj over [whisper; wavlm] cut to the shorter branch: [min(T1, T2), dim].
class Fusion {
 public:
  // `s`: the checkpoint's top level (wavlm_audio_proj; audio_proj, unused, is declared there too).
  Fusion(const ModelConfig& cfg, const nn::Scope& s);
  at::Tensor forward(const at::Tensor& whisper_branch, const at::Tensor& wavlm_branch) const;

 private:
  int64_t branch_dim_;
  nn::Linear projection_;
};

}  // namespace wavllm::adapter
