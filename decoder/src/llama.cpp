#include "wavllm/decoder/llama.h"

#include <cmath>
#include <limits>
#include <string>

#include "wavllm/core/error.h"

namespace wavllm::decoder {

namespace {

const std::string kPrefix = "gpt_model.model_llama.";

// Normalises in float32 whatever the weights' dtype, as the reference does (x.float() ... type_as(x)).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto xf = x.to(at::kFloat);
  return (xf * at::rsqrt(xf.square().mean(-1, /*keepdim=*/true).add_(eps))).to(x.scalar_type()).mul_(weight);
}

// W x, plus the prompt-aware LoRA term ((x A) B) * s when a scale is given (no alpha / r factor).
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& a, const at::Tensor& b,
                   const at::Tensor* scale) {
  auto y = at::linear(x, w);
  if (scale) y.add_(at::matmul(at::matmul(x, a), b).mul_(*scale));
  return y;
}

// x [B, T, H, hd]: rotates the interleaved pairs (x[2i], x[2i+1]) as complex numbers, in float32,
// by freqs [1, T, 1, hd / 2] (complex64). One complex product: fewer passes over memory than
// the real-valued form.
at::Tensor rotary(const at::Tensor& x, const at::Tensor& freqs) {
  const auto xc = at::view_as_complex(x.to(at::kFloat).unflatten(-1, {x.size(-1) / 2, 2}));
  return at::view_as_real(xc * freqs).flatten(3).to(x.scalar_type());
}

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

Llama::Llama(const LlamaConfig& cfg, const Weights& w) : cfg_(cfg) {
  tok_emb_ = w.get(kPrefix + "tok_embeddings.weight");
  norm_ = w.get(kPrefix + "norm.weight");
  output_ = w.get(kPrefix + "output.weight");
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = kPrefix + "layers." + std::to_string(i) + ".";
    const std::string a = p + "attention.";
    Layer L;
    L.attn_norm = w.get(p + "attention_norm.weight");
    L.ffn_norm = w.get(p + "ffn_norm.weight");
    L.wq = w.get(a + "wq.weight");
    L.wk = w.get(a + "wk.weight");
    L.wv = w.get(a + "wv.weight");
    L.wo = w.get(a + "wo.weight");
    L.qa = w.get(a + "wq_lora_A");
    L.qb = w.get(a + "wq_lora_B");
    L.ka = w.get(a + "wk_lora_A");
    L.kb = w.get(a + "wk_lora_B");
    L.va = w.get(a + "wv_lora_A");
    L.vb = w.get(a + "wv_lora_B");
    L.oa = w.get(a + "wo_lora_A");
    L.ob = w.get(a + "wo_lora_B");
    L.w1 = w.get(p + "feed_forward.w1.weight");
    L.w2 = w.get(p + "feed_forward.w2.weight");
    L.w3 = w.get(p + "feed_forward.w3.weight");
    layers_.push_back(std::move(L));
  }
  // The reference's precompute_freqs_cis(dim / heads, 2 * max_seq_len, theta), in float32.
  c10::InferenceMode guard;
  const int64_t hd = cfg.head_dim();
  const auto inv_freq = at::pow(cfg.rope_theta, at::arange(0, hd, 2, at::kFloat).div_(hd)).reciprocal_();
  const auto angles = at::outer(at::arange(cfg.max_positions(), at::kFloat), inv_freq);
  rope_ = at::polar(at::ones_like(angles), angles).to(tok_emb_.device());
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
  return tok_emb_.index_select(0, at::tensor(ids, at::kLong).to(device()));
}

at::Tensor Llama::layers_forward(at::Tensor h, int64_t start, KVCache* cache, const at::Tensor* lora_scale) const {
  const int64_t B = h.size(0), T = h.size(1), end = start + T;
  const int64_t H = cfg_.n_heads, hd = cfg_.head_dim();
  const auto freqs = rope_.narrow(0, start, T).view({1, T, 1, hd / 2});
  // Causal over the new positions; every cached position is visible.
  at::Tensor mask;
  if (T > 1)
    mask = at::full({T, end}, -std::numeric_limits<float>::infinity(), h.options()).triu_(start + 1);
  const double inv_sqrt_hd = 1.0 / std::sqrt(static_cast<double>(hd));

  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    const auto x = rms_norm(h, L.attn_norm, cfg_.norm_eps);
    const auto q = rotary(project(x, L.wq, L.qa, L.qb, lora_scale).view({B, T, H, hd}), freqs).transpose(1, 2);
    auto k = rotary(project(x, L.wk, L.ka, L.kb, lora_scale).view({B, T, H, hd}), freqs).transpose(1, 2);
    auto v = project(x, L.wv, L.va, L.vb, lora_scale).view({B, T, H, hd}).transpose(1, 2);
    if (cache) {
      auto ck = cache->k_[i].narrow(0, 0, B), cv = cache->v_[i].narrow(0, 0, B);
      ck.narrow(2, start, T).copy_(k);
      cv.narrow(2, start, T).copy_(v);
      k = ck.narrow(2, 0, end);
      v = cv.narrow(2, 0, end);
    }
    auto scores = at::matmul(q, k.transpose(2, 3)).mul_(inv_sqrt_hd);  // [B, H, T, end]
    if (mask.defined()) scores.add_(mask);
    const auto probs = at::softmax(scores.to(at::kFloat), -1).to(q.scalar_type());
    const auto attn = at::matmul(probs, v).transpose(1, 2).reshape({B, T, H * hd});
    // Residual adds in place once h is ours (the caller's embeddings are never written).
    const auto attn_out = project(attn, L.wo, L.oa, L.ob, lora_scale);
    h = i == 0 ? h + attn_out : h.add_(attn_out);
    const auto f = rms_norm(h, L.ffn_norm, cfg_.norm_eps);
    auto gate = at::linear(f, L.w1);
    h.add_(at::linear(at::silu_(gate).mul_(at::linear(f, L.w3)), L.w2));
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

at::Tensor Llama::forward(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const {
  c10::InferenceMode guard;
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
  return at::linear(rms_norm(h.select(1, T - 1), norm_, cfg_.norm_eps), output_).to(at::kFloat);
}

}  // namespace wavllm::decoder
