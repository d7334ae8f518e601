#pragma once
// Prompt-aware LoRA scale (docs/model.md §5): from the decoder's hidden states of the
// instruction (base weights, no final norm) to the per-channel LoRA scale vector.
#include <ATen/ATen.h>

#include "wavllm/core/config.h"
#include "wavllm/nn/layers.h"

namespace wavllm::adapter {

class PromptAdapter {
 public:
  // `s`: the decoder's checkpoint module (scale_fc_1, scale_fc_2, scale_weight_attention).
  PromptAdapter(const LlamaConfig& cfg, const nn::Scope& s);
  // prompt_hidden [T, dim] (T >= 1) -> [dim] in the weights' dtype:
  // u = fc2(GELU(fc1 h)); a = softmax over t of att(u); s = clamp(relu(sum_t a_t u_t), max = 3).
  at::Tensor scale(const at::Tensor& prompt_hidden) const;

 private:
  int64_t dim_;
  nn::GeluFFN ffn_;
  nn::Linear attention_;
};

}  // namespace wavllm::adapter
