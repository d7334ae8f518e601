#pragma once
// The layers WavLLM's stages are made of (docs/model.md §10). Each constructor declares its
// tensors on a Scope (names as in the checkpoint) and keeps the bound ones; forward() computes
// in the weights' dtype on their device. Linear is the one place a weight's matrix product is
// chosen: every projection of every stage goes through it.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "wavllm/nn/scope.h"

namespace wavllm::nn {

// y = x W^T + b, W [out, in] ("<name>.weight"), b [out] ("<name>.bias", optional); with a LoRA
// pair ("<name>_lora_A" [in, r], "<name>_lora_B" [r, out]) and a scale vector s [out] given at
// run time, y += ((x A) B) * s (no alpha / r factor: WavLLM's prompt-aware LoRA).
// A quantizable weight is stored as the model's quantization format says (Scope::matrix); a
// quantized weight multiplies through the kernels room for a few rows of x (decoding) and is
// expanded (to bfloat16 for bfloat16 activations, else float32) for a LibTorch matrix product
// beyond (prefill). A bias-free bfloat16 weight multiplies up to 8 rows of bfloat16 x through
// the kernels room's matrix-vector product (LibTorch's reads the weights at about half the
// machine's bandwidth). Where kernels::bf16_gemm() says LibTorch's bfloat16 products are its
// scalar loop (CPUs without AVX-512), every other bfloat16 product here is widened to float32
// (docs/kernels.md).
class Linear {
 public:
  Linear() = default;
  Linear(const Scope& s, const std::string& name, const Dim& out, const Dim& in, bool bias = true,
         bool quantizable = false);
  // A bias-free quantizable projection with a LoRA pair of rank `rank`.
  static Linear with_lora(const Scope& s, const std::string& name, const Dim& out, const Dim& in, const Dim& rank);

  at::Tensor forward(const at::Tensor& x) const;
  // With the LoRA term when lora_scale is given (the base projection alone when null).
  at::Tensor forward(const at::Tensor& x, const at::Tensor* lora_scale) const;
  // The same product with every row of x multiplied on its own: a row's result has the same bits
  // whatever other rows come with it (a sequence decodes to the same tokens alone or in a batch).
  // CPU float32, bfloat16 and quantized weights go through the kernels room (each weight read
  // once for all rows); other devices and dtypes run one LibTorch product per row. lora_scale
  // broadcasts over the output: [out], or [rows..., 1, out] for one scale per sequence.
  at::Tensor rowwise(const at::Tensor& x, const at::Tensor* lora_scale) const;
  // The dense weight, or the quantized values: the device any caller may read.
  const at::Tensor& weight() const { return weight_.quantized() ? weight_.values : weight_.dense; }
  // Rows of x up to which a quantized weight uses the matrix-vector kernel.
  static constexpr int64_t kMaxKernelRows = 8;

 private:
  at::Tensor quantized_product(const at::Tensor& x) const;
  // flat [n, cols] through the quantized matrix-vector kernel, any n: [n, rows] in flat's dtype.
  at::Tensor quantized_kernel_product(const at::Tensor& flat) const;
  at::Tensor bf16_product(const at::Tensor& x) const;
  // x W^T for bfloat16 x and W widened to float32 (kernels::sgemm_bf16_nt), plus the bias, rounded
  // to bfloat16: where kernels::bf16_gemm() says LibTorch's bfloat16 product is slow.
  at::Tensor widened_bf16_product(const at::Tensor& x) const;
  // flat [n, cols] W^T through the kernels room's float32 or bfloat16 matrix-vector product
  // (CPU, W contiguous, same dtype): [n, rows] in that dtype; undefined when none applies.
  static at::Tensor kernel_product(const at::Tensor& flat, const at::Tensor& w);
  // kernel_product, or else one at::linear per row.
  static at::Tensor rowwise_dense(const at::Tensor& flat, const at::Tensor& w);
  // x W^T through kernels::sgemm_nt (float32 on CPU, W contiguous): kernels::fp32_gemm(rows)'s choice.
  static at::Tensor fp32_product(const at::Tensor& x, const at::Tensor& w);
  Matrix weight_;
  at::Tensor bias_, lora_a_, lora_b_;
  at::Tensor lora_a_t_, lora_b_t_;  // A^T [r, in], B^T [out, r], contiguous (rowwise)
};

class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(const Scope& s, const std::string& name, const Dim& n, double eps);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  int64_t n_ = 0;
  double eps_ = 0;
  at::Tensor weight_, bias_;
};

// x / sqrt(mean(x^2) + eps) * w, normalised in float32 whatever the weights' dtype (the
// reference's x.float() ... type_as(x)).
class RMSNorm {
 public:
  RMSNorm() = default;
  RMSNorm(const Scope& s, const std::string& name, const Dim& n, double eps);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  double eps_ = 0;
  at::Tensor weight_;
};

class GroupNorm {
 public:
  GroupNorm() = default;
  GroupNorm(const Scope& s, const std::string& name, int64_t groups, const Dim& channels, double eps);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  int64_t groups_ = 0;
  double eps_ = 0;
  at::Tensor weight_, bias_;
};

struct ConvGeometry {
  int64_t stride = 1, padding = 0, groups = 1;
};

// Over [B, C, T]: weight [out, in / groups, kernel] ("<name>.weight"), bias [out] when `bias.on`.
class Conv1d {
 public:
  Conv1d() = default;
  Conv1d(const Scope& s, const std::string& name, const Dim& out, const Dim& in_per_group, const Dim& kernel,
         const ConvGeometry& geometry, const Flag& bias = {true, ""});
  at::Tensor forward(const at::Tensor& x) const;
  const at::Tensor& weight() const { return weight_; }

 private:
  ConvGeometry geometry_;
  at::Tensor weight_, bias_;
};

// torch weight_norm(dim=2) over a Conv1d: weight = g * v / ||v||, one norm per kernel tap
// (over every other axis); tensors "<name>.weight_g" [1, 1, k], "<name>.weight_v", "<name>.bias".
// The weight is computed once when bound, in float32, and kept in the weights' dtype.
class WeightNormConv1d {
 public:
  WeightNormConv1d() = default;
  WeightNormConv1d(const Scope& s, const std::string& name, const Dim& out, const Dim& in_per_group,
                   const Dim& kernel, const ConvGeometry& geometry);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  ConvGeometry geometry_;
  at::Tensor weight_, bias_;
};

// A lookup table "<name>.weight" [rows, width].
class Embedding {
 public:
  Embedding() = default;
  Embedding(const Scope& s, const std::string& name, const Dim& rows, const Dim& width);
  // Rows of `ids` (int64, any shape): [..., width].
  at::Tensor lookup(const at::Tensor& ids) const;
  const at::Tensor& table() const { return table_; }

 private:
  at::Tensor table_;
};

// down(GELU(up(x))): the feed-forward block of Whisper and WavLM, the branch adapters'
// bottleneck and the prompt adapter's first stage (each names its two Linears).
class GeluFFN {
 public:
  GeluFFN() = default;
  GeluFFN(const Scope& s, const std::string& in_name, const std::string& out_name, const Dim& width,
          const Dim& hidden);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  Linear in_, out_;  // width -> hidden, hidden -> width
};

// LLaMA's FFN: w2(SiLU(w1 x) * w3 x), bias-free and quantizable.
class SwiGLU {
 public:
  SwiGLU() = default;
  SwiGLU(const Scope& s, const Dim& width, const Dim& hidden);
  at::Tensor forward(const at::Tensor& x) const;
  // Through Linear::rowwise: a row's result independent of the other rows.
  at::Tensor rowwise(const at::Tensor& x) const;

 private:
  Linear w1_, w2_, w3_;
};

// The four projections of a Hugging Face attention module: q_proj, k_proj, v_proj, out_proj.
struct AttentionProjections {
  AttentionProjections() = default;
  AttentionProjections(const Scope& s, const Dim& width, bool key_bias);
  Linear q, k, v, out;
};

// HF WhisperAttention (encoder self-attention, no mask): k_proj is bias-free, q is scaled by
// head_dim^-0.5 after its bias.
class WhisperAttention {
 public:
  WhisperAttention() = default;
  WhisperAttention(const Scope& s, const Dim& width, int64_t heads);
  // x [b, t, width]; scores: a [b * heads, t, t] buffer the caller reuses across layers.
  at::Tensor forward(const at::Tensor& x, at::Tensor& scores) const;

 private:
  int64_t width_ = 0, heads_ = 0;
  AttentionProjections proj_;
};

// WavLM's self-attention with the gated relative position bias: per head and query, a gate
// from the layer input (gru_rel_pos_linear, gru_rel_pos_const) scales the shared bias.
class WavLMAttention {
 public:
  WavLMAttention() = default;
  WavLMAttention(const Scope& s, const Dim& width, const Dim& heads);
  // x [t, width]; bias [heads, t, t] ungated; scores: a [heads, t, t] buffer reused by every layer.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, at::Tensor& scores) const;

 private:
  int64_t width_ = 0, heads_ = 0;
  AttentionProjections proj_;
  Linear gate_proj_;
  at::Tensor gate_const_;  // [heads, 1, 1]
};

// One sequence's KV cache of one layer ([1, heads, capacity, head_dim] each) and the position
// its next key and value go to.
struct CachedRow {
  at::Tensor* k;
  at::Tensor* v;
  int64_t position;
};

// LLaMA attention with rotary positions, LoRA on wq/wk/wv/wo and an optional KV cache.
class LlamaAttention {
 public:
  LlamaAttention() = default;
  LlamaAttention(const Scope& s, const Dim& width, int64_t heads, const Dim& lora_rank);
  // x [B, T, width] at positions [start, start + T); freqs [1, T, 1, head_dim / 2] complex64;
  // mask [T, start + T] additive, undefined for T = 1. With cache_k / cache_v ([batch, heads,
  // capacity, head_dim]) the new keys and values are stored there and attention sees every
  // cached position. LoRA when lora_scale is given.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& freqs, const at::Tensor& mask, int64_t start,
                     at::Tensor* cache_k, at::Tensor* cache_v, const at::Tensor* lora_scale) const;
  // One new position for each of B sequences, each with its own cache and position (continuous
  // batching): x [B, 1, width]; freqs [B, 1, 1, head_dim / 2], each row's rotation; rows[b]
  // receives row b's key and value; lora_scale [B, 1, width]. Products through Linear::rowwise
  // and attention per row: row b's output has the same bits in any batch.
  at::Tensor step(const at::Tensor& x, const at::Tensor& freqs, const std::vector<CachedRow>& rows,
                  const at::Tensor& lora_scale) const;

 private:
  int64_t heads_ = 0;
  Linear wq_, wk_, wv_, wo_;
};

// Softmax over the last axis of attention scores, in place for float32/float64 (the scores
// buffer is reused by every layer: a fresh tensor that large per layer costs more in page faults
// than the matrix product that fills it). Half/bfloat16 scores are normalised in float32 and the
// result keeps their dtype.
at::Tensor softmax_scores(at::Tensor& scores);
// Bytes the encoders' attention touches on the CPU for [entries, t, t] scores of `dtype`: the
// scores buffer (softmaxed in place in float32), plus a float32 copy and softmax of every entry
// for half precision, plus one entry's float32 scores; where bfloat16 products are widened, that
// entry and the buffer only when it holds a bias (bias_in_scores).
uint64_t attention_bytes(uint64_t entries, uint64_t t, at::ScalarType dtype, bool bias_in_scores);

}  // namespace wavllm::nn
