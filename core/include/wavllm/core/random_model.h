#pragma once
// Random-weight model directories of any config: for tests, the demo and benchmarks at the
// real sizes (the real weights cannot be downloaded everywhere). Written one tensor at a
// time, so a 7B-shaped model never sits in memory twice.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

#include "wavllm/core/config.h"
#include "wavllm/core/safetensors.h"
#include "wavllm/core/tensor_spec.h"

namespace wavllm {

struct RandomModelOptions {
  uint64_t seed = 0;
  at::ScalarType dtype = at::kFloat;
  double stddev = 0.02;                    // normal init of matrices, embeddings and biases
  uint64_t shard_bytes = 2000000000ull;    // HF-style shards beyond this size
  std::string tokenizer;                   // tokenizer.model to copy in; empty: none
};

// How a model directory is written: shards beyond shard_bytes, the tokenizer to copy in
// (empty: none), the safetensors "format" metadata (empty: none).
struct ModelWriteOptions {
  uint64_t shard_bytes = 2000000000ull;
  std::string tokenizer;
  std::string format_tag;
};

// Where each declared tensor's bytes come from: its stored dtype, and its values (contiguous,
// on CPU, in that dtype), asked for one tensor at a time.
struct TensorSource {
  std::function<st::DType(const TensorDecl&)> dtype;
  std::function<at::Tensor(const TensorDecl&)> values;
};

// Creates `dir` (new, or an empty directory; written beside it, then renamed into place) with
// config.json, the tensors of `spec` (model*.safetensors, + model.safetensors.index.json when
// sharded) and tokenizer.model when given.
void write_model(const ModelConfig& cfg, const ModelSpec& spec, const std::string& dir, const ModelWriteOptions& opt,
                 const TensorSource& source);

// A float32 tensor of `decl`'s shape filled as its init says; normal values depend only on
// (opt.seed, decl.name).
at::Tensor random_tensor(const TensorDecl& decl, const RandomModelOptions& opt);

// write_model with random values. `spec`: the tensors of a model of `cfg` (model_spec(cfg) of the pipeline). Each tensor's values
// depend only on (seed, name), not on sharding or order.
void write_random_model(const ModelConfig& cfg, const ModelSpec& spec, const std::string& dir,
                        const RandomModelOptions& opt);

}  // namespace wavllm
