// Branch adapters and fusion against the reference stages of every fixture case.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "torch_util.h"
#include "wavllm/adapter/branch.h"
#include "wavllm/core/error.h"
#include "wavllm/pipeline/stages.h"

namespace {

using namespace wavllm;
using wavllm::test::load_tensor;

const std::vector<std::string> kCases = {"plants_asr", "museum_sqa", "short_er", "story_st", "stereo_sv", "phone_free"};

std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }

struct Demo {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  Weights w = Weights::load(demo_dir(), model_spec(cfg), at::kCPU, at::kFloat);
  Stages stages{cfg, w};
};
const Demo& demo() {
  static const Demo d;
  return d;
}

std::shared_ptr<st::File> stage(const std::string& name) {
  return st::File::open(wavllm::test::fixture("stages/" + name + ".safetensors"));
}

// The Whisper encoder's parts as one batch [parts, T, d], as the reference runs them.
at::Tensor whisper_parts(const st::File& f) {
  std::vector<at::Tensor> parts;
  for (int i = 0; f.contains("whisper.part" + std::to_string(i) + ".encoder_out"); ++i)
    parts.push_back(load_tensor(f, "whisper.part" + std::to_string(i) + ".encoder_out"));
  return at::stack(parts);
}

class AdapterCase : public ::testing::TestWithParam<std::string> {};

TEST_P(AdapterCase, WhisperBranchMatchesReference) {
  c10::InferenceMode guard;
  auto f = stage(GetParam());
  const at::Tensor parts = whisper_parts(*f);
  const at::Tensor out = demo().stages.whisper_branch.forward(parts);
  EXPECT_EQ(out.size(0), parts.size(0) * adapter::Conv1dSubsampler::output_length(parts.size(1)));
  WAVLLM_EXPECT_CLOSE_REL(out, load_tensor(*f, "whisper_branch"), GetParam() + " whisper_branch");
}

TEST_P(AdapterCase, WavlmBranchMatchesReference) {
  c10::InferenceMode guard;
  auto f = stage(GetParam());
  const at::Tensor out = demo().stages.wavlm_branch.forward(load_tensor(*f, "wavlm.weighted"));
  WAVLLM_EXPECT_CLOSE_REL(out, load_tensor(*f, "wavlm_branch"), GetParam() + " wavlm_branch");
}

TEST_P(AdapterCase, FusionMatchesReference) {
  c10::InferenceMode guard;
  auto f = stage(GetParam());
  const at::Tensor out = demo().stages.fusion
                             .forward(load_tensor(*f, "whisper_branch"), load_tensor(*f, "wavlm_branch"));
  WAVLLM_EXPECT_CLOSE_REL(out, load_tensor(*f, "audio_embeds"), GetParam() + " audio_embeds");
}

INSTANTIATE_TEST_SUITE_P(Stages, AdapterCase, ::testing::ValuesIn(kCases));

TEST(Subsampler, OutputLengthHalvesTwiceRoundingUp) {
  EXPECT_EQ(adapter::Conv1dSubsampler::output_length(1), 1);
  EXPECT_EQ(adapter::Conv1dSubsampler::output_length(4), 1);
  EXPECT_EQ(adapter::Conv1dSubsampler::output_length(5), 2);
  EXPECT_EQ(adapter::Conv1dSubsampler::output_length(1500), 375);
  EXPECT_EQ(adapter::Conv1dSubsampler::output_length(172), 43);
}

TEST(Branch, RunsInTheWeightsDtype) {
  c10::InferenceMode guard;
  const auto& d = demo();
  Weights half = Weights::load(demo_dir(), model_spec(d.cfg), at::kCPU, at::kBFloat16);
  auto f = stage("plants_asr");
  const at::Tensor in = load_tensor(*f, "wavlm.weighted");
  const at::Tensor out = Stages(d.cfg, half).wavlm_branch.forward(in);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  const at::Tensor ref = load_tensor(*f, "wavlm_branch");
  // bfloat16 keeps ~3 significant digits: a loose sanity bound, not a parity claim.
  EXPECT_LT(wavllm::test::max_abs_diff(out.to(at::kFloat), ref), 0.1 * std::max(1.0, ref.abs().max().item<double>()));
}

TEST(Branch, RejectsWrongShapes) {
  c10::InferenceMode guard;
  const auto& d = demo();
  const auto& whisper = d.stages.whisper_branch;
  const int64_t c = d.cfg.whisper.d_model;
  for (const auto& bad : {at::zeros({5, c + 1}), at::zeros({0, c}), at::zeros({c}), at::zeros({1, 1, 5, c})}) {
    try {
      whisper.forward(bad);
      ADD_FAILURE() << "accepted " << bad.sizes();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("audio_encoder adapter"), std::string::npos) << e.what();
    }
  }
  const adapter::Fusion& fusion = d.stages.fusion;
  const int64_t b = d.cfg.adapter.branch_dim;
  EXPECT_THROW(fusion.forward(at::zeros({3, b}), at::zeros({3, b + 1})), Error);
  EXPECT_THROW(fusion.forward(at::zeros({0, b}), at::zeros({3, b})), Error);
}

TEST(Fusion, CutsToTheShorterBranch) {
  c10::InferenceMode guard;
  const auto& d = demo();
  const adapter::Fusion& fusion = d.stages.fusion;
  const int64_t b = d.cfg.adapter.branch_dim;
  const at::Tensor a = at::randn({7, b}), v = at::randn({5, b});
  const at::Tensor out = fusion.forward(a, v);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{5, d.cfg.llama.dim}));
  // Extra whisper frames beyond the wavlm length must not influence the result.
  EXPECT_TRUE(at::equal(out, fusion.forward(a.slice(0, 0, 5), v)));
  EXPECT_TRUE(at::equal(fusion.forward(v, a), fusion.forward(v, a.slice(0, 0, 5))));
}

}  // namespace
