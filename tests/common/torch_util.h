#pragma once
// Fixture tensors as at::Tensor, and the fixtures' comparison bounds.
#include <ATen/ATen.h>

#include "test_util.h"
#include "wavllm/core/safetensors.h"

namespace wavllm::test {

inline at::Tensor load_tensor(const st::File& f, const std::string& name) {
  const auto& info = f.info(name);
  if (info.dtype == st::DType::I64 || info.dtype == st::DType::I32) {
    auto v = f.read_i64(name);
    return at::tensor(v, at::kLong).reshape(info.shape);
  }
  auto v = f.read_f32(name);
  return at::tensor(v, at::kFloat).reshape(info.shape);
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  return (a.to(at::kFloat).cpu() - b.to(at::kFloat).cpu()).abs().max().item<double>();
}

// max abs diff <= 1e-4 * max(1, max |reference|)
#define WAVLLM_EXPECT_CLOSE_REL(actual, reference, what)                                     \
  do {                                                                                       \
    const at::Tensor _ref = (reference);                                                     \
    const double _bound = 1e-4 * std::max(1.0, _ref.abs().max().item<double>());             \
    const double _diff = ::wavllm::test::max_abs_diff((actual), _ref);                       \
    EXPECT_LE(_diff, _bound) << (what) << ": max abs diff " << _diff << " > bound " << _bound; \
  } while (0)

}  // namespace wavllm::test
