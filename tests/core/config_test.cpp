#include "wavllm/core/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "wavllm/core/error.h"

using wavllm::Error;
using wavllm::ModelConfig;
using json = nlohmann::json;

namespace {

std::string demo_config() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo/config.json"; }

void expect_error(const std::string& text, const std::string& needle) {
  try {
    ModelConfig::from_json_text(text, "cfg.json");
    FAIL() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

json demo_json() { return json::parse(ModelConfig::load(demo_config()).to_json_text()); }

}  // namespace

TEST(Config, LoadsDemoModelMatchingTinyHparams) {
  ModelConfig c = ModelConfig::load(demo_config());
  EXPECT_EQ(c.whisper.d_model, 64);
  EXPECT_EQ(c.whisper.encoder_layers, 2);
  EXPECT_EQ(c.wavlm.conv_dim.size(), 7u);
  EXPECT_EQ(c.wavlm.hidden_size, 48);
  EXPECT_EQ(c.adapter.sub_out, 40);
  EXPECT_EQ(c.llama.dim, 64);
  EXPECT_EQ(c.llama.ffn_dim, 192);
  EXPECT_EQ(c.llama.max_positions(), 2048);
  EXPECT_DOUBLE_EQ(c.llama.norm_eps, 1e-6);
}

TEST(Config, RoundTripIsExact) {
  ModelConfig c = ModelConfig::load(demo_config());
  c.generation.temperature = 0.5;
  c.llama.lora_r = 7;
  c.system_prompt = "custom \"quoted\"\nsystem";
  ModelConfig back = ModelConfig::from_json_text(c.to_json_text(), "round trip");
  EXPECT_EQ(back.to_json_text(), c.to_json_text());
  EXPECT_EQ(back.system_prompt, c.system_prompt);
  EXPECT_EQ(back.llama.lora_r, 7);
  EXPECT_DOUBLE_EQ(back.generation.temperature, 0.5);
}

TEST(Config, ReleasedSizesAreWavLLM) {
  ModelConfig r = ModelConfig::released();
  r.validate("released");
  EXPECT_EQ(r.whisper.d_model, 1280);
  EXPECT_EQ(r.whisper.encoder_layers, 32);
  EXPECT_EQ(r.wavlm.hidden_size, 768);
  EXPECT_EQ(r.llama.dim, 4096);
  EXPECT_EQ(r.llama.ffn_dim, 11008);
  EXPECT_EQ(wavllm::LlamaConfig::derive_ffn_dim(4096, 256), 11008);
}

TEST(Config, FfnDimDerivedWhenAbsent) {
  json j = demo_json();
  j["llama"].erase("ffn_dim");
  EXPECT_EQ(ModelConfig::from_json_text(j.dump(), "x").llama.ffn_dim, 192);
}

TEST(Config, RejectsBadConfigs) {
  expect_error("{", "not valid JSON");
  expect_error("[]", "must be a JSON object");
  json j = demo_json();
  auto with = [&](auto edit) {
    json k = j;
    edit(k);
    return k.dump();
  };
  expect_error(with([](json& k) { k.erase("format_version"); }), "format_version");
  expect_error(with([](json& k) { k["format_version"] = 99; }), "not supported");
  expect_error(with([](json& k) { k["extra"] = 1; }), "unknown key \"extra\"");
  expect_error(with([](json& k) { k["llama"]["dimm"] = 1; }), "unknown key \"dimm\"");
  expect_error(with([](json& k) { k.erase("whisper"); }), "missing section \"whisper\"");
  expect_error(with([](json& k) { k["llama"]["dim"] = "64"; }), "llama.dim has the wrong type");
  expect_error(with([](json& k) { k["llama"]["dim"] = -64; }), "llama.dim must be positive");
  expect_error(with([](json& k) { k["llama"]["n_heads"] = 5; }), "llama.dim / n_heads");
  expect_error(with([](json& k) { k["wavlm"]["conv_kernel"] = {10, 3}; }), "equal length");
  expect_error(with([](json& k) { k["wavlm"]["num_buckets"] = 30; }), "num_buckets");
  expect_error(with([](json& k) { k["tokens"]["eos"] = 100000; }), "outside the vocabulary");
  expect_error(with([](json& k) { k["generation"]["temperature"] = -1; }), "temperature");
  expect_error(with([](json& k) { k["generation"]["top_p"] = 0; }), "top_p");
  expect_error(with([](json& k) { k["adapter"]["whisper_sub_mid"] = 63; }), "even");
  expect_error(with([](json& k) { k["model_type"] = "llama"; }), "model_type");
}

TEST(Config, LoadReportsMissingFile) {
  try {
    ModelConfig::load("/nonexistent/model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

// Found by fuzz_config: a number too large for int was converted with undefined behaviour.
TEST(Config, RejectsOutOfRangeNumbers) {
  json j = demo_json();
  auto with = [&](auto edit) {
    json k = j;
    edit(k);
    return k.dump();
  };
  expect_error(with([](json& k) { k["wavlm"]["conv_kernel"][0] = 1e30; }), "wavlm.conv_kernel has the wrong type or is out of range");
  expect_error(with([](json& k) { k["llama"]["dim"] = 1ull << 40; }), "llama.dim has the wrong type or is out of range");
  expect_error(with([](json& k) { k["llama"]["dim"] = -(1ll << 40); }), "out of range");
  expect_error(with([](json& k) { k["llama"]["dim"] = 64.5; }), "llama.dim");
  expect_error(with([](json& k) { k["format_version"] = 1e30; }), "format_version");
  expect_error(with([](json& k) { k["llama"]["dim"] = 2000000000; }), "absurdly large");
  expect_error(with([](json& k) { k["tokens"]["bos"] = "1"; }), "tokens.bos");
  expect_error(with([](json& k) { k["wavlm"]["do_normalize"] = 1; }), "wavlm.do_normalize");
}
