#pragma once
// Model weights on a device, by checkpoint name, checked against the model's declared tensors.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "wavllm/core/tensor_spec.h"

namespace wavllm {

// The safetensors name of a tensor dtype ("F32", "BF16", "I8"...), as storage_problem reads it.
std::string stored_dtype_name(at::ScalarType t);

class Weights {
 public:
  // `path`: a model directory (sharded or not) or one .safetensors file. Every used tensor of
  // `spec` must be present with its shape; all missing, unexpected and mis-shaped
  // tensors are reported together in one Error. Float tensors are converted to `dtype` on
  // `device`; a tensor already in that dtype on CPU is viewed in the mapping without a copy.
  static Weights load(const std::string& path, const ModelSpec& spec, at::Device device,
                      at::ScalarType dtype);
  // From tensors already in memory (tests, small programs); checked the same way.
  static Weights from_map(std::map<std::string, at::Tensor> tensors, const ModelSpec& spec);

  const at::Tensor& get(const std::string& name) const;  // throws Error naming the tensor
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const std::map<std::string, at::Tensor>& all() const { return tensors_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }
  // The "format" metadata of the weight files ("wavllm-random" for generated models).
  const std::set<std::string>& formats() const { return formats_; }

 private:
  std::map<std::string, at::Tensor> tensors_;
  std::set<std::string> formats_;
  at::Device device_ = at::kCPU;
  at::ScalarType dtype_ = at::kFloat;
};

}  // namespace wavllm
