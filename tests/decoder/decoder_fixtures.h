#pragma once
// The demo model (the tiny fixture weights as a model directory) and the stage fixtures, shared by
// the decoder tests.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "torch_util.h"
#include "wavllm/adapter/prompt_adapter.h"
#include "wavllm/core/config.h"
#include "wavllm/core/weights.h"
#include "wavllm/decoder/decoding.h"
#include "wavllm/decoder/llama.h"
#include "wavllm/decoder/tokenizer.h"
#include "wavllm/pipeline/stages.h"

namespace wavllm::test {

inline std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }

struct DemoDecoder {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  Weights w = Weights::load(demo_dir(), model_spec(cfg), at::kCPU, at::kFloat);
  decoder::Llama llm{cfg.llama, decoder_module(nn::Scope::binding(w))};
  adapter::PromptAdapter prompt_adapter{cfg.llama, decoder_module(nn::Scope::binding(w))};
  decoder::Tokenizer tok = decoder::Tokenizer::load(fixture("tiny/tokenizer.model"));
};

inline const DemoDecoder& demo() {
  static const DemoDecoder d;
  return d;
}

// Every stage fixture's case name (stages/<case>.safetensors), sorted.
inline std::vector<std::string> stage_cases() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(fixture("stages")))
    if (e.path().extension() == ".safetensors") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

inline std::shared_ptr<st::File> stage(const std::string& name) {
  return st::File::open(fixture("stages/" + name + ".safetensors"));
}

// One case's reference inputs: prompt ids from the fixture, audio embeddings, instruction.
struct StageInputs {
  std::shared_ptr<st::File> file;
  std::string instruction;
  decoder::PromptIds prompt;
  at::Tensor audio_embeds;
};

inline StageInputs stage_inputs(const std::string& name) {
  StageInputs s;
  s.file = stage(name);
  s.instruction = s.file->metadata().at("prompt");
  s.prompt.left = s.file->read_i64("prompt.left_ids");
  s.prompt.right = s.file->read_i64("prompt.right_ids");
  s.prompt.orig = s.file->read_i64("prompt.orig_ids");
  s.audio_embeds = load_tensor(*s.file, "audio_embeds");
  return s;
}

inline at::Tensor demo_scale(const decoder::PromptIds& p) {
  return demo().prompt_adapter.scale(demo().llm.prompt_hidden(p.orig));
}

inline decoder::Completion demo_complete(const StageInputs& s, const GenerationOptions& opt,
                                             const decoder::TextCallback& cb = nullptr) {
  return decoder::complete(demo().llm, demo().tok, s.audio_embeds, s.prompt, demo_scale(s.prompt), opt, cb);
}

}  // namespace wavllm::test
