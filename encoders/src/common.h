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

// Softmax over the last axis of attention scores, in place for float32/float64 (the scores
// buffer is reused by every layer: a fresh tensor that large per layer costs more in page faults
// than the matrix product that fills it). Half/bfloat16 scores are normalised in float32 and the
// result keeps their dtype.
at::Tensor softmax_scores(at::Tensor& scores);

}  // namespace wavllm::encoders::detail
