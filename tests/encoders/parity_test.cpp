// Both encoders against the reference stages of every fixture case (float32, CPU).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "encoder_fixtures.h"

namespace {

using namespace wavllm;
using namespace wavllm::test;

TEST(EncoderFixtures, EveryStageFileIsCovered) {
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(fixture("stages"))) files.insert(e.path().stem().string());
  EXPECT_EQ(files, std::set<std::string>(kCases.begin(), kCases.end()));
}

class EncoderCase : public ::testing::TestWithParam<std::string> {};

TEST_P(EncoderCase, WhisperMatchesReference) {
  const auto f = stage(GetParam());
  const auto [mel, frames] = logmel_parts(*f);
  const at::Tensor out = demo().whisper.forward(mel, frames);
  ASSERT_EQ(out.dim(), 3);
  ASSERT_EQ(out.size(0), mel.size(0));
  EXPECT_TRUE(out.is_contiguous());
  for (int64_t i = 0; i < out.size(0); ++i) {
    const std::string p = "whisper.part" + std::to_string(i);
    EXPECT_EQ(f->read_i64(p + ".valid_len").at(0), encoders::WhisperEncoder::output_length(frames[i])) << p;
    WAVLLM_EXPECT_CLOSE_REL(out[i], load_tensor(*f, p + ".encoder_out"), GetParam() + " " + p);
  }
}

TEST_P(EncoderCase, WavlmHiddenStatesAndWeightedSumMatchReference) {
  const auto f = stage(GetParam());
  const at::Tensor wave = wave16k(*f);
  const auto& enc = demo().wavlm;
  const auto hidden = enc.hidden_states(wave);
  ASSERT_EQ(hidden.size(), size_t(demo().cfg.wavlm.num_hidden_layers + 1));
  for (size_t l = 0; l < hidden.size(); ++l) {
    EXPECT_TRUE(hidden[l].is_contiguous());
    WAVLLM_EXPECT_CLOSE_REL(hidden[l], load_tensor(*f, "wavlm.hidden." + std::to_string(l)),
                            GetParam() + " wavlm.hidden." + std::to_string(l));
  }
  EXPECT_EQ(enc.frames(wave.size(0)), hidden[0].size(0));
  WAVLLM_EXPECT_CLOSE_REL(enc.weighted_sum(hidden), load_tensor(*f, "wavlm.weighted"), GetParam() + " wavlm.weighted");
}

INSTANTIATE_TEST_SUITE_P(Stages, EncoderCase, ::testing::ValuesIn(kCases));

// A part encoded alone is cut to its own valid length; its rows equal those of the batched
// run, since no position is masked and parts do not interact.
TEST(WhisperEncoder, SinglePartIsCutToItsOwnLength) {
  const auto f = stage("story_st");
  const auto [mel, frames] = logmel_parts(*f);
  ASSERT_EQ(mel.size(0), 2);
  const int64_t len = encoders::WhisperEncoder::output_length(frames[1]);
  ASSERT_LT(len, demo().cfg.whisper.max_source_positions);
  const at::Tensor out = demo().whisper.forward(mel.narrow(0, 1, 1), {frames[1]});
  ASSERT_EQ(out.sizes(), at::IntArrayRef({1, len, demo().cfg.whisper.d_model}));
  WAVLLM_EXPECT_CLOSE_REL(out[0], load_tensor(*f, "whisper.part1.encoder_out").narrow(0, 0, len), "story part 1 alone");
}

}  // namespace
