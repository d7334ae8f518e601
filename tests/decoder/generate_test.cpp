// Decoding strategies and controls on the demo model: sampling, beam search, repetition controls,
// step limits, stop strings, streaming, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "decoder_fixtures.h"
#include "test_util.h"
#include "wavllm/core/cpu_allocator.h"
#include "wavllm/core/error.h"

namespace {

using namespace wavllm;
using namespace wavllm::test;

const StageInputs& museum() {  // its greedy output repeats tokens (284, 94, 284, 94)
  static const StageInputs s = stage_inputs("museum_sqa");
  return s;
}

size_t forced_count(const StageInputs& s) { return s.prompt.right.size() - 1; }

// The score a result reports, recomputed from its step logits.
double score_from_logits(const decoder::Completion& r, double length_penalty) {
  const at::Tensor lp = at::log_softmax(r.step_logits, -1);
  double sum = 0;
  for (size_t s = 0; s < r.decoded_tokens.size(); ++s) sum += lp[s][r.decoded_tokens[s]].item<double>();
  return sum / std::pow(static_cast<double>(r.decoded_tokens.size()), length_penalty);
}

TEST(Sampling, SameSeedSameOutputOtherSeedOtherOutput) {
  GenerationOptions opt;
  opt.max_new_tokens = 12;
  opt.temperature = 1.0;
  opt.seed = 1234;
  const auto a = demo_complete(museum(), opt);
  const auto b = demo_complete(museum(), opt);
  EXPECT_EQ(a.generated_ids, b.generated_ids);
  EXPECT_EQ(a.generated_ids.size(), 12u);
  opt.seed = 99;
  EXPECT_NE(demo_complete(museum(), opt).generated_ids, a.generated_ids);
}

TEST(Sampling, TopKOneAndTinyTopPAreGreedy) {
  GenerationOptions greedy;
  greedy.max_new_tokens = 10;
  const auto ref = demo_complete(museum(), greedy);
  GenerationOptions opt = greedy;
  opt.temperature = 1.5;
  opt.seed = 7;
  opt.top_k = 1;
  EXPECT_EQ(demo_complete(museum(), opt).decoded_tokens, ref.decoded_tokens);
  opt.top_k = 0;
  opt.top_p = 1e-6;
  EXPECT_EQ(demo_complete(museum(), opt).decoded_tokens, ref.decoded_tokens);
  // Below float32's range top_p is 0 in the sampler: the most likely token still stays.
  opt.top_p = 1e-300;
  EXPECT_EQ(demo_complete(museum(), opt).decoded_tokens, ref.decoded_tokens);
}

TEST(Sampling, ForcedPrefixIsKept) {
  GenerationOptions opt;
  opt.max_new_tokens = 5;
  opt.temperature = 2.0;
  opt.seed = 3;
  const auto r = demo_complete(museum(), opt);
  const std::vector<int64_t> forced(museum().prompt.right.begin() + 1, museum().prompt.right.end());
  ASSERT_GE(r.decoded_tokens.size(), forced.size());
  EXPECT_EQ(std::vector<int64_t>(r.decoded_tokens.begin(), r.decoded_tokens.begin() + forced.size()), forced);
  for (auto id : r.generated_ids) EXPECT_NE(id, 0);  // pad/unk never chosen
}

TEST(BeamSearch, ScoresAtLeastGreedyAndReportsItsScore) {
  for (const auto& name : stage_cases()) {
    const auto s = stage_inputs(name);
    GenerationOptions opt;
    opt.max_new_tokens = 10;
    opt.return_step_logits = true;
    const auto greedy = demo_complete(s, opt);
    opt.num_beams = 4;
    const auto beam = demo_complete(s, opt);
    EXPECT_NEAR(greedy.score, score_from_logits(greedy, 1.0), 1e-4) << name;
    EXPECT_NEAR(beam.score, score_from_logits(beam, 1.0), 1e-4) << name;
    EXPECT_GE(beam.score, greedy.score - 1e-6) << name;
    EXPECT_EQ(beam.text, demo().tok.decode(beam.generated_ids)) << name;
    const size_t f = forced_count(s);
    EXPECT_EQ(std::vector<int64_t>(beam.decoded_tokens.begin(), beam.decoded_tokens.begin() + f),
              std::vector<int64_t>(s.prompt.right.begin() + 1, s.prompt.right.end()))
        << name;
    // A step's logits depend only on the tokens before it: equal to greedy's up to the first difference.
    const size_t rows = std::min(beam.decoded_tokens.size(), greedy.decoded_tokens.size());
    size_t same = 0;
    while (same < rows && beam.decoded_tokens[same] == greedy.decoded_tokens[same]) ++same;
    EXPECT_GE(same, f) << name;
    for (size_t step = 0; step <= same && step < rows; ++step)
      EXPECT_LE(max_abs_diff(beam.step_logits[step], greedy.step_logits[step]), 1e-4) << name << " step " << step;
  }
}

TEST(BeamSearch, EndsWithEosAtTheStepLimit) {
  GenerationOptions opt;
  opt.num_beams = 3;
  opt.max_steps = static_cast<int>(forced_count(museum())) + 4;
  const auto r = demo_complete(museum(), opt);
  ASSERT_FALSE(r.decoded_tokens.empty());
  EXPECT_EQ(r.decoded_tokens.back(), 2);
  EXPECT_LE(r.decoded_tokens.size(), static_cast<size_t>(opt.max_steps) + 1);
}

TEST(StepLimit, OnlyEosAtMaxSteps) {
  GenerationOptions opt;
  opt.max_steps = static_cast<int>(forced_count(museum())) + 3;
  opt.return_step_logits = true;
  const auto r = demo_complete(museum(), opt);
  // Three free tokens, then the reference's forced EOS at step max_steps (its logits included).
  EXPECT_EQ(r.generated_ids.size(), 3u);
  ASSERT_EQ(r.decoded_tokens.size(), static_cast<size_t>(opt.max_steps) + 1);
  EXPECT_EQ(r.decoded_tokens.back(), 2);
  EXPECT_EQ(r.step_logits.size(0), opt.max_steps + 1);
}

TEST(RepetitionControls, NoRepeatNgramAndPenalty) {
  GenerationOptions opt;
  opt.max_new_tokens = 10;
  const auto plain = demo_complete(museum(), opt).generated_ids;
  ASSERT_LT(std::set<int64_t>(plain.begin(), plain.end()).size(), plain.size()) << "the case must repeat";

  opt.no_repeat_ngram_size = 1;
  const auto unique = demo_complete(museum(), opt).generated_ids;
  EXPECT_EQ(unique.size(), 10u);
  EXPECT_EQ(std::set<int64_t>(unique.begin(), unique.end()).size(), unique.size());

  opt.no_repeat_ngram_size = 2;
  const auto bigrams = demo_complete(museum(), opt).generated_ids;
  std::set<std::pair<int64_t, int64_t>> seen;
  for (size_t i = 0; i + 1 < bigrams.size(); ++i) EXPECT_TRUE(seen.insert({bigrams[i], bigrams[i + 1]}).second);

  opt.no_repeat_ngram_size = 0;
  opt.repetition_penalty = 50;
  const auto penalised = demo_complete(museum(), opt).generated_ids;
  EXPECT_NE(penalised, plain);
  EXPECT_EQ(std::set<int64_t>(penalised.begin(), penalised.end()).size(), penalised.size());
}

TEST(StopStrings, CutTextAndEndGeneration) {
  GenerationOptions opt;
  opt.max_new_tokens = 10;
  const auto full = demo_complete(museum(), opt);
  const std::string stop = full.text.substr(4, 2);
  ASSERT_EQ(stop.size(), 2u);
  opt.stop = {stop, "never appears"};
  std::string streamed;
  const auto r = demo_complete(museum(), opt, [&](const std::string& piece) { streamed += piece; });
  EXPECT_EQ(r.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, r.text);
  EXPECT_LT(r.generated_ids.size(), full.generated_ids.size());
}

TEST(Streaming, PiecesAreValidUtf8AndAddUpToTheText) {
  // The plants case's output holds byte-fallback pieces that are not valid UTF-8 (U+FFFD in the text).
  for (const auto& name : stage_cases()) {
    GenerationOptions opt;
    opt.max_new_tokens = 10;
    std::string streamed;
    int calls = 0;
    const auto r = demo_complete(stage_inputs(name), opt, [&](const std::string& piece) {
      EXPECT_FALSE(piece.empty());
      // Whole characters only: a piece never starts with a continuation byte or ends inside a character.
      EXPECT_NE(static_cast<unsigned char>(piece.front()) >> 6, 0x2u) << name;
      streamed += piece;
      ++calls;
    });
    EXPECT_EQ(streamed, r.text) << name;
    EXPECT_GT(calls, 1) << name;
  }
}

TEST(Errors, ContextLongerThanTheRotaryTable) {
  const auto& cfg = demo().cfg.llama;
  const auto& s = museum();
  const int64_t room = cfg.max_positions() - static_cast<int64_t>(s.prompt.left.size() + s.prompt.right.size());
  const at::Tensor too_long = at::zeros({room + 1, cfg.dim});
  try {
    decoder::complete(demo().llm, demo().tok, too_long, s.prompt, demo_scale(s.prompt), GenerationOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context too long"), std::string::npos) << e.what();
  }
  // One position less fits: the forced prefix and one free token.
  GenerationOptions opt;
  opt.max_new_tokens = 1;
  const auto r = decoder::complete(demo().llm, demo().tok, at::zeros({room, cfg.dim}), s.prompt, demo_scale(s.prompt), opt);
  EXPECT_EQ(r.generated_ids.size(), 1u);
  EXPECT_THROW(demo().llm.new_cache(1, cfg.max_positions() + 1), Error);
  EXPECT_THROW(demo().llm.prompt_hidden(std::vector<int64_t>(cfg.max_positions() + 1, 5)), Error);
}

TEST(Errors, BadInputsAndOptions) {
  const auto& s = museum();
  const at::Tensor scale = demo_scale(s.prompt);
  auto expect_error = [&](GenerationOptions opt, const std::string& word) {
    try {
      decoder::complete(demo().llm, demo().tok, s.audio_embeds, s.prompt, scale, opt);
      ADD_FAILURE() << "no error for " << word;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
  };
  GenerationOptions o;
  o.temperature = -1;
  expect_error(o, "temperature");
  o = {};
  o.top_p = 0;
  expect_error(o, "top_p");
  o = {};
  o.num_beams = 2;
  o.temperature = 0.5;
  expect_error(o, "num_beams");
  o = {};
  o.stop = {""};
  expect_error(o, "stop");
  o = {};
  o.repetition_penalty = 0;
  expect_error(o, "repetition_penalty");
  o = {};
  o.temperature = 1e-300;  // would divide the logits by 0 in float32
  expect_error(o, "temperature");
  o = {};
  o.num_beams = GenerationOptions::kMaxBeams + 1;
  expect_error(o, "num_beams");
  o = {};
  o.no_repeat_ngram_size = GenerationOptions::kMaxNoRepeatNgram + 1;
  expect_error(o, "no_repeat_ngram_size");
  o = {};
  o.stop.assign(GenerationOptions::kMaxStopStrings + 1, "x");
  expect_error(o, "stop");
  EXPECT_THROW(decoder::complete(demo().llm, demo().tok, s.audio_embeds.narrow(1, 0, 10), s.prompt, scale, {}), Error);
  EXPECT_THROW(decoder::complete(demo().llm, demo().tok, s.audio_embeds, s.prompt, scale.narrow(0, 0, 3), {}), Error);
  EXPECT_THROW(demo().llm.embed({5, 512}), Error);
}

TEST(Errors, KvCacheIsBudgeted) {
  WAVLLM_SKIP_UNDER_ASAN();
  const auto& s = museum();
  GenerationOptions opt;
  opt.num_beams = GenerationOptions::kMaxBeams;  // 16 rows of every position: about 11 MB here
  const at::Tensor scale = demo_scale(s.prompt);
  trim_cpu_allocator();  // its blocks would count as room (available_memory_bytes)
  wavllm::test::AddressSpaceLimit limit(4u << 20);
  try {
    decoder::complete(demo().llm, demo().tok, s.audio_embeds, s.prompt, scale, opt);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decoding with a KV cache of 16 beam(s) x"), std::string::npos) << e.what();
  }
}

// NaN in the weights used to decode to an arbitrary token or an empty answer, with success.
TEST(Errors, NonFiniteLogitsAreAnError) {
  const auto& s = museum();
  std::map<std::string, at::Tensor> tensors = demo().w.all();
  const std::string name = "gpt_model.model_llama.output.weight";
  tensors[name] = tensors[name].clone();
  tensors[name][7][3] = std::nanf("");
  const Weights w = Weights::from_map(tensors, model_spec(demo().cfg));
  const decoder::Llama llm(demo().cfg.llama, decoder_module(nn::Scope::binding(w)));
  try {
    decoder::complete(llm, demo().tok, s.audio_embeds, s.prompt, demo_scale(s.prompt), {});
    ADD_FAILURE() << "NaN weights gave a result";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite logits"), std::string::npos) << e.what();
  }
}

}  // namespace
