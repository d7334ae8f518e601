#pragma once
// Every stage of WavLLM built from one Scope (docs/model.md §10): the one place that says which
// checkpoint module each stage's tensors live in. Declared, it is the model's tensor list
// (model_spec); bound to loaded weights, it is the model.
#include "wavllm/adapter/branch.h"
#include "wavllm/adapter/prompt_adapter.h"
#include "wavllm/core/config.h"
#include "wavllm/core/tensor_spec.h"
#include "wavllm/core/weights.h"
#include "wavllm/decoder/llama.h"
#include "wavllm/encoders/encoders.h"
#include "wavllm/nn/scope.h"

namespace wavllm {

// The checkpoint module each stage's tensors live in, below the checkpoint's root scope.
nn::Scope whisper_module(const nn::Scope& root);   // Whisper encoder and its branch adapter
nn::Scope wavlm_module(const nn::Scope& root);     // WavLM encoder, weighted sum and branch adapter
nn::Scope decoder_module(const nn::Scope& root);   // LLaMA and the prompt adapter

struct Stages {
  // Members in checkpoint order: the spec lists tensors in the order they are built.
  Stages(const ModelConfig& cfg, const nn::Scope& root);
  // Bound to `weights` (loaded against model_spec(cfg), so every tensor is there).
  Stages(const ModelConfig& cfg, const Weights& weights);

  encoders::WhisperEncoder whisper;
  adapter::Branch whisper_branch;
  encoders::WavLMEncoder wavlm;
  adapter::Branch wavlm_branch;
  adapter::Fusion fusion;
  decoder::Llama llama;
  adapter::PromptAdapter prompt_adapter;
};

// The tensors a model of `cfg` has, as its layers declare them. An Error for a config whose
// sizes do not fit together (the stages' own checks).
ModelSpec model_spec(const ModelConfig& cfg);

}  // namespace wavllm
