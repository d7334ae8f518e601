#include "wavllm/core/weights.h"

#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <filesystem>
#include <set>

#include "test_util.h"
#include "wavllm/core/error.h"
#include "wavllm/core/random_model.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/safetensors.h"
#include "wavllm/pipeline/stages.h"

namespace fs = std::filesystem;
using namespace wavllm;
using wavllm::test::TempDir;

namespace {

std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Weights, LoadsDemoModelAsViewsWithFixtureValues) {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  Weights w = Weights::load(demo_dir(), model_spec(cfg), at::kCPU, at::kFloat);
  size_t used = 0;
  for (const auto& t : model_spec(cfg).tensors) used += t.used;
  EXPECT_EQ(w.all().size(), used);
  EXPECT_FALSE(w.contains("audio_proj.weight"));  // in checkpoints, unused by inference
  const at::Tensor& norm = w.get("gpt_model.model_llama.norm.weight");
  EXPECT_EQ(norm.sizes(), at::IntArrayRef({64}));
  EXPECT_FLOAT_EQ(norm[0].item<float>(), 0.965734601020813f);
  EXPECT_THROW(w.get("nope"), Error);
}

TEST(Weights, ConvertsDtype) {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  Weights w = Weights::load(demo_dir(), model_spec(cfg), at::kCPU, at::kBFloat16);
  const at::Tensor& t = w.get("gpt_model.model_llama.output.weight");
  EXPECT_EQ(t.scalar_type(), at::kBFloat16);
  EXPECT_NEAR(t.to(at::kFloat).sum().item<double>(), -24.145, 0.5);
}

TEST(Weights, ReportsEveryMismatchInOneError) {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  auto src = st::File::open(demo_dir() + "/model.safetensors");
  TempDir tmp;
  std::vector<st::TensorSpec> specs;
  for (const auto& [name, info] : src->tensors()) {
    if (name == "gpt_model.model_llama.norm.weight") continue;  // missing
    if (name == "wavlm_audio_proj.bias")
      specs.push_back({name, info.dtype, {65}});  // wrong shape
    else
      specs.push_back({name, info.dtype, info.shape});
  }
  specs.push_back({"stray.tensor", st::DType::F32, {2}});
  {
    st::Writer wr(tmp.file("model.safetensors"), specs);
    std::vector<uint8_t> zeros(65 * 4 + 8, 0);
    for (const auto& s : specs) {
      if (src->contains(s.name) && s.shape == src->info(s.name).shape)
        wr.write(s.name, src->data(src->info(s.name)), src->info(s.name).nbytes);
      else
        wr.write(s.name, zeros.data(), s.shape[0] * 4);
    }
    wr.close();
  }
  std::string msg = error_of([&] { Weights::load(tmp.str(), model_spec(cfg), at::kCPU, at::kFloat); });
  EXPECT_NE(msg.find("missing (1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gpt_model.model_llama.norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wavlm_audio_proj.bias is [65], config says [64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected (1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stray.tensor"), std::string::npos) << msg;
}

TEST(Weights, RejectsIntegerWeightsAndWrongConfig) {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  cfg.llama.lora_r = 8;  // the demo has r = 4: every LoRA tensor is mis-shaped
  std::string msg = error_of([&] { Weights::load(demo_dir(), model_spec(cfg), at::kCPU, at::kFloat); });
  EXPECT_NE(msg.find("wq_lora_A is [64, 4], config says [64, 8]"), std::string::npos) << msg;

  ModelConfig good = ModelConfig::load(demo_dir());
  std::map<std::string, at::Tensor> m;
  for (const auto& t : model_spec(good).tensors)
    if (t.used) m[t.name] = at::zeros(t.shape);
  m["gpt_model.model_llama.norm.weight"] = at::zeros({64}, at::kLong);
  msg = error_of([&] { Weights::from_map(m, model_spec(good)); });
  EXPECT_NE(msg.find("expected a floating-point dtype"), std::string::npos) << msg;
}

TEST(RandomModel, WritesLoadableDeterministicShardedModels) {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  TempDir a, b;
  RandomModelOptions opt;
  opt.seed = 7;
  opt.tokenizer = demo_dir() + "/tokenizer.model";
  write_random_model(cfg, model_spec(cfg), a.str() + "/m", opt);
  opt.shard_bytes = 200000;  // forces several shards and an index
  write_random_model(cfg, model_spec(cfg), b.str() + "/m", opt);
  EXPECT_TRUE(fs::exists(b.str() + "/m/model.safetensors.index.json"));
  int shards = 0;
  for (auto& e : fs::directory_iterator(b.str() + "/m")) shards += e.path().extension() == ".safetensors";
  EXPECT_GT(shards, 1);
  EXPECT_TRUE(fs::exists(b.str() + "/m/model-00001-of-" + (shards < 10 ? "0000" : "000") + std::to_string(shards) + ".safetensors"));
  EXPECT_TRUE(fs::exists(a.str() + "/m/tokenizer.model"));
  ModelConfig back = ModelConfig::load(a.str() + "/m");
  EXPECT_EQ(back.to_json_text(), cfg.to_json_text());
  Weights wa = Weights::load(a.str() + "/m", model_spec(cfg), at::kCPU, at::kFloat);
  Weights wb = Weights::load(b.str() + "/m", model_spec(cfg), at::kCPU, at::kFloat);
  for (const auto& [name, t] : wa.all()) EXPECT_TRUE(at::equal(t, wb.get(name))) << name;
  const at::Tensor& emb = wa.get("gpt_model.model_llama.tok_embeddings.weight");
  EXPECT_NEAR(emb.std().item<double>(), 0.02, 0.002);
  EXPECT_TRUE(at::equal(wa.get("gpt_model.model_llama.norm.weight"), at::ones({64})));
  // Another seed gives other values; an existing model is never overwritten.
  opt.seed = 8;
  opt.shard_bytes = 2000000000ull;
  TempDir c;
  write_random_model(cfg, model_spec(cfg), c.str() + "/m", opt);
  Weights wc = Weights::load(c.str() + "/m", model_spec(cfg), at::kCPU, at::kFloat);
  EXPECT_FALSE(at::equal(emb, wc.get("gpt_model.model_llama.tok_embeddings.weight")));
  EXPECT_THROW(write_random_model(cfg, model_spec(cfg), c.str() + "/m", opt), Error);
}

TEST(Runtime, ParsesDevicesAndDtypes) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_THROW(parse_device("tpu"), Error);
  EXPECT_THROW(parse_device(""), Error);
  if (!at::hasCUDA()) EXPECT_THROW(parse_device("cuda"), Error);
  EXPECT_EQ(parse_dtype("bf16"), at::kBFloat16);
  EXPECT_EQ(parse_dtype("float32"), at::kFloat);
  EXPECT_THROW(parse_dtype("int8"), Error);
  set_threads(0);
  EXPECT_EQ(at::get_num_threads(), available_cores());
  set_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
}

TEST(Runtime, MemoryBudgetNamesBothNumbers) {
  EXPECT_GT(available_memory_bytes(), 0u);
  EXPECT_NO_THROW(check_memory_budget(1, 2, "x"));
  EXPECT_NO_THROW(check_memory_budget(5, 0, "x"));  // unknown: not refused
  std::string msg = error_of([] { check_memory_budget(28ull << 30, 20ull << 30, "loading model"); });
  EXPECT_NE(msg.find("loading model needs about 28.00 GiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("only 20.00 GiB"), std::string::npos) << msg;
}

// The declarations at the released sizes: LLaMA-2-7B's published parameter count, and the
// quantizable matrices (the decoder layers' 7 projections, docs/kernels.md) hold 86 % of the model.
TEST(ModelSpec, ReleasedSizesMatchThePublishedCountsAndTheQuantizationPolicy) {
  const ModelConfig cfg = ModelConfig::released();
  ModelSpec decoder_only;
  decoder::Llama(cfg.llama, nn::Scope::declaring(decoder_only));
  uint64_t decoder_params = 0;
  for (const auto& t : decoder_only.tensors) decoder_params += uint64_t(c10::multiply_integers(t.shape));
  const uint64_t lora = uint64_t(cfg.llama.n_layers) * 4 * 2 * cfg.llama.dim * cfg.llama.lora_r;
  EXPECT_EQ(decoder_params - lora, 6738415616ull);  // LLaMA-2-7B

  uint64_t all = 0, quantizable = 0;
  int quantizable_tensors = 0;
  std::set<std::string> names;
  for (const auto& t : model_spec(cfg).tensors) {
    const uint64_t n = uint64_t(c10::multiply_integers(t.shape));
    all += n;
    if (t.quantizable) {
      quantizable += n;
      ++quantizable_tensors;
      EXPECT_EQ(t.shape.size(), 2u) << t.name;
    }
    EXPECT_TRUE(names.insert(t.name).second) << t.name << " declared twice";
  }
  EXPECT_EQ(quantizable_tensors, 7 * cfg.llama.n_layers);
  EXPECT_GT(double(quantizable) / double(all), 0.85);
}
