#include "wavllm/core/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "wavllm/core/error.h"

namespace fs = std::filesystem;
using wavllm::Error;
using namespace wavllm::st;
using wavllm::test::TempDir;

namespace {

std::string tiny_model() { return wavllm::test::fixture("tiny/model.safetensors"); }

std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + std::string(data_bytes, '\x01');
}

void expect_rejected(const std::string& bytes, const std::string& needle) {
  try {
    File::from_bytes(bytes.data(), bytes.size(), "bad.safetensors");
    FAIL() << "accepted a malformed file; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Safetensors, ReadsTinyModelNamesShapesValues) {
  auto f = File::open(tiny_model());
  EXPECT_EQ(f->tensors().size(), 186u);
  EXPECT_EQ(f->metadata().at("format"), "wavllm-checkpoint-names");
  const auto& conv = f->info("audio_encoder.model.conv1.weight");
  EXPECT_EQ(conv.dtype, DType::F32);
  EXPECT_EQ(conv.shape, (std::vector<int64_t>{64, 80, 3}));
  // Values read independently with numpy from the same file.
  auto norm = f->read_f32("gpt_model.model_llama.norm.weight");
  ASSERT_EQ(norm.size(), 64u);
  EXPECT_FLOAT_EQ(norm[0], 0.965734601020813f);
  EXPECT_FLOAT_EQ(norm[2], 0.9674176573753357f);
  double sum = 0;
  for (float v : f->read_f32("gpt_model.model_llama.output.weight")) sum += v;
  EXPECT_NEAR(sum, -24.145069122314453, 1e-3);
  auto ow = f->read_f32("wavlm_encoder.output_weights");
  EXPECT_EQ(ow, (std::vector<float>{0.7954891324043274f, 0.07864826172590256f, -0.2638559639453888f, ow[3]}));
  EXPECT_THROW(f->info("no.such.tensor"), Error);
}

TEST(Safetensors, ReadsIntegerFixtureTensors) {
  auto f = File::open(wavllm::test::fixture("stages/story_st.safetensors"));
  auto ids = f->read_i64("generated_ids");
  EXPECT_EQ(ids, (std::vector<int64_t>{358, 13, 76, 282, 109, 148, 396, 464, 172, 69}));
  EXPECT_THROW(f->read_i64("audio_embeds"), Error);  // F32 is not an integer type
}

TEST(Safetensors, WriterRoundTripAllDtypes) {
  TempDir tmp;
  const std::string path = tmp.file("rt.safetensors");
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -8.5f};
  std::vector<uint16_t> bf = {0x3fc0, 0xc000};  // 1.5, -2.0 in bfloat16
  std::vector<uint16_t> hf = {0x3e00, 0xc000};  // 1.5, -2.0 in float16
  std::vector<int64_t> ids = {1, 2, 3};
  {
    Writer w(path, {{"a", DType::F32, {2, 3}}, {"bf", DType::BF16, {2}}, {"hf", DType::F16, {2}}, {"ids", DType::I64, {3}}, {"empty", DType::F32, {0}}},
             {{"k", "v"}});
    w.write("a", a.data(), a.size() * 4);
    w.write("bf", bf.data(), 4);
    w.write("hf", hf.data(), 4);
    w.write("ids", ids.data(), 24);
    w.write("empty", nullptr, 0);
    w.close();
  }
  auto f = File::open(path);
  EXPECT_EQ(f->metadata().at("k"), "v");
  EXPECT_EQ(f->read_f32("a"), a);
  EXPECT_EQ(f->read_f32("bf"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f->read_f32("hf"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f->read_i64("ids"), ids);
  EXPECT_EQ(f->info("empty").numel(), 0);
  // The data section starts 8-byte aligned, so F32/I64 tensors can be viewed in place.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data(f->info("ids"))) % 8, 0u);
}

TEST(Safetensors, WriterRejectsMisuse) {
  TempDir tmp;
  EXPECT_THROW(Writer(tmp.file("d.safetensors"), {{"x", DType::F32, {1}}, {"x", DType::F32, {1}}}), Error);
  Writer w(tmp.file("w.safetensors"), {{"x", DType::F32, {2}}, {"y", DType::F32, {1}}});
  float v[2] = {1, 2};
  EXPECT_THROW(w.write("y", v, 4), Error);      // out of order
  EXPECT_THROW(w.write("x", v, 4), Error);      // wrong byte count
  w.write("x", v, 8);
  EXPECT_THROW(w.close(), Error);               // y never written
  EXPECT_THROW(Writer("/nonexistent-dir/x.safetensors", {}), Error);
}

TEST(Safetensors, RejectsCorruptFiles) {
  using nlohmann::json;
  auto entry = [](const char* dtype, std::vector<int> shape, uint64_t b, uint64_t e) {
    return json{{"dtype", dtype}, {"shape", shape}, {"data_offsets", {b, e}}};
  };
  expect_rejected("", "shorter than the 8-byte header");
  expect_rejected(std::string("\x05\x00\x00", 3), "shorter than the 8-byte header");
  {
    std::string s(8, '\0');
    uint64_t n = 1000;
    std::memcpy(s.data(), &n, 8);
    expect_rejected(s + "{}", "larger than the file");
  }
  {
    std::string s(8, '\xff');
    expect_rejected(s + "{}", "absurd");
  }
  expect_rejected(raw_file("{not json", 0), "not valid JSON");
  expect_rejected(raw_file("[1,2]", 0), "not a JSON object");
  expect_rejected(raw_file(json{{"t", entry("F32", {2}, 0, 16)}}.dump(), 8), "past the end of the data");
  expect_rejected(raw_file(json{{"t", entry("F32", {3}, 0, 8)}}.dump(), 8), "does not match");
  expect_rejected(raw_file(json{{"t", entry("Q4", {2}, 0, 8)}}.dump(), 8), "unknown safetensors dtype");
  expect_rejected(raw_file(json{{"a", entry("F32", {2}, 0, 8)}, {"b", entry("F32", {2}, 4, 12)}}.dump(), 12), "overlap");
  expect_rejected(raw_file(json{{"t", entry("F32", {2}, 8, 0)}}.dump(), 8), "reversed");
  expect_rejected(raw_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "negative");
  expect_rejected(raw_file(R"({"t":{"dtype":"F32","shape":[2]}})", 8), "data_offsets");
  expect_rejected(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
                  "duplicate name");
  expect_rejected(raw_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8), "absurdly large");
  expect_rejected(raw_file(R"({"__metadata__":{"k":1}})", 0), "not a string");
}

TEST(Safetensors, RejectsTruncatedTinyModel) {
  std::ifstream in(tiny_model(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t keep : {size_t(4), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    std::string cut = bytes.substr(0, keep);
    EXPECT_THROW(File::from_bytes(cut.data(), cut.size(), "cut"), Error) << keep;
  }
}

TEST(Safetensors, OpenReportsMissingAndDirectories) {
  TempDir tmp;
  EXPECT_THROW(File::open(tmp.file("absent.safetensors")), Error);
  EXPECT_THROW(File::open(tmp.file("")), Error);
  std::ofstream(tmp.file("empty.safetensors")).close();
  EXPECT_THROW(File::open(tmp.file("empty.safetensors")), Error);
}

TEST(Safetensors, ShardSetFromIndexAndDirectory) {
  TempDir tmp;
  float one = 1, two = 2;
  {
    Writer a(tmp.file("model-00001-of-00002.safetensors"), {{"x", DType::F32, {1}}});
    a.write("x", &one, 4);
    a.close();
    Writer b(tmp.file("model-00002-of-00002.safetensors"), {{"y", DType::F32, {1}}});
    b.write("y", &two, 4);
    b.close();
  }
  auto set = ShardSet::open(tmp.str());
  EXPECT_EQ(set.tensors().size(), 2u);
  std::ofstream(tmp.file("model.safetensors.index.json"))
      << R"({"metadata":{},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})";
  auto indexed = ShardSet::open(tmp.str());
  EXPECT_TRUE(indexed.contains("x"));
  EXPECT_TRUE(indexed.contains("y"));
  std::ofstream(tmp.file("model.safetensors.index.json")) << R"({"weight_map":{"x":"../../etc/passwd"}})";
  EXPECT_THROW(ShardSet::open(tmp.str()), Error);
  std::ofstream(tmp.file("model.safetensors.index.json")) << R"({"weight_map":{"x":"model-00002-of-00002.safetensors"}})";
  EXPECT_THROW(ShardSet::open(tmp.str()), Error);
  std::ofstream(tmp.file("model.safetensors.index.json")) << "{oops";
  EXPECT_THROW(ShardSet::open(tmp.str()), Error);
}

TEST(Safetensors, ShardSetRejectsDuplicateAcrossShards) {
  TempDir tmp;
  float one = 1;
  for (const char* n : {"model-a.safetensors", "model-b.safetensors"}) {
    Writer w(tmp.file(n), {{"x", DType::F32, {1}}});
    w.write("x", &one, 4);
    w.close();
  }
  try {
    ShardSet::open(tmp.str());
    FAIL() << "duplicate accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
}
