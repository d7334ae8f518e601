#pragma once
// Where a layer's tensors come from. A layer constructor names each of its tensors once, on a
// Scope; the same constructor then serves two modes:
//   declaring: records the tensor (name, shape, per-axis config field, flags) into a ModelSpec
//              and binds nothing: the model's tensor list, built from the layers themselves;
//   binding:   takes the tensor from loaded Weights, checked against the declared shape;
//   random:    makes each tensor as the random-model generator would (benchmarks, tests).
// So the loader's checks, the random-model generator and the converter read the very names and
// shapes that the layers bind (docs/model.md §10).
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "wavllm/core/random_model.h"
#include "wavllm/core/tensor_spec.h"
#include "wavllm/core/weights.h"

namespace wavllm::nn {

// A boolean config field that decides whether a tensor exists (WavLM's conv_bias).
struct Flag {
  bool on = false;
  std::string key;
};

// A weight matrix as a model stores it: dense (a float tensor) or quantized (docs/kernels.md):
// Q8_0 int8 values [rows, cols] with float32 scales [rows, cols / 32], or Q4_0 packed nibbles
// [rows, cols / 2] (uint8) with bfloat16 scales [rows, cols / 32].
struct Matrix {
  at::Tensor dense;          // [rows, cols], or undefined when quantized
  Storage values_storage = Storage::Float;  // Q8Values or Q4Values when quantized
  at::Tensor values, scales;
  int64_t rows = 0, cols = 0;
  bool quantized() const { return values.defined(); }
};

// Fills m.values and m.scales (m.values_storage, rows and cols set) from the float matrix w.
void quantize_matrix(const at::Tensor& w, Matrix& m);

// A count of repeated blocks and the config field it is.
struct Count {
  int64_t n = 0;
  std::string key;
};

class Scope {
 public:
  static Scope declaring(ModelSpec& out);
  static Scope binding(const Weights& weights);
  // Fresh random tensors in opt.dtype on `device`, values as write_random_model gives them.
  static Scope random(const RandomModelOptions& opt, at::Device device);

  // The scope of a sub-module: names below it start with "<prefix><name>.".
  Scope operator/(const std::string& name) const;
  // `count.n` scopes "<name>.0", "<name>.1", ... (the spec records the repeat).
  std::vector<Scope> repeat(const std::string& name, const Count& count) const;

  // The tensor "<prefix><name>" of this shape: undefined when declaring; when binding, the loaded
  // tensor (an Error names it when absent, mis-shaped or not floating-point); random: a new one.
  at::Tensor tensor(const std::string& name, const std::vector<Dim>& shape, InitKind init = InitKind::Normal,
                    bool quantizable = false) const;
  // A tensor checkpoints carry that inference ignores: declared (as unused), never bound.
  void unused(const std::string& name, const std::vector<Dim>& shape, InitKind init = InitKind::Normal) const;
  // The matrix "<prefix><name>" [rows, cols]. A quantizable one is stored in this scope's
  // quantization format (with_quantization) when it has one and cols is a multiple of 32: the
  // values under the name and their scales under "<name>.scales".
  Matrix matrix(const std::string& name, const Dim& rows, const Dim& cols, bool quantizable) const;
  // This scope with the model's quantization format ("", "q8_0" or "q4_0") for the matrices below it.
  Scope with_quantization(const std::string& format) const;
  // Declares that `flag` decides whether "<prefix><name>" exists; returns flag.on.
  bool flag(const Flag& flag, const std::string& name) const;

  bool declaring() const { return spec_ != nullptr; }
  const std::string& prefix() const { return prefix_; }

 private:
  struct Random {
    RandomModelOptions opt;
    at::Device device;
  };
  Scope(ModelSpec* spec, const Weights* weights, std::shared_ptr<const Random> random, std::string prefix,
        std::string quantization = "")
      : spec_(spec), weights_(weights), random_(std::move(random)), prefix_(std::move(prefix)),
        quantization_(std::move(quantization)) {}
  // One stored tensor: declared, bound (checked, int8 or float) or made at random.
  at::Tensor entry(const TensorDecl& decl) const;
  ModelSpec* spec_;
  const Weights* weights_;
  std::shared_ptr<const Random> random_;
  std::string prefix_;
  std::string quantization_;
};

}  // namespace wavllm::nn
