// The whole model against the reference stages: from the audio file (16 kHz cases) or from the
// reference resampler's waveform (resampled cases), to the greedy tokens and text.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <future>
#include <limits>
#include <thread>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "test_util.h"
#include "wavllm/core/cpu_allocator.h"
#include "torch_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"
#include "wavllm/core/files.h"
#include "wavllm/core/random_model.h"
#include "wavllm/core/runtime.h"
#include "wavllm/pipeline/model.h"
#include "wavllm/pipeline/quantize.h"
#include "wavllm/pipeline/scheduler.h"
#include "wavllm/pipeline/stages.h"

namespace {

namespace fs = std::filesystem;
using namespace wavllm;
using wavllm::test::fixture;
using wavllm::test::load_tensor;

std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }

const Model& model() {
  static const std::shared_ptr<Model> m = Model::load(demo_dir(), ModelOptions::parse("cpu", "float32", 2));
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

GenerationOptions greedy() {
  GenerationOptions o = model().generation_options();
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

// Several pieces through one pass of the Whisper encoder (long recordings' encoder batch): each
// piece's output matches the reference's for that piece alone, and decoding it gives the
// reference's greedy tokens. The two-part story sits between one-part cases of other lengths.
TEST(Model, WhisperBatchAcrossPiecesMatchesEachPieceAlone) {
  const std::vector<Case> all = {{"short_er", true}, {"story_st", true}, {"plants_asr", true}, {"stereo_sv", false}};
  std::vector<std::vector<float>> pieces;
  for (const Case& c : all) pieces.push_back(case_audio(c));
  const std::vector<WhisperEncoded> encoded = model().encode_whisper(pieces);
  ASSERT_EQ(encoded.size(), all.size());
  double frontend = 0, whisper = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    auto f = stage(all[i]);
    const std::vector<at::Tensor> alone = model().whisper_encoder(pieces[i]);
    ASSERT_EQ(encoded[i].output.size(0), int64_t(alone.size())) << all[i].name;
    for (size_t p = 0; p < alone.size(); ++p) {
      const at::Tensor part = encoded[i].output[int64_t(p)].to(at::kFloat);
      const std::string ref = all[i].name == "story_st" ? "whisper.part" + std::to_string(p) + ".encoder_out" : "";
      if (!ref.empty()) WAVLLM_EXPECT_CLOSE_REL(part, load_tensor(*f, ref), all[i].name + " " + ref);
      WAVLLM_EXPECT_CLOSE_REL(part, alone[p], all[i].name + " part " + std::to_string(p) + " alone");
    }
    const GenerationResult r = model().generate(pieces[i], encoded[i], f->metadata().at("prompt"), greedy());
    EXPECT_EQ(r.token_ids, ids_of(*f, "generated_ids")) << all[i].name;
    EXPECT_EQ(r.text, f->metadata().at("text")) << all[i].name;
    EXPECT_NEAR(r.timings.whisper, encoded[i].whisper_seconds, 1e-12);
    frontend += encoded[i].frontend_seconds;
    whisper += encoded[i].whisper_seconds;
  }
  EXPECT_GT(whisper, 0);
  EXPECT_GE(frontend, 0);
  // An encoding handed in with other audio is refused, not decoded as if it were this audio's.
  const std::string msg = error_of([&] { model().generate(pieces[0], encoded[1], transcribe_instruction(), greedy()); });
  EXPECT_NE(msg.find("not the one this audio gives"), std::string::npos) << msg;
  EXPECT_TRUE(model().encode_whisper({}).empty());
}

// The opt-in Whisper margin (beyond the reference): a margin that reaches the window's end is
// the reference's computation exactly; a short one keeps the output's shape (the decoder sees as
// many audio positions) but changes its values; out-of-range margins are refused at load.
TEST(Model, WhisperMarginIsOptInAndKeepsTheOutputShape) {
  const Case c{"short_er", true};
  const std::vector<float> samples = case_audio(c);
  const std::vector<at::Tensor> full = model().whisper_encoder(samples);
  auto with_margin = [](double seconds) {
    ModelOptions o = ModelOptions::parse("cpu", "float32", 2);
    o.whisper_margin_seconds = seconds;
    return Model::load(demo_dir(), o);
  };
  EXPECT_FALSE(model().whisper_margin_seconds().has_value());
  const std::shared_ptr<Model> whole = with_margin(30);
  ASSERT_EQ(whole->whisper_margin_seconds(), 30.0);
  EXPECT_TRUE(at::equal(whole->whisper_encoder(samples)[0], full[0]));
  const std::shared_ptr<Model> tight = with_margin(0);
  const at::Tensor cut = tight->whisper_encoder(samples)[0];
  ASSERT_EQ(cut.sizes(), full[0].sizes());
  EXPECT_TRUE(at::isfinite(cut).all().item<bool>());
  EXPECT_FALSE(at::allclose(cut, full[0]));
  EXPECT_EQ(tight->audio_token_count(int64_t(samples.size())), model().audio_token_count(int64_t(samples.size())));
  const GenerationResult r = tight->generate(samples, stage(c)->metadata().at("prompt"), greedy());
  EXPECT_EQ(r.step_logits.size(0), int64_t(r.decoded_tokens.size()));
  for (double bad : {-1.0, 30.5}) {
    const std::string msg = error_of([&] { with_margin(bad); });
    EXPECT_NE(msg.find("the Whisper margin must be 0 to 30 seconds"), std::string::npos) << msg;
  }
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
  opt.dtype = at::kHalf;
  const std::string msg = error_of([&] { Model::load(demo_dir(), opt); });
  EXPECT_NE(msg.find("float16 runs on CUDA only"), std::string::npos) << msg;
}

// The default dtype is the stored one: a bfloat16 folder is not widened to float32, and a
// float16 one (which the CPU cannot run) loads as float32 there.
TEST(Model, DefaultDtypeIsTheStoredOne) {
  const wavllm::test::TempDir tmp;
  const ModelConfig cfg = ModelConfig::load(demo_dir());
  for (const auto& [stored, loaded] : {std::pair{at::kBFloat16, at::kBFloat16}, {at::kHalf, at::kFloat}}) {
    RandomModelOptions o;
    o.dtype = stored;
    o.tokenizer = demo_dir() + "/tokenizer.model";
    const std::string dir = tmp.file(dtype_label(stored));
    write_random_model(cfg, model_spec(cfg), dir, o);
    EXPECT_EQ(stored_dtype(dir), stored);
    EXPECT_EQ(Model::load(dir)->dtype(), loaded) << dtype_label(stored);
    EXPECT_EQ(Model::load(dir, ModelOptions::parse("cpu", "auto", 1))->dtype(), loaded);
    EXPECT_EQ(Model::load(dir, ModelOptions::parse("cpu", "fp32", 1))->dtype(), at::kFloat);
  }
  EXPECT_EQ(Model::load(demo_dir())->dtype(), at::kFloat);
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
  EXPECT_NE(error_of([] { Model::load(demo_dir(), ModelOptions::parse("cpu", "float64", 0)); }).find("float64"), std::string::npos);
  EXPECT_NE(error_of([] { Model::load(demo_dir(), ModelOptions::parse("tpu", "float32", 0)); }).find("tpu"), std::string::npos);
}

// --- round 2 of bad input ----------------------------------------------------------------

// A copy of the demo model in a scratch folder, config.json edited by `edit`.
class DemoCopy {
 public:
  explicit DemoCopy(const std::function<void(nlohmann::json&)>& edit = {}) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* f : {"model.safetensors", "tokenizer.model"}) fs::copy_file(fs::path(demo_dir()) / f, dir_ / f);
    std::ifstream in(fs::path(demo_dir()) / "config.json");
    nlohmann::json cfg = nlohmann::json::parse(in);
    if (edit) edit(cfg);
    std::ofstream(dir_ / "config.json") << cfg.dump(1);
  }
  ~DemoCopy() { fs::remove_all(dir_); }
  std::string str() const { return dir_.string(); }
  // Overwrites element 0 of a float32 tensor in model.safetensors.
  void poke(const std::string& tensor, float value) const {
    const auto file = st::File::open((dir_ / "model.safetensors").string());
    const uint64_t at = uint64_t(file->data(file->info(tensor)) - file->data(file->tensors().begin()->second)) +
                        file->tensors().begin()->second.offset;
    uint64_t header = 0;
    std::ifstream((dir_ / "model.safetensors").string(), std::ios::binary).read(reinterpret_cast<char*>(&header), 8);
    std::fstream out((dir_ / "model.safetensors").string(), std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(std::streamoff(8 + header + at));
    out.write(reinterpret_cast<const char*>(&value), 4);
  }

 private:
  fs::path dir_ = fs::temp_directory_path() / ("wavllm_demo_copy_" + std::to_string(getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
};

// The budget counts every live buffer (the old one counted one [heads, T, T] buffer: 2.6x below
// the real peak). Measured on the demo model: estimate / peak = 1.09 to 1.21; a peak varies from run
// to run by about one head of float32 scores (hence the 5 % margin).
TEST(Model, ActivationEstimateCoversTheMeasuredPeak) {
  WAVLLM_SKIP_UNDER_ASAN();
  const auto bf16 = Model::load(demo_dir(), ModelOptions::parse("cpu", "bfloat16", 2));
  for (const auto& [m, seconds] : {std::pair<const Model*, int>{&model(), 60}, {&model(), 90}, {bf16.get(), 60}}) {
    std::vector<float> audio(size_t(16000) * seconds);
    for (size_t i = 0; i < audio.size(); ++i) audio[i] = 0.1f * std::sin(0.01f * float(i));
    trim_cpu_allocator();  // blocks kept from the run before would be reused, not counted
    wavllm::test::reset_peak_rss();
    const uint64_t before = wavllm::test::rss_bytes();
    m->audio_embeddings(audio);
    const double peak = double(wavllm::test::peak_rss_bytes() - before), estimate = double(m->activation_bytes(audio.size()));
    EXPECT_GE(estimate * 1.05, peak) << seconds << " s in " << dtype_label(m->dtype());
    EXPECT_LE(estimate, 1.5 * peak) << seconds << " s in " << dtype_label(m->dtype());
  }
  // Refused before any compute when it cannot fit.
  std::vector<float> audio(size_t(16000) * 60, 0.01f);
  trim_cpu_allocator();  // its blocks would count as room (available_memory_bytes)
  wavllm::test::AddressSpaceLimit limit(model().activation_bytes(audio.size()) / 2);
  EXPECT_NE(error_of([&] { model().audio_embeddings(audio); }).find("encoding 60 s of audio needs about"), std::string::npos);
}

TEST(Model, NonFiniteStageOutputsAreErrorsNamingTheStage) {
  // Finite float32 samples of 3e38 overflow in the front end: an error, never an empty answer.
  std::vector<float> loud(16000 * 3);
  for (size_t i = 0; i < loud.size(); ++i) loud[i] = (i % 2 ? 3e38f : -3e38f);
  std::string msg = error_of([&] { model().generate(loud, transcribe_instruction(), greedy()); });
  EXPECT_NE(msg.find("produced non-finite values"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reach 3e+38"), std::string::npos) << msg;
  // NaN in a weight of each stage, with audio in range.
  const std::vector<float> audio = audio::load_mono_16k(fixture("audio/plants.wav"));
  for (const auto& [tensor, stage] : std::vector<std::pair<std::string, std::string>>{
           {"audio_encoder.model.conv1.weight", "the Whisper encoder"},
           {"wavlm_encoder.model.encoder.layers.0.feed_forward.output_dense.weight", "the WavLM encoder"},
           {"gpt_model.model_llama.output.weight", "the decoder produced non-finite logits"}}) {
    DemoCopy copy;
    copy.poke(tensor, std::nanf(""));
    const auto m = Model::load(copy.str(), ModelOptions::parse("cpu", "float32", 2));
    msg = error_of([&] { m->generate(audio, transcribe_instruction(), greedy()); });
    EXPECT_NE(msg.find(stage), std::string::npos) << tensor << ": " << msg;
  }
}

TEST(Model, FilesystemFailuresAreErrors) {
  const fs::path dir = fs::temp_directory_path() / ("wavllm_loop_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_directory_symlink(dir / "loop", dir / "loop");  // a link to itself
  const std::string msg = error_of([&] { Model::load((dir / "loop").string()); });
  EXPECT_NE(msg.find("Too many levels of symbolic links"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(Model, RotaryTableIsBudgeted) {
  WAVLLM_SKIP_UNDER_ASAN();
  // max_seq_len 2^20 is a valid config, but its rotary table is 335 MB for a 2 MB model.
  DemoCopy big_table([](nlohmann::json& c) { c["llama"]["max_seq_len"] = 1 << 20; });
  trim_cpu_allocator();  // its blocks would count as room (available_memory_bytes)
  wavllm::test::AddressSpaceLimit limit(256ull << 20);
  const std::string msg = error_of([&] { Model::load(big_table.str()); });
  EXPECT_NE(msg.find("rotary table (llama.max_seq_len 1048576) needs about"), std::string::npos) << msg;
}

// Valid alone, but the encoder would only fail at the first request (its input is 3000 frames).
TEST(Model, WhisperWindowMustMatchTheFrontEnd) {
  DemoCopy short_window([](nlohmann::json& c) { c["whisper"]["max_source_positions"] = 100; });
  const std::string msg = error_of([&] { Model::load(short_window.str()); });
  EXPECT_NE(msg.find("whisper.max_source_positions is 100; this engine's 30-s log-mel parts need 1500"),
            std::string::npos)
      << msg;
}

TEST(Model, TokenizerSpecialIdsMustMatchTheConfig) {
  DemoCopy other_eos([](nlohmann::json& c) { c["tokens"]["eos"] = 3; });
  const std::string msg = error_of([&] { Model::load(other_eos.str()); });
  EXPECT_NE(msg.find("config.json's tokens say bos 1 and eos 3"), std::string::npos) << msg;
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

// Loading sets nothing process-wide: the model's thread count holds for the calling thread
// during each of its calls and the caller's own count comes back afterwards.
TEST(Model, ThreadsBelongToTheModelNotTheProcess) {
  at::set_num_threads(2);
  const auto one = Model::load(demo_dir(), ModelOptions::parse("cpu", "float32", 1));
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(one->threads(), 1);
  int inside = 0;
  one->generate(case_audio({"plants_asr", true}), transcribe_instruction(), greedy(),
                [&](const std::string&) { inside = at::get_num_threads(); });
  EXPECT_EQ(inside, 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  // Another thread's count is its own: a scope on this one leaves it alone.
  std::promise<void> scoped;
  std::promise<int> seen;
  std::thread other([&] {
    at::set_num_threads(2);
    scoped.get_future().wait();
    seen.set_value(at::get_num_threads());
  });
  {
    ThreadScope single(1);
    EXPECT_EQ(at::get_num_threads(), 1);
    scoped.set_value();
    EXPECT_EQ(seen.get_future().get(), 2);
  }
  other.join();
  EXPECT_EQ(at::get_num_threads(), 2);
}

// --- Q8_0 weights (docs/kernels.md) ----------------------------------------------------------

// The demo model quantized (once per run) in `format`.
std::string quantized_demo_dir(const std::string& format = "q8_0") {
  static wavllm::test::TempDir* dir = new wavllm::test::TempDir;  // lives for the whole run
  const std::string path = dir->file(format);
  if (!fs::exists(path)) quantize_model(demo_dir(), path, format);
  return path;
}

// Measured on the demo model (random weights: flat logits, a harsh case): max |error| 0.31
// with logits up to 17, cosine >= 0.99975. A logit error of at most kBound can change the greedy
// token only at a step where float32's best token leads the next by at most 2 kBound: the tokens
// must agree up to such a step. Since the forced instruction tokens run in one pass (float
// activations against the Q8_0 weights expanded, not the int8 kernel's), phone_free's last step
// (float32 margin 0.14, Q8_0 error there 0.21) chose another token; every other step agrees.
TEST(Quantized, StepLogitsStayCloseToFloat32OnEveryFixtureCase) {
  constexpr double kBound = 0.5;
  const auto q8 = Model::load(quantized_demo_dir(), ModelOptions::parse("cpu", "float32", 2));
  for (const std::string name : {"plants_asr", "museum_sqa", "short_er", "story_st", "stereo_sv", "phone_free"}) {
    const Case c{name, true};
    const std::vector<float> samples = case_audio(c);
    const std::string prompt = stage(c)->metadata().at("prompt");
    const GenerationResult f = model().generate(samples, prompt, greedy());
    const GenerationResult q = q8->generate(samples, prompt, greedy());
    // Steps up to the first differing token have the same inputs on both sides (an earlier EOS
    // is a differing token too: both sides stop at the same step limit).
    const std::vector<int64_t>& ft = f.decoded_tokens;
    const std::vector<int64_t>& qt = q.decoded_tokens;
    const auto [fd, qd] = std::mismatch(ft.begin(), ft.end(), qt.begin(), qt.end());
    int64_t last = int64_t(fd - ft.begin());
    if (fd == ft.end() && qd == qt.end()) {
      --last;
    } else {
      ASSERT_TRUE(fd != ft.end() && qd != qt.end()) << name;
      const auto top2 = std::get<0>(f.step_logits[last].topk(2));
      EXPECT_LE((top2[0] - top2[1]).item<double>(), 2 * kBound) << name << ": token " << last << " differs";
    }
    ASSERT_GE(std::min(q.step_logits.size(0), f.step_logits.size(0)), last + 1) << name;
    const at::Tensor fl = f.step_logits.narrow(0, 0, last + 1), ql = q.step_logits.narrow(0, 0, last + 1);
    EXPECT_LE(wavllm::test::max_abs_diff(ql, fl), kBound) << name;
    EXPECT_GE(at::cosine_similarity(ql, fl, 1).min().item<double>(), 0.9995) << name;
  }
}

TEST(Quantized, TheFolderRecordsItsFormatAndStoresTheProjectionsAsInt8) {
  const ModelConfig cfg = ModelConfig::load(quantized_demo_dir());
  EXPECT_EQ(cfg.quantization.format, "q8_0");
  int int8 = 0;
  for (const auto& t : model_spec(cfg).tensors) int8 += t.storage == Storage::Q8Values;
  EXPECT_EQ(int8, 7 * cfg.llama.n_layers);  // wq wk wv wo w1 w2 w3 of every layer
  EXPECT_LT(fs::file_size(fs::path(quantized_demo_dir()) / "model.safetensors"),
            fs::file_size(fs::path(demo_dir()) / "model.safetensors"));
  EXPECT_TRUE(Model::load(quantized_demo_dir())->random_weights());
}

TEST(Quantized, WhatCannotBeQuantizedOrRunIsRefusedNamingTheFormat) {
  wavllm::test::TempDir tmp;
  EXPECT_NE(error_of([&] { quantize_model(quantized_demo_dir(), tmp.file("again"), "q8_0"); }).find("already quantized"),
            std::string::npos);
  EXPECT_THROW(quantize_model(demo_dir(), tmp.file("q4"), "q4_9"), ArgumentError);
  EXPECT_FALSE(fs::exists(tmp.file("q4")));
  // A format this build does not run.
  fs::create_directories(tmp.file("odd"));
  for (const char* f : {"model.safetensors", "tokenizer.model"})
    fs::copy_file(fs::path(quantized_demo_dir()) / f, fs::path(tmp.file("odd")) / f);
  std::string text = RegularFile(quantized_demo_dir() + "/config.json", "config").read_all(1 << 20);
  text.replace(text.find("\"q8_0\""), 6, "\"q3_k\"");
  std::ofstream(tmp.file("odd") + "/config.json") << text;
  EXPECT_NE(error_of([&] { Model::load(tmp.file("odd")); }).find("quantization.format \"q3_k\" is not one this build runs"), std::string::npos);
  // A float model under a q8_0 config: every projection named with its dtype.
  fs::create_directories(tmp.file("mixed"));
  for (const char* f : {"model.safetensors", "tokenizer.model"})
    fs::copy_file(fs::path(demo_dir()) / f, fs::path(tmp.file("mixed")) / f);
  fs::copy_file(fs::path(quantized_demo_dir()) / "config.json", fs::path(tmp.file("mixed")) / "config.json");
  const std::string msg = error_of([&] { Model::load(tmp.file("mixed")); });
  EXPECT_NE(msg.find("layers.0.attention.wq.weight is F32, expected I8 (Q8_0 values)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;  // the scales
}

// 4 bits on the demo's random weights: each projection is within about 10 % (the kernel tests),
// but the tiny random network amplifies that until the step logits decorrelate (measured cosine
// -0.29 to 0.37 across the cases); docs/kernels.md gives the 1B-class agreement instead. What
// holds here: the folder is 4.5-bit, loads, and decodes every case to finite logits.
TEST(Quantized, Q4FoldersArePackedAndDecode) {
  const ModelConfig cfg = ModelConfig::load(quantized_demo_dir("q4_0"));
  EXPECT_EQ(cfg.quantization.format, "q4_0");
  int packed = 0;
  for (const auto& t : model_spec(cfg).tensors)
    if (t.storage == Storage::Q4Values) {
      ++packed;
      EXPECT_EQ(t.shape[1] * 2 % 32, 0) << t.name;
    }
  EXPECT_EQ(packed, 7 * cfg.llama.n_layers);
  EXPECT_LT(fs::file_size(fs::path(quantized_demo_dir("q4_0")) / "model.safetensors"),
            fs::file_size(fs::path(quantized_demo_dir("q8_0")) / "model.safetensors"));
  const auto q4 = Model::load(quantized_demo_dir("q4_0"), ModelOptions::parse("cpu", "float32", 2));
  for (const std::string name : {"plants_asr", "stereo_sv"}) {
    const Case c{name, true};
    const GenerationResult r = q4->generate(case_audio(c), stage(c)->metadata().at("prompt"), greedy());
    EXPECT_TRUE(at::isfinite(r.step_logits).all().item<bool>()) << name;
    EXPECT_EQ(r.decoded_tokens.size(), size_t(r.step_logits.size(0))) << name;
  }
}

// --- Continuous batching (Scheduler) ---------------------------------------------------------

namespace {

// Every fixture case with its audio and instruction, each case twice with different step limits
// so that rows leave the batch at different steps.
std::vector<Job> scheduler_jobs() {
  std::vector<Job> jobs;
  const nlohmann::json all = cases();
  for (const auto& c : all.items())
    for (int limit : {4, 12}) {
      Job j{case_audio({c.key(), true}), c.value()["prompt"].get<std::string>(), model().generation_options()};
      j.options.temperature = 0;
      j.options.max_new_tokens = limit + int(jobs.size());
      jobs.push_back(std::move(j));
    }
  return jobs;
}

std::shared_ptr<const Model> shared_model() {
  static const std::shared_ptr<const Model> m = Model::load(demo_dir(), ModelOptions::parse("cpu", "float32", 2));
  return m;
}

GenerationResult alone(const Job& j) { return shared_model()->generate(j.samples, j.instruction, j.options); }

}  // namespace

// Requests joining a running batch of 4 get the tokens and text generate() gives each alone,
// and the text streamed to each ticket adds up to its result.
TEST(Scheduler, BatchedRequestsGetWhatEachGetsAlone) {
  const std::vector<Job> jobs = scheduler_jobs();
  Scheduler scheduler(shared_model(), SchedulerOptions{4, 64, 1});
  std::vector<std::shared_ptr<Ticket>> tickets;
  for (const Job& j : jobs) tickets.push_back(scheduler.submit(j));
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(tickets[i]);
    std::string streamed;
    while (tickets[i]->next_text(streamed, std::chrono::milliseconds(100))) {
    }
    const GenerationResult batched = tickets[i]->wait();
    const GenerationResult expected = alone(jobs[i]);
    EXPECT_EQ(batched.token_ids, expected.token_ids) << i;
    EXPECT_EQ(batched.token_logprobs, expected.token_logprobs) << i;
    EXPECT_EQ(batched.text, expected.text) << i;
    EXPECT_EQ(streamed, batched.text) << i;
  }
  const SchedulerStats s = scheduler.stats();
  EXPECT_EQ(s.completed, jobs.size());
  EXPECT_GT(double(s.step_rows) / double(s.steps), 2.0);  // several rows per decoder pass
  EXPECT_EQ(s.running + s.queued, 0u);
}

// One Whisper batch for the admitted requests gives each the output it has alone up to float
// sums (docs/model.md §11): the same tokens on the fixtures.
TEST(Scheduler, EncoderBatchAcrossRequests) {
  const std::vector<Job> jobs = scheduler_jobs();
  Scheduler scheduler(shared_model(), SchedulerOptions{4, 64, 4});
  std::vector<std::shared_ptr<Ticket>> tickets;
  for (const Job& j : jobs) tickets.push_back(scheduler.submit(j));
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(tickets[i]->wait().token_ids, alone(jobs[i]).token_ids) << i;
}

// A request's row is free once its answer arrives: a submitter that waits for each answer
// before the next request is never refused, even with one row and no queue.
TEST(Scheduler, ARowIsFreeWhenItsAnswerArrives) {
  const std::vector<Job> jobs = scheduler_jobs();
  Scheduler one(shared_model(), SchedulerOptions{1, 0, 1});
  for (int round = 0; round < 3; ++round)
    for (const Job& j : jobs) {
      const auto t = one.submit(j);
      ASSERT_TRUE(t) << "refused right after the previous answer";
      t->wait();
    }
}

TEST(Scheduler, BoundedQueueCancellationDrainAndErrors) {
  const std::vector<Job> jobs = scheduler_jobs();
  {
    // One row and no queue: a second request while the first holds the row is refused.
    Scheduler one(shared_model(), SchedulerOptions{1, 0, 1});
    Job slow = jobs.front();
    slow.options.max_new_tokens = 0;  // until EOS or the step limit
    const auto first = one.submit(slow);
    ASSERT_TRUE(first);
    EXPECT_FALSE(one.submit(jobs.back()));
    first->cancel();  // frees the row
    EXPECT_THROW(first->wait(), Cancelled);
    std::shared_ptr<Ticket> next;
    for (int tries = 0; !next && tries < 500; ++tries) {
      next = one.submit(jobs.back());
      if (!next) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(next);
    EXPECT_EQ(next->wait().token_ids, alone(jobs.back()).token_ids);
    EXPECT_EQ(one.stats().cancelled, 1u);
  }
  Scheduler s(shared_model(), SchedulerOptions{2, 8, 1});
  Job bad = jobs.front();
  bad.samples.resize(10);  // too short for WavLM: this request fails, the others run
  const auto failing = s.submit(bad);
  std::vector<std::shared_ptr<Ticket>> ok;
  for (size_t i = 0; i < 4; ++i) ok.push_back(s.submit(jobs[i]));
  EXPECT_THROW(failing->wait(), Error);
  Job beams = jobs.front();
  beams.options.num_beams = 2;
  EXPECT_THROW(s.submit(beams), ArgumentError);
  s.drain();  // finishes what was submitted, then refuses
  for (size_t i = 0; i < ok.size(); ++i) EXPECT_EQ(ok[i]->wait().token_ids, alone(jobs[i]).token_ids);
  EXPECT_FALSE(s.submit(jobs.front()));
  EXPECT_THROW(Scheduler(shared_model(), SchedulerOptions{0, 8, 1}), ArgumentError);
  EXPECT_THROW(Scheduler(shared_model(), SchedulerOptions{2, 8, 3}), ArgumentError);
}

// prompt_scales.safetensors (docs/model.md §5a): written by save_preset_scales, used only under
// the identity it was written with, and a broken one is a named Error.
class PresetScales : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "README.md"})
      fs::copy_file(fs::path(demo_dir()) / f, fs::path(dir) / f);
  }
  std::shared_ptr<Model> load(const char* dtype = "float32", int threads = 2) const {
    return Model::load(dir, ModelOptions::parse("cpu", dtype, threads));
  }
  const wavllm::test::TempDir tmp;
  const std::string dir = tmp.str();
  const std::string file = dir + "/prompt_scales.safetensors";
};

TEST_F(PresetScales, AStoredScaleIsTheComputedOneAndIsUsed) {
  const auto fresh = load();
  EXPECT_EQ(fresh->preset_scales_loaded(), 0u);
  EXPECT_EQ(fresh->save_preset_scales(), file);
  const auto cached = load();
  const std::vector<std::string> presets = preset_instructions();
  EXPECT_EQ(cached->preset_scales_loaded(), presets.size());
  EXPECT_GE(presets.size(), 5u);
  for (const std::string& p : presets) EXPECT_TRUE(at::equal(cached->prompt_scale(p), fresh->prompt_scale(p))) << p;
  const std::vector<float> samples = case_audio({"plants_asr", true});
  EXPECT_EQ(cached->generate(samples, transcribe_instruction(), greedy()).token_ids,
            fresh->generate(samples, transcribe_instruction(), greedy()).token_ids);

  // The file's values are what a load uses: a scale zeroed in place comes back zero.
  {
    const st::TensorInfo t = st::File::open(file)->info("scale.0");
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header = 0;  // safetensors: an 8-byte little-endian header length, the header, the data
    f.read(reinterpret_cast<char*>(&header), sizeof header);
    f.seekp(std::streamoff(sizeof header + header + t.offset));
    const std::vector<char> zeros(t.nbytes, 0);
    f.write(zeros.data(), std::streamsize(zeros.size()));
  }
  EXPECT_EQ(load()->prompt_scale(presets[0]).abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(at::equal(load()->prompt_scale(presets[1]), fresh->prompt_scale(presets[1])));
}

TEST_F(PresetScales, AnotherIdentityIgnoresTheFile) {
  load()->save_preset_scales();
  EXPECT_GT(load()->preset_scales_loaded(), 0u);
  EXPECT_EQ(load("float32", 1)->preset_scales_loaded(), 0u);
  EXPECT_EQ(load("bfloat16")->preset_scales_loaded(), 0u);
  const fs::path weights = fs::path(dir) / "model.safetensors";
  fs::last_write_time(weights, fs::last_write_time(weights) + std::chrono::hours(1));
  EXPECT_EQ(load()->preset_scales_loaded(), 0u);
  load()->save_preset_scales();  // written again for the weights as they are now
  EXPECT_GT(load()->preset_scales_loaded(), 0u);
}

TEST_F(PresetScales, ABrokenFileIsANamedError) {
  std::ofstream(file) << "not safetensors";
  EXPECT_NE(error_of([&] { load(); }).find("prompt_scales.safetensors"), std::string::npos) << error_of([&] { load(); });
}
