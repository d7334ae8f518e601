#include "wavllm/pipeline/stages.h"

namespace wavllm {

nn::Scope whisper_module(const nn::Scope& root) { return root / "audio_encoder"; }
nn::Scope wavlm_module(const nn::Scope& root) { return root / "wavlm_encoder"; }
nn::Scope decoder_module(const nn::Scope& root) { return root / "gpt_model" / "model_llama"; }

Stages::Stages(const ModelConfig& cfg, const nn::Scope& root)
    : whisper(cfg.whisper, whisper_module(root)),
      whisper_branch(adapter::Branch::whisper(cfg, whisper_module(root))),
      wavlm(cfg.wavlm, wavlm_module(root)),
      wavlm_branch(adapter::Branch::wavlm(cfg, wavlm_module(root))),
      fusion(cfg, root),
      llama(cfg.llama, decoder_module(root)),
      prompt_adapter(cfg.llama, decoder_module(root)) {}

Stages::Stages(const ModelConfig& cfg, const Weights& weights)
    : Stages(cfg, nn::Scope::binding(weights).with_quantization(cfg.quantization.format)) {}

ModelSpec model_spec(const ModelConfig& cfg) {
  ModelSpec spec;
  Stages(cfg, nn::Scope::declaring(spec).with_quantization(cfg.quantization.format));
  return spec;
}

}  // namespace wavllm
