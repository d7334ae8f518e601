// The whole model against the reference stages: from the audio file (16 kHz cases) or from the
// reference resampler's waveform (resampled cases), to the greedy tokens and text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "torch_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"
#include "wavllm/pipeline/model.h"

namespace {

namespace fs = std::filesystem;
using namespace wavllm;
using wavllm::test::fixture;
using wavllm::test::load_tensor;

std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }

const Model& model() {
  static const std::shared_ptr<Model> m = Model::load(demo_dir(), ModelOptions{"cpu", "float32", 2});
  return *m;
}

nlohmann::json cases() {
  std::ifstream in(fixture("cases.json"));
  return nlohmann::json::parse(in);
}

struct Case {
  std::string name;
  bool from_file;  // false: start from frontend.safetensors' <stem>.wave16k
};

std::vector<float> case_audio(const Case& c) {
  const std::string audio = cases()[c.name]["audio"];
  if (c.from_file) return audio::load_mono_16k(fixture("audio/" + audio));
  return st::File::open(fixture("frontend.safetensors"))->read_f32(fs::path(audio).stem().string() + ".wave16k");
}

std::shared_ptr<st::File> stage(const Case& c) { return st::File::open(fixture("stages/" + c.name + ".safetensors")); }

std::vector<int64_t> ids_of(const st::File& f, const std::string& name) { return f.read_i64(name); }

decoder::GenerateOptions greedy() {
  decoder::GenerateOptions o = model().default_generate_options();
  o.temperature = 0;
  o.max_new_tokens = 10;  // the fixtures stop there
  o.return_step_logits = true;
  return o;
}

class EndToEnd : public ::testing::TestWithParam<Case> {};

TEST_P(EndToEnd, GreedyTokensAndTextMatchTheReference) {
  const Case& c = GetParam();
  auto f = stage(c);
  const std::string prompt = f->metadata().at("prompt");
  const std::vector<float> samples = case_audio(c);
  EXPECT_EQ(int64_t(samples.size()), cases()[c.name]["samples_16k"].get<int64_t>());

  const GenerationResult r = model().generate(samples, prompt, greedy());
  EXPECT_EQ(r.token_ids, ids_of(*f, "generated_ids"));
  EXPECT_EQ(r.decoded_tokens, ids_of(*f, "decoded_tokens"));
  EXPECT_EQ(r.text, f->metadata().at("text"));
  EXPECT_EQ(r.text, cases()[c.name]["text"].get<std::string>());
  const at::Tensor ref_logits = load_tensor(*f, "step_logits");
  EXPECT_LE(wavllm::test::max_abs_diff(r.step_logits, ref_logits), 1e-3);
  EXPECT_DOUBLE_EQ(r.audio_seconds, double(samples.size()) / 16000.0);
  EXPECT_GT(r.timings.whisper, 0);
  EXPECT_GT(r.timings.decode, 0);
  EXPECT_GT(r.real_time_factor, 0);
}

TEST_P(EndToEnd, PromptIdsAndScaleMatchTheReference) {
  const Case& c = GetParam();
  auto f = stage(c);
  const std::string prompt = f->metadata().at("prompt");
  const decoder::PromptIds ids = model().prompt_ids(prompt);
  EXPECT_EQ(ids.left, ids_of(*f, "prompt.left_ids"));
  EXPECT_EQ(ids.right, ids_of(*f, "prompt.right_ids"));
  EXPECT_EQ(ids.orig, ids_of(*f, "prompt.orig_ids"));
  const at::Tensor ref = load_tensor(*f, "prompt_scale");
  WAVLLM_EXPECT_CLOSE_REL(model().prompt_scale(prompt), ref, c.name + " prompt_scale");
  // Second call: from the cache, same values, and writing into a result leaves the cache alone.
  at::Tensor first = model().prompt_scale(prompt);
  const at::Tensor copy = first.clone();
  {
    c10::InferenceMode guard;  // results are inference tensors (a numpy view writes them the same way)
    first.fill_(7);
  }
  EXPECT_TRUE(at::equal(model().prompt_scale(prompt), copy));
}

INSTANTIATE_TEST_SUITE_P(Cases, EndToEnd,
                         ::testing::Values(Case{"plants_asr", true}, Case{"museum_sqa", true}, Case{"short_er", true},
                                           Case{"story_st", true}, Case{"stereo_sv", false}, Case{"phone_free", false}),
                         [](const auto& info) { return info.param.name; });

// Audio embeddings of a one-part file, the two-part file and a resampled input (the end-to-end
// tests above cover the others through their tokens).
class Embeddings : public ::testing::TestWithParam<Case> {};

TEST_P(Embeddings, MatchTheReference) {
  const Case& c = GetParam();
  auto f = stage(c);
  const at::Tensor emb = model().audio_embeddings(case_audio(c));
  EXPECT_EQ(emb.size(0), cases()[c.name]["audio_frames"].get<int64_t>());
  EXPECT_EQ(model().audio_token_count(int64_t(case_audio(c).size())), emb.size(0));
  WAVLLM_EXPECT_CLOSE_REL(emb, load_tensor(*f, "audio_embeds"), c.name + " audio_embeds");
}

INSTANTIATE_TEST_SUITE_P(Cases, Embeddings,
                         ::testing::Values(Case{"short_er", true}, Case{"story_st", true}, Case{"stereo_sv", false}),
                         [](const auto& info) { return info.param.name; });

TEST(Model, WhisperEncoderReturnsEachPart) {
  const Case c{"story_st", true};
  auto f = stage(c);
  const std::vector<at::Tensor> parts = model().whisper_encoder(case_audio(c));
  ASSERT_EQ(parts.size(), 2u);
  for (size_t i = 0; i < parts.size(); ++i)
    WAVLLM_EXPECT_CLOSE_REL(parts[i], load_tensor(*f, "whisper.part" + std::to_string(i) + ".encoder_out"),
                            "whisper part " + std::to_string(i));
}

TEST(Model, WavlmHiddenStatesMatchTheReference) {
  const Case c{"short_er", true};
  auto f = stage(c);
  const std::vector<at::Tensor> hidden = model().wavlm_hidden_states(case_audio(c));
  ASSERT_EQ(int(hidden.size()), model().config().wavlm.num_hidden_layers + 1);
  for (size_t l = 0; l < hidden.size(); ++l)
    WAVLLM_EXPECT_CLOSE_REL(hidden[l], load_tensor(*f, "wavlm.hidden." + std::to_string(l)), "wavlm hidden " + std::to_string(l));
}

TEST(Model, ConcurrentCallsGiveTheSameResult) {
  const Case c{"short_er", true};
  const std::vector<float> samples = case_audio(c);
  const std::string prompt = stage(c)->metadata().at("prompt");
  auto run = [&] { return model().generate(samples, prompt, greedy()).token_ids; };
  auto a = std::async(std::launch::async, run), b = std::async(std::launch::async, run);
  const auto ref = ids_of(*stage(c), "generated_ids");
  EXPECT_EQ(a.get(), ref);
  EXPECT_EQ(b.get(), ref);
}

TEST(Model, StreamsTheTextItReturns) {
  const Case c{"short_er", true};
  std::string streamed;
  const GenerationResult r = model().generate(case_audio(c), stage(c)->metadata().at("prompt"), greedy(),
                                              [&](const std::string& piece) { streamed += piece; });
  EXPECT_EQ(streamed, r.text);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Model, RejectsBadAudio) {
  EXPECT_NE(error_of([] { model().audio_embeddings({}); }).find("empty"), std::string::npos);
  std::vector<float> nan(16000, 0.1f);
  nan[123] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { model().generate(nan, transcribe_instruction(), greedy()); }).find("123"), std::string::npos);
  EXPECT_NE(error_of([] { model().whisper_encoder(std::vector<float>(100, 0.f)); }).find("too short"), std::string::npos);
}

TEST(Model, AudioTokenCountMatchesEveryFixtureCase) {
  const nlohmann::json all = cases();
  for (const auto& [name, c] : all.items())
    EXPECT_EQ(model().audio_token_count(c["samples_16k"].get<int64_t>()), c["audio_frames"].get<int64_t>()) << name;
  EXPECT_EQ(model().audio_token_count(100), 0);
}

// Refused before the encoders run: the demo's rotary table has 2048 positions, about 160 s.
TEST(Model, AudioBeyondTheContextIsRefusedUpFront) {
  std::vector<float> long_audio(16000 * 170, 0.01f);
  const std::string msg = error_of([&] { model().generate(long_audio, transcribe_instruction(), greedy()); });
  EXPECT_NE(msg.find("decoder positions"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rotary table has 2048"), std::string::npos) << msg;
}

TEST(Model, AudioLongerThanTheLimitIsRefused) {
  std::vector<float> huge(size_t(16000) * 7201, 0.0f);
  const std::string msg = error_of([&] { model().audio_embeddings(huge); });
  EXPECT_NE(msg.find("the limit is 7200 s"), std::string::npos) << msg;
}

TEST(Model, Float16OnCpuIsRefusedAtLoad) {
  ModelOptions opt;
  opt.dtype = "float16";
  const std::string msg = error_of([&] { Model::load(demo_dir(), opt); });
  EXPECT_NE(msg.find("float16 is not supported on CPU"), std::string::npos) << msg;
}

TEST(Model, LoadNamesWhatIsMissing) {
  EXPECT_NE(error_of([] { Model::load("/nonexistent/model"); }).find("/nonexistent/model"), std::string::npos);
  const fs::path dir = fs::temp_directory_path() / ("wavllm_pipeline_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::copy_file(fs::path(demo_dir()) / "config.json", dir / "config.json");
  const std::string msg = error_of([&] { Model::load(dir.string()); });
  EXPECT_NE(msg.find("model*.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer.model"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("config.json,"), std::string::npos) << msg;
  fs::remove_all(dir);
  EXPECT_NE(error_of([] { Model::load(demo_dir(), ModelOptions{"cpu", "float64", 0}); }).find("float64"), std::string::npos);
  EXPECT_NE(error_of([] { Model::load(demo_dir(), ModelOptions{"tpu", "float32", 0}); }).find("tpu"), std::string::npos);
}

TEST(Instructions, MatchTheReferenceTaskPrompts) {
  const auto c = cases();
  EXPECT_EQ(transcribe_instruction(), c["plants_asr"]["prompt"].get<std::string>());
  EXPECT_EQ(translate_instruction("German"), c["story_st"]["prompt"].get<std::string>());
  EXPECT_EQ(translate_instruction(" german "), c["story_st"]["prompt"].get<std::string>());
  EXPECT_EQ(speaker_verification_instruction(), c["stereo_sv"]["prompt"].get<std::string>());
  EXPECT_EQ(emotion_instruction(), c["short_er"]["prompt"].get<std::string>());
  EXPECT_EQ(question_instruction(" Where? A. x; B. y "), "Where? A. x; B. y");
  EXPECT_THROW(translate_instruction("Klingon"), Error);
  EXPECT_THROW(translate_instruction(""), Error);
  EXPECT_THROW(question_instruction("  "), Error);
}

}  // namespace
