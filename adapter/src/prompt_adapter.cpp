#include "wavllm/adapter/prompt_adapter.h"

#include <string>

#include "wavllm/core/error.h"

namespace wavllm::adapter {

PromptAdapter::PromptAdapter(const LlamaConfig& cfg, const nn::Scope& s)
    : dim_(cfg.dim),
      ffn_(s, "scale_fc_1", "scale_fc_2", {cfg.dim, "llama.dim"}, {cfg.prompt_hidden, "llama.prompt_hidden"}),
      attention_(s, "scale_weight_attention", 1, {cfg.dim, "llama.dim"}) {}

at::Tensor PromptAdapter::scale(const at::Tensor& prompt_hidden) const {
  c10::InferenceMode guard;
  if (prompt_hidden.dim() != 2 || prompt_hidden.size(0) < 1 || prompt_hidden.size(1) != dim_)
    throw Error("prompt adapter: hidden states must be [T >= 1, " + std::to_string(dim_) + "], got " +
                std::string(c10::str(prompt_hidden.sizes())));
  const at::Tensor& like = attention_.weight();
  const auto h = prompt_hidden.to(like.device(), like.scalar_type());
  const auto u = ffn_.forward(h);  // [T, dim]
  const auto a = at::softmax(attention_.forward(u).to(at::kFloat), 0).to(u.scalar_type());  // [T, 1]
  return at::clamp_max(at::relu((u * a).sum(0)), 3.0);
}

}  // namespace wavllm::adapter
