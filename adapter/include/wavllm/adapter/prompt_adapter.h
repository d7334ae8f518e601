#pragma once
// Prompt-aware LoRA scale (docs/model.md §5): from the decoder's hidden states of the
// instruction (base weights, no final norm) to the per-channel LoRA scale vector.
#include <ATen/ATen.h>

#include "wavllm/core/config.h"
#include "wavllm/core/weights.h"

namespace wavllm::adapter {

class PromptAdapter {
 public:
  // gpt_model.model_llama.scale_fc_1, scale_fc_2, scale_weight_attention (views, no copies).
  PromptAdapter(const LlamaConfig& cfg, const Weights& w);
  // prompt_hidden [T, dim] (T >= 1) -> [dim] in the weights' dtype:
  // u = fc2(GELU(fc1 h)); a = softmax over t of att(u); s = clamp(relu(sum_t a_t u_t), max = 3).
  at::Tensor scale(const at::Tensor& prompt_hidden) const;

 private:
  int64_t dim_;
  at::Tensor fc1_w_, fc1_b_, fc2_w_, fc2_b_, att_w_, att_b_;
};

}  // namespace wavllm::adapter
