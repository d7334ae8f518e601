#include "wavllm/decoder/llama.h"

#include <cmath>
#include <limits>
#include <string>

#include "wavllm/core/error.h"

namespace wavllm::decoder {

namespace {

Dim width(const LlamaConfig& cfg) { return {cfg.dim, "llama.dim"}; }

}  // namespace

KVCache::KVCache(const LlamaConfig& cfg, int64_t batch, int64_t capacity, at::Device device, at::ScalarType dtype)
    : batch_(batch), capacity_(capacity) {
  if (batch < 1) throw Error("KV cache: batch " + std::to_string(batch) + " must be at least 1");
  if (capacity < 1 || capacity > cfg.max_positions())
    throw Error("KV cache: " + std::to_string(capacity) + " positions requested; the decoder's rotary table has " +
                std::to_string(cfg.max_positions()) + " (2 x llama.max_seq_len)");
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  for (int l = 0; l < cfg.n_layers; ++l) {
    k_.push_back(at::empty({batch, cfg.n_heads, capacity, cfg.head_dim()}, opts));
    v_.push_back(at::empty({batch, cfg.n_heads, capacity, cfg.head_dim()}, opts));
  }
}

void KVCache::reorder(const at::Tensor& src) {
  c10::InferenceMode guard;
  if (src.dim() != 1 || src.size(0) != batch_)
    throw Error("KV cache reorder: expected " + std::to_string(batch_) + " source rows");
  if (length_ == 0) return;
  const auto idx = src.to(k_.front().device(), at::kLong);
  for (auto* list : {&k_, &v_})
    for (auto& t : *list) {
      auto filled = t.narrow(2, 0, length_);
      filled.copy_(filled.index_select(0, idx));
    }
}

Llama::Layer::Layer(const nn::Scope& s, const LlamaConfig& cfg)
    : attention(s / "attention", width(cfg), cfg.n_heads, {cfg.lora_r, "llama.lora_r"}),
      ffn(s / "feed_forward", width(cfg), {cfg.ffn_dim, "llama.ffn_dim"}),
      attention_norm(s, "attention_norm", width(cfg), cfg.norm_eps),
      ffn_norm(s, "ffn_norm", width(cfg), cfg.norm_eps) {}

Llama::Llama(const LlamaConfig& cfg, const nn::Scope& s)
    : cfg_(cfg), tokens_(s, "tok_embeddings", {cfg.vocab_size, "llama.vocab_size"}, width(cfg)) {
  for (const nn::Scope& l : s.repeat("layers", {cfg.n_layers, "llama.n_layers"})) layers_.emplace_back(l, cfg);
  norm_ = nn::RMSNorm(s, "norm", width(cfg), cfg.norm_eps);
  output_ = nn::Linear(s, "output", {cfg.vocab_size, "llama.vocab_size"}, width(cfg), /*bias=*/false);
  if (s.declaring()) return;
  // The reference's precompute_freqs_cis(dim / heads, 2 * max_seq_len, theta), in float32.
  c10::InferenceMode guard;
  const int64_t hd = cfg.head_dim();
  const auto inv_freq = at::pow(cfg.rope_theta, at::arange(0, hd, 2, at::kFloat).div_(hd)).reciprocal_();
  const auto angles = at::outer(at::arange(cfg.max_positions(), at::kFloat), inv_freq);
  rope_ = at::polar(at::ones_like(angles), angles).to(device());
}

KVCache Llama::new_cache(int64_t batch, int64_t capacity) const {
  return KVCache(cfg_, batch, capacity, device(), dtype());
}

at::Tensor Llama::embed(const std::vector<int64_t>& ids) const {
  c10::InferenceMode guard;
  for (int64_t id : ids)
    if (id < 0 || id >= cfg_.vocab_size)
      throw Error("decoder: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(cfg_.vocab_size) + ")");
  return tokens_.lookup(at::tensor(ids, at::kLong).to(device()));
}

at::Tensor Llama::layers_forward(at::Tensor h, int64_t start, KVCache* cache, const at::Tensor* lora_scale) const {
  const int64_t T = h.size(1), end = start + T, hd = cfg_.head_dim();
  const auto freqs = rope_.narrow(0, start, T).view({1, T, 1, hd / 2});
  // Causal over the new positions; every cached position is visible.
  at::Tensor mask;
  if (T > 1)
    mask = at::full({T, end}, -std::numeric_limits<float>::infinity(), h.options()).triu_(start + 1);

  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    at::Tensor* cache_k = cache ? &cache->k_[i] : nullptr;
    at::Tensor* cache_v = cache ? &cache->v_[i] : nullptr;
    const auto attn_out = L.attention.forward(L.attention_norm.forward(h), freqs, mask, start, cache_k, cache_v, lora_scale);
    // Residual adds in place once h is ours (the caller's embeddings are never written).
    h = i == 0 ? h + attn_out : h.add_(attn_out);
    h.add_(L.ffn.forward(L.ffn_norm.forward(h)));
  }
  return h;
}

at::Tensor Llama::prompt_hidden(const std::vector<int64_t>& orig) const {
  c10::InferenceMode guard;
  if (orig.empty()) throw Error("decoder: the instruction has no tokens");
  if (static_cast<int64_t>(orig.size()) > cfg_.max_positions())
    throw Error("decoder: the instruction has " + std::to_string(orig.size()) +
                " tokens; the rotary table has " + std::to_string(cfg_.max_positions()) + " positions");
  return layers_forward(embed(orig).unsqueeze(0), 0, nullptr, nullptr).squeeze(0);
}

at::Tensor Llama::cached_hidden(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const {
  if (embeds.dim() != 2 && embeds.dim() != 3)
    throw Error("decoder: embeddings must be [T, dim] or [batch, T, dim]");
  auto h = embeds.dim() == 2 ? embeds.unsqueeze(0) : embeds;
  if (h.size(2) != cfg_.dim || h.size(1) < 1)
    throw Error("decoder: embeddings of shape " + std::string(c10::str(embeds.sizes())) +
                " do not match the decoder width " + std::to_string(cfg_.dim));
  if (h.size(0) > cache.batch())
    throw Error("decoder: " + std::to_string(h.size(0)) + " sequences for a KV cache of " +
                std::to_string(cache.batch()));
  const int64_t start = cache.length(), T = h.size(1);
  if (start + T > cache.capacity())
    throw Error("decoder: " + std::to_string(start + T) + " positions exceed the KV cache's " +
                std::to_string(cache.capacity()));
  if (start + T > cfg_.max_positions())
    throw Error("decoder: context of " + std::to_string(start + T) + " positions exceeds the rotary table (" +
                std::to_string(cfg_.max_positions()) + ")");
  if (lora_scale.numel() != cfg_.dim)
    throw Error("decoder: LoRA scale has " + std::to_string(lora_scale.numel()) + " values, expected " +
                std::to_string(cfg_.dim));
  const auto scale = lora_scale.to(device(), dtype()).reshape({cfg_.dim});
  h = layers_forward(h.to(device(), dtype()), start, &cache, &scale);
  cache.length_ = start + T;
  return h;
}

at::Tensor Llama::forward(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const {
  c10::InferenceMode guard;
  const at::Tensor h = cached_hidden(embeds, cache, lora_scale);
  return output_.forward(norm_.forward(h.select(1, h.size(1) - 1))).to(at::kFloat);
}

at::Tensor Llama::forward_every(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const {
  c10::InferenceMode guard;
  return output_.forward(norm_.forward(cached_hidden(embeds, cache, lora_scale))).to(at::kFloat);
}

at::Tensor Llama::step(const at::Tensor& embeds, const std::vector<KVCache*>& caches, const at::Tensor& lora_scales) const {
  c10::InferenceMode guard;
  const int64_t B = static_cast<int64_t>(caches.size());
  if (B < 1 || embeds.dim() != 3 || embeds.size(0) != B || embeds.size(1) != 1 || embeds.size(2) != cfg_.dim)
    throw Error("decoder step: embeddings must be [" + std::to_string(B) + ", 1, " + std::to_string(cfg_.dim) +
                "], got " + std::string(c10::str(embeds.sizes())));
  if (lora_scales.dim() != 2 || lora_scales.size(0) != B || lora_scales.size(1) != cfg_.dim)
    throw Error("decoder step: LoRA scales must be [" + std::to_string(B) + ", " + std::to_string(cfg_.dim) + "]");
  std::vector<int64_t> positions;
  for (const KVCache* c : caches) {
    if (c->batch() != 1) throw Error("decoder step: each sequence needs a KV cache of its own (batch 1)");
    if (c->length() >= c->capacity() || c->length() >= cfg_.max_positions())
      throw Error("decoder step: position " + std::to_string(c->length()) + " is past the KV cache's " +
                  std::to_string(c->capacity()) + " positions");
    positions.push_back(c->length());
  }
  const int64_t hd = cfg_.head_dim();
  const auto freqs = rope_.index_select(0, at::tensor(positions, at::kLong).to(device())).view({B, 1, 1, hd / 2});
  const auto scale = lora_scales.to(device(), dtype()).unsqueeze(1);  // [B, 1, dim]
  at::Tensor h = embeds.to(device(), dtype());
  std::vector<nn::CachedRow> rows(static_cast<size_t>(B));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    for (int64_t b = 0; b < B; ++b) rows[size_t(b)] = {&caches[size_t(b)]->k_[i], &caches[size_t(b)]->v_[i], positions[size_t(b)]};
    const auto attn_out = L.attention.step(L.attention_norm.forward(h), freqs, rows, scale);
    h = i == 0 ? h + attn_out : h.add_(attn_out);
    h.add_(L.ffn.rowwise(L.ffn_norm.forward(h)));
  }
  for (KVCache* c : caches) ++c->length_;
  return output_.rowwise(norm_.forward(h.select(1, 0)), nullptr).to(at::kFloat);
}

}  // namespace wavllm::decoder
