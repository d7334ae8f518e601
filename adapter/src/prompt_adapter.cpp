#include "wavllm/adapter/prompt_adapter.h"

#include <string>

#include "wavllm/core/error.h"

namespace wavllm::adapter {

PromptAdapter::PromptAdapter(const LlamaConfig& cfg, const Weights& w) : dim_(cfg.dim) {
  const std::string p = "gpt_model.model_llama.";
  fc1_w_ = w.get(p + "scale_fc_1.weight");
  fc1_b_ = w.get(p + "scale_fc_1.bias");
  fc2_w_ = w.get(p + "scale_fc_2.weight");
  fc2_b_ = w.get(p + "scale_fc_2.bias");
  att_w_ = w.get(p + "scale_weight_attention.weight");
  att_b_ = w.get(p + "scale_weight_attention.bias");
}

at::Tensor PromptAdapter::scale(const at::Tensor& prompt_hidden) const {
  c10::InferenceMode guard;
  if (prompt_hidden.dim() != 2 || prompt_hidden.size(0) < 1 || prompt_hidden.size(1) != dim_)
    throw Error("prompt adapter: hidden states must be [T >= 1, " + std::to_string(dim_) + "], got " +
                std::string(c10::str(prompt_hidden.sizes())));
  const auto h = prompt_hidden.to(fc1_w_.device(), fc1_w_.scalar_type());
  const auto u = at::linear(at::gelu(at::linear(h, fc1_w_, fc1_b_)), fc2_w_, fc2_b_);  // [T, dim]
  const auto a = at::softmax(at::linear(u, att_w_, att_b_).to(at::kFloat), 0).to(u.scalar_type());  // [T, 1]
  return at::clamp_max(at::relu((u * a).sum(0)), 3.0);
}

}  // namespace wavllm::adapter
