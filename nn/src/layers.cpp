#include "wavllm/nn/layers.h"

#include <cmath>
#include <vector>

#include "wavllm/core/runtime.h"
#include "wavllm/kernels/bf16.h"
#include "wavllm/kernels/convert.h"
#include "wavllm/kernels/elementwise.h"
#include "wavllm/kernels/f32.h"
#include "wavllm/kernels/q4_0.h"
#include "wavllm/kernels/q8_0.h"
#include "wavllm/kernels/sgemm.h"

namespace wavllm::nn {

namespace {

// Whether a bfloat16 product of t runs widened to float32: on CPUs where LibTorch's bfloat16
// product is its scalar loop (kernels::bf16_gemm()).
bool widens_bf16(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 && t.is_cpu() && kernels::bf16_gemm() == kernels::Bf16Gemm::Float32;
}

const uint16_t* bf16_bits(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }
uint16_t* bf16_bits(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

// The dtypes the kernels room's LayerNorm takes.
bool elementwise_kernel_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16; }

// A contiguous float32 copy of bfloat16 x through kernels::widen_bf16 (LibTorch's conversion
// is several times slower); undefined stays undefined.
at::Tensor widened(const at::Tensor& x) {
  if (!x.defined()) return x;
  const at::Tensor dense = x.contiguous();
  at::Tensor out = at::empty(dense.sizes(), dense.options().dtype(at::kFloat));
  kernels::widen_bf16(bf16_bits(dense), dense.numel(), out.data_ptr<float>());
  return out;
}

// a @ b as at::matmul, bfloat16 widened where widens_bf16 says (rounded to bfloat16 once, at the end).
at::Tensor product(const at::Tensor& a, const at::Tensor& b) {
  if (!widens_bf16(a)) return at::matmul(a, b);
  return at::matmul(widened(a), widened(b)).to(at::kBFloat16);
}

at::Tensor conv1d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, const ConvGeometry& g) {
  if (!widens_bf16(x)) return at::conv1d(x, w, bias, g.stride, g.padding, /*dilation=*/1, g.groups);
  return at::conv1d(widened(x), widened(w), widened(bias), g.stride, g.padding, /*dilation=*/1, g.groups)
      .to(at::kBFloat16);
}

}  // namespace

Linear::Linear(const Scope& s, const std::string& name, const Dim& out, const Dim& in, bool bias, bool quantizable)
    : weight_(s.matrix(name + ".weight", out, in, quantizable)) {
  if (bias) bias_ = s.tensor(name + ".bias", {out});
}

Linear Linear::with_lora(const Scope& s, const std::string& name, const Dim& out, const Dim& in, const Dim& rank) {
  Linear l(s, name, out, in, /*bias=*/false, /*quantizable=*/true);
  l.lora_a_ = s.tensor(name + "_lora_A", {in, rank});
  l.lora_b_ = s.tensor(name + "_lora_B", {rank, out});
  // Row-major [r, in] and [out, r] copies for rowwise()'s kernels (1 % of the layer's weights
  // at LLaMA-2-7B's rank 32).
  if (!s.declaring()) {
    l.lora_a_t_ = l.lora_a_.t().contiguous();
    l.lora_b_t_ = l.lora_b_.t().contiguous();
  }
  return l;
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  if (!weight_.quantized()) {
    const at::Tensor& w = weight_.dense;
    // Decoding with bfloat16 weights: a matrix-vector product that streams them once.
    if (w.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kBFloat16 && w.is_cpu() && !bias_.defined() &&
        w.is_contiguous() && x.numel() / w.size(1) <= kMaxKernelRows)
      return bf16_product(x);
    if (widens_bf16(w) && x.scalar_type() == at::kBFloat16 && w.is_contiguous()) return widened_bf16_product(x);
    const int64_t inputs = x.numel() / w.size(1);
    if (w.scalar_type() == at::kFloat && x.scalar_type() == at::kFloat && w.is_cpu() && w.is_contiguous() &&
        inputs > kMaxKernelRows && kernels::fp32_gemm(inputs) == kernels::Fp32Gemm::Onednn) {
      at::Tensor y = fp32_product(x, w);
      return bias_.defined() ? y.add_(bias_) : y;
    }
    return at::linear(x, w, bias_);
  }
  at::Tensor y = quantized_product(x);
  return bias_.defined() ? y.add_(bias_) : y;
}

namespace {

// The float expansion of a quantized matrix for one prefill product, in a buffer each calling
// thread keeps (and grows to its largest matrix): a fresh 100-MB tensor per product costs more
// in page faults than the expansion itself.
at::Tensor expansion_buffer(int64_t rows, int64_t cols, at::ScalarType dtype) {
  thread_local at::Tensor buffer;
  const int64_t bytes = rows * cols * int64_t(c10::elementSize(dtype));
  if (!buffer.defined() || buffer.numel() < bytes) buffer = at::empty({bytes}, at::kByte);
  return buffer.narrow(0, 0, bytes).view(dtype).view({rows, cols});
}

// y [inputs, rows] of x [..., cols] as [..., rows]: the shape every product returns.
at::Tensor as_input_shape(const at::Tensor& y, const at::Tensor& x) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = y.size(1);
  return y.view(shape);
}

}  // namespace

at::Tensor Linear::bf16_product(const at::Tensor& x) const {
  const int64_t cols = x.size(-1);
  return as_input_shape(kernel_product(x.reshape({x.numel() / cols, cols}).contiguous(), weight_.dense), x);
}

at::Tensor Linear::kernel_product(const at::Tensor& flat, const at::Tensor& w) {
  const int64_t rows = w.size(0), cols = w.size(1), inputs = flat.size(0);
  if (!w.is_cpu() || !w.is_contiguous() || w.scalar_type() != flat.scalar_type()) return {};
  if (w.scalar_type() == at::kFloat) {
    at::Tensor y = at::empty({inputs, rows}, flat.options());
    kernels::matmul_f32(w.data_ptr<float>(), rows, cols, flat.data_ptr<float>(), inputs, y.data_ptr<float>());
    return y;
  }
  if (w.scalar_type() == at::kBFloat16) {
    at::Tensor y = at::empty({inputs, rows}, flat.options().dtype(at::kFloat));
    kernels::matmul_bf16(bf16_bits(w), rows, cols, bf16_bits(flat), inputs, y.data_ptr<float>());
    return y.to(at::kBFloat16);
  }
  return {};
}

at::Tensor Linear::rowwise_dense(const at::Tensor& flat, const at::Tensor& w) {
  at::Tensor y = kernel_product(flat, w);
  if (y.defined()) return y;
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < flat.size(0); ++i) rows.push_back(at::linear(flat.narrow(0, i, 1), w));
  return at::cat(rows);
}

at::Tensor Linear::widened_bf16_product(const at::Tensor& x) const {
  const at::Tensor& w = weight_.dense;
  const int64_t rows = w.size(0), cols = w.size(1), inputs = x.numel() / cols;
  const at::Tensor flat = x.reshape({inputs, cols}).contiguous();
  at::Tensor y = at::empty({inputs, rows}, flat.options().dtype(at::kFloat));
  kernels::sgemm_bf16_nt(inputs, rows, cols, bf16_bits(flat), bf16_bits(w), y.data_ptr<float>(), rows);
  if (bias_.defined()) y.add_(bias_);
  return as_input_shape(y.to(at::kBFloat16), x);
}

at::Tensor Linear::fp32_product(const at::Tensor& x, const at::Tensor& w) {
  const int64_t rows = w.size(0), cols = w.size(1), inputs = x.numel() / cols;
  const at::Tensor flat = x.reshape({inputs, cols}).contiguous();
  at::Tensor y = at::empty({inputs, rows}, flat.options());
  kernels::sgemm_nt(inputs, rows, cols, flat.data_ptr<float>(), w.data_ptr<float>(), y.data_ptr<float>());
  return as_input_shape(y, x);
}

at::Tensor Linear::quantized_kernel_product(const at::Tensor& flat) const {
  const int64_t rows = weight_.rows, cols = weight_.cols, inputs = flat.size(0);
  const at::Tensor xf = flat.to(at::kFloat).contiguous();
  at::Tensor y = at::empty({inputs, rows}, xf.options());
  const void* values = weight_.values.data_ptr();
  const void* scales = weight_.scales.data_ptr();
  if (weight_.values_storage == Storage::Q8Values)
    kernels::matmul_q8_0({static_cast<const int8_t*>(values), static_cast<const float*>(scales), rows, cols},
                         xf.data_ptr<float>(), inputs, y.data_ptr<float>());
  else
    kernels::matmul_q4_0({static_cast<const uint8_t*>(values), static_cast<const uint16_t*>(scales), rows, cols},
                         xf.data_ptr<float>(), inputs, y.data_ptr<float>());
  return y.to(flat.scalar_type());
}

at::Tensor Linear::quantized_product(const at::Tensor& x) const {
  const int64_t rows = weight_.rows, cols = weight_.cols, inputs = x.numel() / cols;
  if (inputs <= kMaxKernelRows) return as_input_shape(quantized_kernel_product(x.reshape({inputs, cols})), x);
  const bool q8 = weight_.values_storage == Storage::Q8Values;
  const void* values = weight_.values.data_ptr();
  const void* scales = weight_.scales.data_ptr();
  const auto* q8_values = static_cast<const int8_t*>(values);
  const auto* q8_scales = static_cast<const float*>(scales);
  const auto* q4_values = static_cast<const uint8_t*>(values);
  const auto* q4_scales = static_cast<const uint16_t*>(scales);
  // bfloat16 activations of a prefill multiply a bfloat16 expansion (the fast matrix product on
  // CPUs with BF16 instructions) unless bfloat16 products widen to float32 here.
  if (x.scalar_type() == at::kBFloat16 && !widens_bf16(x)) {
    at::Tensor dense = expansion_buffer(rows, cols, at::kBFloat16);
    auto* out = reinterpret_cast<uint16_t*>(dense.data_ptr<at::BFloat16>());
    if (q8) kernels::dequantize_q8_0_bf16(q8_values, q8_scales, rows * cols, out);
    else kernels::dequantize_q4_0_bf16(q4_values, q4_scales, rows * cols, out);
    return at::linear(x, dense);
  }
  const at::Tensor flat = x.reshape({inputs, cols}).to(at::kFloat).contiguous();
  at::Tensor dense = expansion_buffer(rows, cols, at::kFloat);
  if (q8) kernels::dequantize_q8_0(q8_values, q8_scales, rows * cols, dense.data_ptr<float>());
  else kernels::dequantize_q4_0(q4_values, q4_scales, rows * cols, dense.data_ptr<float>());
  const at::Tensor y =
      kernels::fp32_gemm(inputs) == kernels::Fp32Gemm::Onednn ? fp32_product(flat, dense) : at::linear(flat, dense);
  return as_input_shape(y, x).to(x.scalar_type());
}

at::Tensor Linear::forward(const at::Tensor& x, const at::Tensor* lora_scale) const {
  at::Tensor y = forward(x);
  if (lora_scale && lora_a_.defined()) y.add_(product(product(x, lora_a_), lora_b_).mul_(*lora_scale));
  return y;
}

at::Tensor Linear::rowwise(const at::Tensor& x, const at::Tensor* lora_scale) const {
  const int64_t cols = x.size(-1);
  const at::Tensor flat = x.reshape({x.numel() / cols, cols}).contiguous();
  at::Tensor y = as_input_shape(weight_.quantized() ? quantized_kernel_product(flat) : rowwise_dense(flat, weight_.dense), x);
  if (bias_.defined()) y.add_(bias_);
  if (lora_scale && lora_a_.defined()) {
    const at::Tensor low = rowwise_dense(flat, lora_a_t_);
    y.add_(as_input_shape(rowwise_dense(low, lora_b_t_), x).mul_(*lora_scale));
  }
  return y;
}

LayerNorm::LayerNorm(const Scope& s, const std::string& name, const Dim& n, double eps)
    : n_(n.size),
      eps_(eps),
      weight_(s.tensor(name + ".weight", {n}, InitKind::Ones)),
      bias_(s.tensor(name + ".bias", {n}, InitKind::Zeros)) {}

at::Tensor LayerNorm::forward(const at::Tensor& x) const {
  const at::ScalarType dtype = x.scalar_type();
  const bool kernel = x.is_cpu() && x.dim() >= 1 && x.size(-1) == n_ && elementwise_kernel_dtype(dtype) &&
                      weight_.scalar_type() == dtype && bias_.scalar_type() == dtype && weight_.is_contiguous() &&
                      bias_.is_contiguous();
  if (!kernel) return at::layer_norm(x, {n_}, weight_, bias_, eps_);
  const at::Tensor in = x.contiguous();
  at::Tensor y = at::empty_like(in, at::MemoryFormat::Contiguous);
  const int64_t rows = in.numel() / n_;
  if (dtype == at::kFloat)
    kernels::layer_norm_f32(in.data_ptr<float>(), rows, n_, weight_.data_ptr<float>(), bias_.data_ptr<float>(), float(eps_),
                            y.data_ptr<float>());
  else
    kernels::layer_norm_bf16(bf16_bits(in), rows, n_, bf16_bits(weight_), bf16_bits(bias_), float(eps_), bf16_bits(y));
  return y;
}

RMSNorm::RMSNorm(const Scope& s, const std::string& name, const Dim& n, double eps)
    : eps_(eps), weight_(s.tensor(name + ".weight", {n}, InitKind::Ones)) {}

at::Tensor RMSNorm::forward(const at::Tensor& x) const {
  const auto xf = x.to(at::kFloat);
  return (xf * at::rsqrt(xf.square().mean(-1, /*keepdim=*/true).add_(eps_))).to(x.scalar_type()).mul_(weight_);
}

GroupNorm::GroupNorm(const Scope& s, const std::string& name, int64_t groups, const Dim& channels, double eps)
    : groups_(groups),
      eps_(eps),
      weight_(s.tensor(name + ".weight", {channels}, InitKind::Ones)),
      bias_(s.tensor(name + ".bias", {channels}, InitKind::Zeros)) {}

at::Tensor GroupNorm::forward(const at::Tensor& x) const { return at::group_norm(x, groups_, weight_, bias_, eps_); }

Conv1d::Conv1d(const Scope& s, const std::string& name, const Dim& out, const Dim& in_per_group, const Dim& kernel,
               const ConvGeometry& geometry, const Flag& bias)
    : geometry_(geometry), weight_(s.tensor(name + ".weight", {out, in_per_group, kernel})) {
  if (s.flag(bias, name + ".bias")) bias_ = s.tensor(name + ".bias", {out});
}

at::Tensor Conv1d::forward(const at::Tensor& x) const {
  return conv1d(x, weight_, bias_, geometry_);
}

WeightNormConv1d::WeightNormConv1d(const Scope& s, const std::string& name, const Dim& out, const Dim& in_per_group,
                                   const Dim& kernel, const ConvGeometry& geometry)
    : geometry_(geometry) {
  const at::Tensor g = s.tensor(name + ".weight_g", {1, 1, kernel}, InitKind::Ones);
  const at::Tensor v = s.tensor(name + ".weight_v", {out, in_per_group, kernel});
  bias_ = s.tensor(name + ".bias", {out});
  if (s.declaring()) return;
  InferenceGuard guard;
  const at::Tensor vf = v.to(at::kFloat);
  const at::Tensor norm = vf.pow(2).sum(at::IntArrayRef{0, 1}, /*keepdim=*/true).sqrt();
  weight_ = (vf * (g.to(at::kFloat) / norm)).to(v.scalar_type()).contiguous();
}

at::Tensor WeightNormConv1d::forward(const at::Tensor& x) const {
  return conv1d(x, weight_, bias_, geometry_);
}

Embedding::Embedding(const Scope& s, const std::string& name, const Dim& rows, const Dim& width)
    : table_(s.tensor(name + ".weight", {rows, width})) {}

at::Tensor Embedding::lookup(const at::Tensor& ids) const { return at::embedding(table_, ids); }

GeluFFN::GeluFFN(const Scope& s, const std::string& in_name, const std::string& out_name, const Dim& width,
                 const Dim& hidden)
    : in_(s, in_name, hidden, width), out_(s, out_name, width, hidden) {}

at::Tensor GeluFFN::forward(const at::Tensor& x) const { return out_.forward(at::gelu(in_.forward(x))); }

SwiGLU::SwiGLU(const Scope& s, const Dim& width, const Dim& hidden)
    : w1_(s, "w1", hidden, width, /*bias=*/false, /*quantizable=*/true),
      w2_(s, "w2", width, hidden, /*bias=*/false, /*quantizable=*/true),
      w3_(s, "w3", hidden, width, /*bias=*/false, /*quantizable=*/true) {}

at::Tensor SwiGLU::forward(const at::Tensor& x) const {
  at::Tensor gate = w1_.forward(x);
  return w2_.forward(at::silu_(gate).mul_(w3_.forward(x)));
}

at::Tensor SwiGLU::rowwise(const at::Tensor& x) const {
  at::Tensor gate = w1_.rowwise(x, nullptr);
  return w2_.rowwise(at::silu_(gate).mul_(w3_.rowwise(x, nullptr)), nullptr);
}

at::Tensor softmax_scores(at::Tensor& scores) {
  if (scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble)
    return at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);
  return at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());
}

uint64_t attention_bytes(uint64_t entries, uint64_t t, at::ScalarType dtype, bool bias_in_scores) {
  const uint64_t buffer = entries * t * t * c10::elementSize(dtype);
  // One entry's float32 scores: the widened route's buffer (attend()); elsewhere the scratch by
  // which measured peaks differ from run to run (kernels' scratch landing on fresh pages or on
  // memory the allocator kept).
  const uint64_t entry = 4 * t * t;
  if (dtype == at::kBFloat16 && kernels::bf16_gemm() == kernels::Bf16Gemm::Float32)
    return (bias_in_scores ? buffer : 0) + entry;  // the buffer is touched only by a bias
  if (dtype == at::kFloat || dtype == at::kDouble) return buffer + entry;  // softmax in place
  return buffer + entries * t * t * 8 + entry;  // a float32 copy and the float32 softmax of every entry
}

namespace {

// out[i] = beta out[i] + a[i] op(b[i]) over the batch (op: transposed when transpose_b), as
// LibTorch's bmm / baddbmm, or through kernels::sgemm per batch entry when fp32_gemm(rows) chose
// oneDNN for float32 (each entry a strided view: rows of a, b, out may be apart).
void batched_product(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool transpose_b, float beta) {
  const at::Tensor op_b = transpose_b ? b.transpose(1, 2) : b;
  const bool onednn = kernels::fp32_gemm(a.size(1)) == kernels::Fp32Gemm::Onednn && out.scalar_type() == at::kFloat &&
                      a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && out.is_cpu() && a.stride(2) == 1 &&
                      b.stride(2) == 1 && out.stride(2) == 1;
  if (!onednn) {
    if (beta == 0) at::bmm_out(out, a, op_b);
    else out.baddbmm_(a, op_b, beta);
    return;
  }
  const int64_t m = a.size(1), k = a.size(2), n = out.size(2);
  for (int64_t i = 0; i < a.size(0); ++i)
    kernels::sgemm(transpose_b, m, n, k, a.data_ptr<float>() + i * a.stride(0), a.stride(1),
                   b.data_ptr<float>() + i * b.stride(0), b.stride(1), beta, out.data_ptr<float>() + i * out.stride(0),
                   out.stride(1));
}

// ctx = softmax(beta scores + q k^T) v over the batch ([B, t, hd] each; scores [B, t, t] holds the
// bias when beta is 1). Widened bfloat16 runs one entry at a time in a float32 buffer with the
// native route's roundings (scores, then probabilities, to bfloat16): the entry's scores stay in
// cache between the two products, where whole-batch passes would not, and the scores buffer is
// only read (for the bias).
void attend(at::Tensor& scores, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, float beta, at::Tensor& ctx) {
  if (!widens_bf16(scores)) {
    batched_product(scores, q, k, /*transpose_b=*/true, beta);
    batched_product(ctx, softmax_scores(scores), v, /*transpose_b=*/false, 0);
    return;
  }
  const int64_t entries = q.size(0), t = q.size(1), hd = q.size(2);
  const at::Tensor q32 = widened(q), k32 = widened(k), v32 = widened(v);
  at::Tensor ctx32 = at::empty(q32.sizes(), q32.options());
  at::Tensor s32 = at::empty({t, t}, q32.options());
  float* s = s32.data_ptr<float>();
  for (int64_t i = 0; i < entries; ++i) {
    if (beta != 0) kernels::widen_bf16(bf16_bits(scores[i].contiguous()), t * t, s);
    kernels::sgemm(true, t, t, hd, q32[i].data_ptr<float>(), hd, k32[i].data_ptr<float>(), hd, beta, s, t);
    kernels::round_to_bf16(s, t * t);
    at::_softmax_out(s32, s32, -1, /*half_to_float=*/false);
    kernels::round_to_bf16(s, t * t);
    kernels::sgemm(false, t, hd, t, s, t, v32[i].data_ptr<float>(), hd, 0.0f, ctx32[i].data_ptr<float>(), hd);
  }
  ctx.copy_(ctx32);
}

}  // namespace

AttentionProjections::AttentionProjections(const Scope& s, const Dim& width, bool key_bias)
    : q(s, "q_proj", width, width),
      k(s, "k_proj", width, width, key_bias),
      v(s, "v_proj", width, width),
      out(s, "out_proj", width, width) {}

WhisperAttention::WhisperAttention(const Scope& s, const Dim& width, int64_t heads)
    : width_(width.size), heads_(heads), proj_(s, width, /*key_bias=*/false) {}

at::Tensor WhisperAttention::forward(const at::Tensor& x, at::Tensor& scores) const {
  const int64_t b = x.size(0), t = x.size(1), hd = width_ / heads_;
  // [b, t, d] -> [b * heads, t, hd]
  auto split = [&](const at::Tensor& y) { return y.view({b, t, heads_, hd}).transpose(1, 2).reshape({b * heads_, t, hd}); };
  // The reference scales q after its bias: (x Wq + bq) * hd^-0.5.
  const at::Tensor q = split(proj_.q.forward(x).mul_(1.0 / std::sqrt(double(hd))));
  const at::Tensor k = split(proj_.k.forward(x));
  const at::Tensor v = split(proj_.v.forward(x));
  at::Tensor ctx = at::empty({b * heads_, t, hd}, v.options());
  attend(scores, q, k, v, 0, ctx);
  return proj_.out.forward(ctx.view({b, heads_, t, hd}).transpose(1, 2).reshape({b, t, width_}));
}

WavLMAttention::WavLMAttention(const Scope& s, const Dim& width, const Dim& heads)
    : width_(width.size), heads_(heads.size), proj_(s, width, /*key_bias=*/true) {
  gate_const_ = s.tensor("gru_rel_pos_const", {1, heads, 1, 1}, InitKind::Ones);
  if (gate_const_.defined()) gate_const_ = gate_const_.view({heads.size, 1, 1});
  gate_proj_ = Linear(s, "gru_rel_pos_linear", 8, width.over(heads));
}

at::Tensor WavLMAttention::forward(const at::Tensor& x, const at::Tensor& bias, at::Tensor& scores) const {
  const int64_t t = x.size(0), hd = width_ / heads_;
  auto split = [&](const at::Tensor& y) { return y.view({t, heads_, hd}).transpose(0, 1); };  // [heads, t, hd]
  // Gate per head and query from the layer input: sigmoid of two sums of 4 projections.
  const at::Tensor proj = gate_proj_.forward(split(x)).view({heads_, t, 2, 4}).sum(-1).sigmoid();
  const at::Tensor gate_a = proj.narrow(-1, 0, 1), gate_b = proj.narrow(-1, 1, 1);
  const at::Tensor gate = gate_a * (gate_b * gate_const_ - 1.0) + 2.0;  // [heads, t, 1]

  const at::Tensor q = split(proj_.q.forward(x).mul_(1.0 / std::sqrt(double(hd))));
  const at::Tensor k = split(proj_.k.forward(x));
  const at::Tensor v = split(proj_.v.forward(x));
  at::mul_out(scores, gate, bias);
  at::Tensor ctx = at::empty({heads_, t, hd}, v.options());
  attend(scores, q, k, v, 1, ctx);  // gated bias + q k^T
  return proj_.out.forward(ctx.transpose(0, 1).reshape({t, width_}));
}

namespace {

// x [B, T, H, hd]: rotates the interleaved pairs (x[2i], x[2i+1]) as complex numbers, in float32,
// by freqs [1, T, 1, hd / 2] (complex64). One complex product: fewer passes over memory than
// the real-valued form.
at::Tensor rotary(const at::Tensor& x, const at::Tensor& freqs) {
  const auto xc = at::view_as_complex(x.to(at::kFloat).unflatten(-1, {x.size(-1) / 2, 2}));
  return at::view_as_real(xc * freqs).flatten(3).to(x.scalar_type());
}

}  // namespace

LlamaAttention::LlamaAttention(const Scope& s, const Dim& width, int64_t heads, const Dim& lora_rank)
    : heads_(heads),
      wq_(Linear::with_lora(s, "wq", width, width, lora_rank)),
      wk_(Linear::with_lora(s, "wk", width, width, lora_rank)),
      wv_(Linear::with_lora(s, "wv", width, width, lora_rank)),
      wo_(Linear::with_lora(s, "wo", width, width, lora_rank)) {}

at::Tensor LlamaAttention::forward(const at::Tensor& x, const at::Tensor& freqs, const at::Tensor& mask, int64_t start,
                                   at::Tensor* cache_k, at::Tensor* cache_v, const at::Tensor* lora_scale) const {
  const int64_t B = x.size(0), T = x.size(1), end = start + T, H = heads_, hd = x.size(2) / heads_;
  const auto q = rotary(wq_.forward(x, lora_scale).view({B, T, H, hd}), freqs).transpose(1, 2);
  auto k = rotary(wk_.forward(x, lora_scale).view({B, T, H, hd}), freqs).transpose(1, 2);
  auto v = wv_.forward(x, lora_scale).view({B, T, H, hd}).transpose(1, 2);
  if (cache_k) {
    auto ck = cache_k->narrow(0, 0, B), cv = cache_v->narrow(0, 0, B);
    ck.narrow(2, start, T).copy_(k);
    cv.narrow(2, start, T).copy_(v);
    k = ck.narrow(2, 0, end);
    v = cv.narrow(2, 0, end);
  }
  auto scores = product(q, k.transpose(2, 3)).mul_(1.0 / std::sqrt(static_cast<double>(hd)));  // [B, H, T, end]
  if (mask.defined()) scores.add_(mask);
  const auto probs = at::softmax(scores.to(at::kFloat), -1).to(q.scalar_type());
  return wo_.forward(product(probs, v).transpose(1, 2).reshape({B, T, H * hd}), lora_scale);
}

at::Tensor LlamaAttention::step(const at::Tensor& x, const at::Tensor& freqs, const std::vector<CachedRow>& rows,
                                const at::Tensor& lora_scale) const {
  const int64_t B = x.size(0), H = heads_, hd = x.size(2) / heads_;
  const auto q = rotary(wq_.rowwise(x, &lora_scale).view({B, 1, H, hd}), freqs);
  const auto k = rotary(wk_.rowwise(x, &lora_scale).view({B, 1, H, hd}), freqs);
  const auto v = wv_.rowwise(x, &lora_scale).view({B, 1, H, hd});
  std::vector<at::Tensor> heads;
  for (int64_t b = 0; b < B; ++b) {
    const CachedRow& row = rows[size_t(b)];
    const int64_t end = row.position + 1;
    row.k->narrow(2, row.position, 1).copy_(k.narrow(0, b, 1).transpose(1, 2));
    row.v->narrow(2, row.position, 1).copy_(v.narrow(0, b, 1).transpose(1, 2));
    // Each row's query made contiguous alone: the same product whatever row of the batch it was.
    const auto qb = q.narrow(0, b, 1).transpose(1, 2).contiguous();  // [1, H, 1, hd]
    auto scores = product(qb, row.k->narrow(2, 0, end).transpose(2, 3)).mul_(1.0 / std::sqrt(static_cast<double>(hd)));
    const auto probs = at::softmax(scores.to(at::kFloat), -1).to(qb.scalar_type());
    heads.push_back(product(probs, row.v->narrow(2, 0, end)));  // [1, H, 1, hd]
  }
  return wo_.rowwise(at::cat(heads).transpose(1, 2).reshape({B, 1, H * hd}), &lora_scale);
}

}  // namespace wavllm::nn
