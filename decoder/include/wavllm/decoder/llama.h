#pragma once
// LLaMA-2 decoder with prompt-aware LoRA (docs/model.md §5), a composition of nn layers.
// Runs in the weights' dtype on their device; never records autograd (callers need not guard).
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "wavllm/core/config.h"
#include "wavllm/nn/layers.h"

namespace wavllm::decoder {

// Keys and values of every layer for `batch` sequences (beams) of up to `capacity` positions,
// allocated once per request; forward() writes into it in place.
class KVCache {
 public:
  KVCache(const LlamaConfig& cfg, int64_t batch, int64_t capacity, at::Device device, at::ScalarType dtype);
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }  // positions filled so far (same for every row)
  // Beam search: row i takes the cached positions of row src[i] (src: int64 [batch]).
  void reorder(const at::Tensor& src);

 private:
  friend class Llama;
  int64_t batch_, capacity_, length_ = 0;
  std::vector<at::Tensor> k_, v_;  // per layer [batch, heads, capacity, head_dim]
};

class Llama {
 public:
  // `s`: the checkpoint's decoder module (gpt_model.model_llama); holds views of the weights.
  Llama(const LlamaConfig& cfg, const nn::Scope& s);

  const LlamaConfig& config() const { return cfg_; }
  at::Device device() const { return tokens_.table().device(); }
  at::ScalarType dtype() const { return tokens_.table().scalar_type(); }

  // Token embeddings [T, dim]; an Error for an id outside the vocabulary.
  at::Tensor embed(const std::vector<int64_t>& ids) const;
  // Every layer with base weights (no LoRA), causal, positions from 0, no final norm: [T, dim].
  // The input of the prompt adapter.
  at::Tensor prompt_hidden(const std::vector<int64_t>& orig) const;
  // Appends `embeds` ([T, dim] for batch 1 or [batch, T, dim]) after the cache's positions,
  // with LoRA scaled by lora_scale [dim], causal within the new positions; returns the logits
  // of the LAST new position only: [batch, vocab] (float32). An Error when the positions would
  // pass the cache capacity or the rotary table (cfg.max_positions()).
  at::Tensor forward(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const;
  // forward() with the logits of every new position: [batch, T, vocab] (float32).
  at::Tensor forward_every(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const;

  // One new token for each of several sequences, each with its own KV cache (of batch 1) at its
  // own length and its own LoRA scale (continuous batching): embeds [B, 1, dim], lora_scales
  // [B, dim]; returns the logits [B, vocab] (float32). On CPU, row b's logits have the same bits
  // whatever other rows the batch holds (nn::Linear::rowwise). An Error when a cache is full.
  at::Tensor step(const at::Tensor& embeds, const std::vector<KVCache*>& caches, const at::Tensor& lora_scales) const;

  KVCache new_cache(int64_t batch, int64_t capacity) const;

 private:
  // Pre-norm: h += attention(norm(h)); h += ffn(norm(h)). Members in checkpoint order.
  struct Layer {
    Layer(const nn::Scope& s, const LlamaConfig& cfg);
    nn::LlamaAttention attention;
    nn::SwiGLU ffn;
    nn::RMSNorm attention_norm, ffn_norm;
  };
  // Runs every layer over h [B, T, dim] at positions [start, start + T); with a cache, keys and
  // values are stored there and attention sees the cached positions too; LoRA when scale given.
  at::Tensor layers_forward(at::Tensor h, int64_t start, KVCache* cache, const at::Tensor* lora_scale) const;
  // forward()'s checks and layers: the new positions' hidden states [batch, T, dim], cache updated.
  at::Tensor cached_hidden(const at::Tensor& embeds, KVCache& cache, const at::Tensor& lora_scale) const;

  LlamaConfig cfg_;
  nn::Embedding tokens_;
  std::vector<Layer> layers_;
  nn::RMSNorm norm_;
  nn::Linear output_;
  at::Tensor rope_;  // [max_positions, head_dim / 2] complex64 on the device (the reference's freqs_cis)
};

}  // namespace wavllm::decoder
