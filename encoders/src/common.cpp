#include "common.h"

#include "wavllm/core/error.h"
#include "wavllm/core/schema.h"

namespace wavllm::encoders::detail {

at::Tensor take(const Weights& w, const std::string& name, const std::vector<int64_t>& shape) {
  const at::Tensor& t = w.get(name);
  if (t.sizes().vec() != shape)
    throw Error("tensor '" + name + "' is " + shape_str(t.sizes().vec()) + ", config says " + shape_str(shape));
  if (!at::isFloatingType(t.scalar_type()))
    throw Error("tensor '" + name + "' is not floating-point (" + std::string(c10::toString(t.scalar_type())) + ")");
  return t;
}

at::Tensor softmax_scores(at::Tensor& scores) {
  if (scores.scalar_type() == at::kFloat || scores.scalar_type() == at::kDouble)
    return at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);
  return at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());
}

}  // namespace wavllm::encoders::detail
