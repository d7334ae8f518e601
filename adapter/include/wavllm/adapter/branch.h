#pragma once
// The modality adapters of both encoder branches and their fusion (docs/model.md §2-§4):
// encoder output -> Conv1dSubsampler -> bottleneck adapter -> projector, per branch; then both
// branches are cut to the shorter one, concatenated (Whisper first) and projected to the
// decoder's width. Computation runs in the weights' dtype on their device.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "wavllm/core/config.h"
#include "wavllm/core/weights.h"

namespace wavllm::adapter {

// Two Conv1d (kernel 3, stride 2, padding 1) over time, each followed by a GLU over channels.
class Conv1dSubsampler {
 public:
  Conv1dSubsampler(const Weights& w, const std::string& prefix);  // prefix ends in "subsample"
  // [B, T, C] -> [B, T', C']
  at::Tensor forward(const at::Tensor& x) const;
  // T' for an input of T frames: ceil-halved once per conv (the reference's formula).
  static int64_t output_length(int64_t frames);

 private:
  at::Tensor w0_, b0_, w1_, b1_;
};

// One branch ("audio_encoder" or "wavlm_encoder"): subsampler, LayerNorm(up(GELU(down(x)))) + x,
// projector Linear.
class Branch {
 public:
  static Branch whisper(const ModelConfig& cfg, const Weights& w);
  static Branch wavlm(const ModelConfig& cfg, const Weights& w);

  // [T, in] -> [T', branch_dim]; or [parts, T, in] -> each part subsampled on its own and
  // the parts concatenated in time: [parts * T', branch_dim] (multi-part Whisper audio).
  at::Tensor forward(const at::Tensor& encoder_out) const;
  int64_t in_channels() const { return in_channels_; }

 private:
  Branch(const Weights& w, const std::string& prefix, int64_t in_channels);

  std::string prefix_;
  int64_t in_channels_;
  Conv1dSubsampler subsample_;
  at::Tensor down_w_, down_b_, up_w_, up_b_, norm_w_, norm_b_, proj_w_, proj_b_;
};

// wavlm_audio_proj over [whisper; wavlm] cut to the shorter branch: [min(T1, T2), dim].
class Fusion {
 public:
  Fusion(const ModelConfig& cfg, const Weights& w);
  at::Tensor forward(const at::Tensor& whisper_branch, const at::Tensor& wavlm_branch) const;

 private:
  int64_t branch_dim_;
  at::Tensor w_, b_;
};

}  // namespace wavllm::adapter
