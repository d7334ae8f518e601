#include "wavllm/nn/scope.h"

#include "wavllm/core/config.h"
#include "wavllm/core/error.h"
#include "wavllm/kernels/q4_0.h"
#include "wavllm/kernels/q8_0.h"

namespace wavllm::nn {

namespace {

std::vector<int64_t> sizes_of(const std::vector<Dim>& shape) {
  std::vector<int64_t> sizes;
  for (const Dim& d : shape) sizes.push_back(d.size);
  return sizes;
}

}  // namespace

Scope Scope::declaring(ModelSpec& out) { return Scope(&out, nullptr, nullptr, ""); }

Scope Scope::binding(const Weights& weights) { return Scope(nullptr, &weights, nullptr, ""); }

Scope Scope::random(const RandomModelOptions& opt, at::Device device) {
  return Scope(nullptr, nullptr, std::make_shared<const Random>(Random{opt, device}), "");
}

Scope Scope::operator/(const std::string& name) const {
  return Scope(spec_, weights_, random_, prefix_ + name + ".", quantization_);
}

Scope Scope::with_quantization(const std::string& format) const {
  return Scope(spec_, weights_, random_, prefix_, format);
}

std::vector<Scope> Scope::repeat(const std::string& name, const Count& count) const {
  if (spec_ && !count.key.empty()) spec_->repeats.push_back({count.key, prefix_ + name + "."});
  std::vector<Scope> out;
  for (int64_t i = 0; i < count.n; ++i) out.push_back(*this / name / std::to_string(i));
  return out;
}

at::Tensor Scope::entry(const TensorDecl& decl) const {
  if (spec_) {
    spec_->tensors.push_back(decl);
    return {};
  }
  if (random_) return random_tensor(decl, random_->opt).to(random_->device, random_->opt.dtype);
  const at::Tensor& t = weights_->get(decl.name);
  if (t.sizes().vec() != decl.shape)
    throw Error("tensor '" + decl.name + "' is " + shape_str(t.sizes().vec()) + ", config says " + shape_str(decl.shape));
  if (const std::string wrong = storage_problem(decl.storage, stored_dtype_name(t.scalar_type())); !wrong.empty())
    throw Error("tensor '" + decl.name + "' " + wrong);
  return t;
}

at::Tensor Scope::tensor(const std::string& name, const std::vector<Dim>& shape, InitKind init,
                         bool quantizable) const {
  return entry({prefix_ + name, sizes_of(shape), shape, /*used=*/true, quantizable, init});
}

Matrix Scope::matrix(const std::string& name, const Dim& rows, const Dim& cols, bool quantizable) const {
  const bool q8 = quantization_ == QuantizationConfig::kQ8_0, q4 = quantization_ == QuantizationConfig::kQ4_0;
  if (!quantizable || !(q8 || q4) || cols.size % kernels::kQ8Block != 0) {
    Matrix m;
    m.dense = tensor(name, {rows, cols}, InitKind::Normal, quantizable);
    m.rows = rows.size;
    m.cols = cols.size;
    return m;
  }
  const Dim blocks(cols.size / kernels::kQ8Block);
  const Dim stored_cols = q8 ? cols : Dim(cols.size / 2);
  const TensorDecl values{prefix_ + name, {rows.size, stored_cols.size}, {rows, stored_cols}, /*used=*/true, true,
                          InitKind::Normal, q8 ? Storage::Q8Values : Storage::Q4Values};
  const TensorDecl scales{prefix_ + name + ".scales", {rows.size, blocks.size}, {rows, blocks}, true, false,
                          InitKind::Normal, q8 ? Storage::Q8Scales : Storage::Q4Scales};
  Matrix m;
  m.values_storage = values.storage;
  m.rows = rows.size;
  m.cols = cols.size;
  if (random_) {  // the float matrix the generator would make, quantized
    TensorDecl dense = values;
    dense.shape = {rows.size, cols.size};
    dense.storage = Storage::Float;
    const at::Tensor w = random_tensor(dense, random_->opt).contiguous();
    quantize_matrix(w, m);
    return m;
  }
  m.values = entry(values);
  m.scales = entry(scales);
  return m;
}

void quantize_matrix(const at::Tensor& w, Matrix& m) {
  const at::Tensor dense = w.to(at::kFloat).contiguous();
  const int64_t n = dense.numel();
  if (m.values_storage == Storage::Q8Values) {
    m.values = at::empty({m.rows, m.cols}, at::kChar);
    m.scales = at::empty({m.rows, m.cols / kernels::kQ8Block}, at::kFloat);
    kernels::quantize_q8_0(dense.data_ptr<float>(), n, m.values.data_ptr<int8_t>(), m.scales.data_ptr<float>());
  } else {
    m.values = at::empty({m.rows, m.cols / 2}, at::kByte);
    m.scales = at::empty({m.rows, m.cols / kernels::kQ4Block}, at::kBFloat16);
    kernels::quantize_q4_0(dense.data_ptr<float>(), n, m.values.data_ptr<uint8_t>(),
                           reinterpret_cast<uint16_t*>(m.scales.data_ptr<at::BFloat16>()));
  }
}

void Scope::unused(const std::string& name, const std::vector<Dim>& shape, InitKind init) const {
  if (spec_) spec_->tensors.push_back({prefix_ + name, sizes_of(shape), shape, /*used=*/false, false, init});
}

bool Scope::flag(const Flag& flag, const std::string& name) const {
  if (spec_ && !flag.key.empty()) spec_->flags.push_back({flag.key, prefix_ + name});
  return flag.on;
}

}  // namespace wavllm::nn
