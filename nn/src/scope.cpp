#include "wavllm/nn/scope.h"

#include "wavllm/core/error.h"

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

Scope Scope::operator/(const std::string& name) const { return Scope(spec_, weights_, random_, prefix_ + name + "."); }

std::vector<Scope> Scope::repeat(const std::string& name, const Count& count) const {
  if (spec_ && !count.key.empty()) spec_->repeats.push_back({count.key, prefix_ + name + "."});
  std::vector<Scope> out;
  for (int64_t i = 0; i < count.n; ++i) out.push_back(*this / name / std::to_string(i));
  return out;
}

at::Tensor Scope::tensor(const std::string& name, const std::vector<Dim>& shape, InitKind init,
                         bool quantizable) const {
  const std::string full = prefix_ + name;
  const std::vector<int64_t> sizes = sizes_of(shape);
  const TensorDecl decl{full, sizes, shape, /*used=*/true, quantizable, init};
  if (spec_) {
    spec_->tensors.push_back(decl);
    return {};
  }
  if (random_) return random_tensor(decl, random_->opt).to(random_->device, random_->opt.dtype);
  const at::Tensor& t = weights_->get(full);
  if (t.sizes().vec() != sizes)
    throw Error("tensor '" + full + "' is " + shape_str(t.sizes().vec()) + ", config says " + shape_str(sizes));
  if (!at::isFloatingType(t.scalar_type()))
    throw Error("tensor '" + full + "' is not floating-point (" + std::string(c10::toString(t.scalar_type())) + ")");
  return t;
}

void Scope::unused(const std::string& name, const std::vector<Dim>& shape, InitKind init) const {
  if (spec_) spec_->tensors.push_back({prefix_ + name, sizes_of(shape), shape, /*used=*/false, false, init});
}

bool Scope::flag(const Flag& flag, const std::string& name) const {
  if (spec_ && !flag.key.empty()) spec_->flags.push_back({flag.key, prefix_ + name});
  return flag.on;
}

}  // namespace wavllm::nn
