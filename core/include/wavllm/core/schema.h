#pragma once
// The tensors a model of a given config has: names as in the WavLLM checkpoint's `model`
// state dict, with their shapes. One list serves the loader's checks, the random-model
// generator and the converter's tests.
#include <cstdint>
#include <string>
#include <vector>

#include "wavllm/core/config.h"

namespace wavllm {

enum class InitKind { Normal, Ones, Zeros };

struct TensorSchema {
  std::string name;
  std::vector<int64_t> shape;
  bool used = true;          // false: present in checkpoints, ignored by inference (audio_proj.*)
  InitKind init = InitKind::Normal;  // how the random-model generator fills it
};

std::vector<TensorSchema> model_schema(const ModelConfig& cfg);

// model_schema(cfg) as JSON text, [{"name": ..., "shape": [...], "used": true}, ...]: what
// `wavllm spec` prints and the converter checks a checkpoint against.
std::string model_schema_json(const ModelConfig& cfg);

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace wavllm
