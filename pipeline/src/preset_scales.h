#pragma once
// The task presets' prompt-aware LoRA scales stored beside a model's weights
// (prompt_scales.safetensors; docs/model.md §5a), private to the pipeline.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace wavllm::presets {

constexpr const char* kFileName = "prompt_scales.safetensors";

// What the stored scales were computed with, as text: the engine's version and build (LibTorch,
// kernel paths, float32 products), dtype, device, threads, and the model directory's config,
// tokenizer and weight files (content digests for the small files; name, size and modification
// time for the weights). Scales are used only under an identical identity.
std::string identity(const std::string& dir, at::ScalarType dtype, const at::Device& device, int threads);

// The scales of the file in dir, each [dim] float32 on CPU; empty when there is no file or its
// identity differs. An Error naming the file when it is not a valid scale file for `dim`.
std::map<std::string, at::Tensor> read(const std::string& dir, const std::string& identity, int64_t dim);

// Writes the file (a temporary beside it, then renamed over it); returns its path.
std::string write(const std::string& dir, const std::string& identity,
                  const std::vector<std::pair<std::string, at::Tensor>>& scales);

}  // namespace wavllm::presets
