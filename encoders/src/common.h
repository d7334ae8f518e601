#pragma once
// Helpers shared by the two encoders (private to the library).
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wavllm/core/weights.h"

namespace wavllm::encoders::detail {

// w.get(name), checked against the shape the config implies; an Error names the tensor, so each
// encoder works on its own even with weights that were not checked against a full schema.
at::Tensor take(const Weights& w, const std::string& name, const std::vector<int64_t>& shape);

// Softmax over the last axis, accumulated in float32 for half/bfloat16 inputs (the result keeps
// the input's dtype).
at::Tensor stable_softmax(const at::Tensor& x);

}  // namespace wavllm::encoders::detail
