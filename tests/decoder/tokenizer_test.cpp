// Tokenizer, prompt layout (docs/model.md §6) and streaming text.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "decoder_fixtures.h"
#include "wavllm/core/error.h"
#include "wavllm/decoder/text_stream.h"

namespace {

using namespace wavllm;
using namespace wavllm::test;
using decoder::Tokenizer;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t j = 1; j < len; ++j)
      if ((static_cast<unsigned char>(s[i + j]) >> 6) != 0x2) return false;
    i += len;
  }
  return true;
}

TEST(Tokenizer, MissingFileIsAnErrorNamingIt) {
  try {
    Tokenizer::load("/nonexistent/tokenizer.model");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.model"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, CorruptFileIsAnErrorNamingIt) {
  const auto path = std::filesystem::temp_directory_path() / "wavllm_corrupt_tokenizer.model";
  std::ofstream(path) << "this is not a sentencepiece model";
  try {
    Tokenizer::load(path.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Tokenizer, OutOfRangeIdIsAnError) {
  EXPECT_THROW(demo().tok.decode({5, 512}), Error);
  EXPECT_THROW(demo().tok.decode({-1}), Error);
  EXPECT_THROW(demo().tok.id_to_piece(100000), Error);
}

TEST(Prompt, MatchesRealLlamaTokenizer) {
  const std::string path = shared_data("tokenizer.model");
  WAVLLM_SKIP_WITHOUT_SHARED(path);
  const Tokenizer tok = Tokenizer::load(path);
  EXPECT_EQ(tok.vocab_size(), 32000);
  const auto ref = read_json(fixture("prompt_ids.json"));
  const std::string system = ModelConfig::released().system_prompt;
  ASSERT_FALSE(ref.at("_prompts").empty());
  for (const auto& [task, instruction] : ref.at("_prompts").items()) {
    const auto p = decoder::build_prompt(tok, system, instruction.get<std::string>(), tok.bos_id());
    EXPECT_EQ(p.left, ref.at(task).at("left").get<std::vector<int64_t>>()) << task;
    EXPECT_EQ(p.right, ref.at(task).at("right").get<std::vector<int64_t>>()) << task;
    EXPECT_EQ(p.orig, ref.at(task).at("orig").get<std::vector<int64_t>>()) << task;
    EXPECT_EQ(p.right.front(), 29871) << task;  // the lone "▁"
  }
}

TEST(Prompt, MatchesEveryStageFixture) {
  const auto& d = demo();
  const auto cases = stage_cases();
  ASSERT_FALSE(cases.empty());
  for (const auto& name : cases) {
    const auto s = stage_inputs(name);
    const auto p = decoder::build_prompt(d.tok, d.cfg.system_prompt, s.instruction, d.cfg.tokens.bos);
    EXPECT_EQ(p.left, s.prompt.left) << name;
    EXPECT_EQ(p.right, s.prompt.right) << name;
    EXPECT_EQ(p.orig, s.prompt.orig) << name;
  }
}

// The reference's SQQA manifest has items with an empty prompt: the layout still holds.
TEST(Prompt, EmptyInstructionKeepsTheLayout) {
  const auto p = decoder::build_prompt(demo().tok, "system", "", 1);
  EXPECT_EQ(p.right, demo().tok.encode(" </SPEECH>  [/INST]"));
  EXPECT_EQ(p.orig, demo().tok.encode("\"\""));
  EXPECT_FALSE(p.orig.empty());
  EXPECT_EQ(p.left, decoder::build_prompt(demo().tok, "system", "x", 1).left);
}

TEST(Tokenizer, DecodesTheReferenceTexts) {
  const auto cases = read_json(fixture("cases.json"));
  for (const auto& [name, c] : cases.items())
    EXPECT_EQ(demo().tok.decode(c.at("generated_ids").get<std::vector<int64_t>>()), c.at("text").get<std::string>())
        << name;
}

// Characters outside the tiny vocabulary come out as byte-fallback pieces: a stream must hold
// them until each character is complete, and end with exactly the decoded text.
TEST(TextStream, HandsOutWholeUtf8CharactersOnly) {
  const auto& tok = demo().tok;
  const std::string text = "the caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 ok";  // é, €, 😀
  const auto ids = tok.encode(text);
  int byte_pieces = 0;
  for (auto id : ids) byte_pieces += tok.byte_value(id) >= 0;
  ASSERT_GE(byte_pieces, 9) << "the test needs byte-fallback pieces";
  decoder::TextStream stream(tok);
  std::vector<int64_t> seen;
  std::string streamed;
  for (auto id : ids) {
    seen.push_back(id);
    const std::string piece = stream.push(seen);
    EXPECT_TRUE(valid_utf8(piece)) << "piece after " << seen.size() << " ids";
    streamed += piece;
  }
  std::string rest;
  EXPECT_EQ(stream.finish(ids, rest), tok.decode(ids));
  EXPECT_EQ(streamed + rest, tok.decode(ids));
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(TextStream, HoldsIncompleteCharacterUntilItCompletes) {
  const auto& tok = demo().tok;
  const auto ids = tok.encode("\xe2\x82\xac");  // €: three byte pieces after the dummy prefix
  ASSERT_GE(ids.size(), 3u);
  const size_t n = ids.size();
  EXPECT_EQ(decoder::TextStream::complete_prefix(tok, {ids.begin(), ids.end() - 1}), n - 3);
  EXPECT_EQ(decoder::TextStream::complete_prefix(tok, {ids.begin(), ids.end() - 2}), n - 3);
  EXPECT_EQ(decoder::TextStream::complete_prefix(tok, ids), n);
}

TEST(TextStream, CutsAtStopStringAndHoldsItsPossibleStart) {
  const auto& tok = demo().tok;
  const auto ids = tok.encode("one two three four");
  decoder::TextStream stream(tok, {"three", "xyz"});
  std::vector<int64_t> seen;
  std::string streamed;
  for (auto id : ids) {
    seen.push_back(id);
    streamed += stream.push(seen);
    // Never hand out text that a stop string could still claim.
    EXPECT_EQ(streamed.find("thr"), std::string::npos);
    if (stream.stopped()) break;
  }
  EXPECT_TRUE(stream.stopped());
  std::string rest;
  EXPECT_EQ(stream.finish(seen, rest), "one two ");
  EXPECT_EQ(streamed + rest, "one two ");
}

}  // namespace

namespace {

std::string tiny_tokenizer_bytes() {
  std::ifstream in(fixture("tiny/tokenizer.model"), std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string load_error(const std::string& bytes, const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path, std::ios::binary) << bytes;
  std::string msg;
  try {
    Tokenizer::load(path.string());
  } catch (const Error& e) {
    msg = e.what();
  }
  std::filesystem::remove(path);
  return msg;
}

}  // namespace

// Found by fuzz_tokenizer (fuzz/regressions/tokenizer): a byte piece "<0x-6>" passed a sscanf
// "%2X" check and indexed far outside the byte table.
TEST(Tokenizer, MalformedBytePieceIsAnError) {
  std::string bytes = tiny_tokenizer_bytes();
  const size_t at = bytes.find("<0x41>");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 6, "<0x-6>");
  EXPECT_NE(load_error(bytes, "wavllm_bad_byte_piece.model").find("bad byte piece <0x-6>"), std::string::npos);
}

// A tokenizer.model whose "</s>" is a NORMAL piece, or whose trainer spec names another EOS
// piece, had eos_id -1: decoding then wrote one float before the logits (heap corruption).
TEST(Tokenizer, MissingEndOfSequencePieceIsRefusedAtLoad) {
  std::string bytes = tiny_tokenizer_bytes();
  const size_t at = bytes.find(std::string("\x0a\x04</s>", 6));
  ASSERT_NE(at, std::string::npos);
  const size_t type = at + 6 + 5;  // after the piece text and its float score: field 3 (type)
  ASSERT_EQ(bytes.substr(type, 2), std::string("\x18\x03", 2));
  std::string normal = bytes;
  normal[type + 1] = '\x01';
  EXPECT_NE(load_error(normal, "wavllm_eos_normal.model").find("end-of-sequence piece '</s>' is not a CONTROL piece"),
            std::string::npos);
  // A second TrainerSpec (field 2) whose eos_piece (field 47) names a piece that does not exist.
  const std::string renamed = bytes + std::string("\x12\x08\xfa\x02\x05<eos>", 10);
  EXPECT_NE(load_error(renamed, "wavllm_eos_renamed.model").find("'<eos>' is not a CONTROL piece"), std::string::npos);
  // Special files never block the load.
  const auto fifo = std::filesystem::temp_directory_path() / "wavllm_tokenizer.fifo";
  std::filesystem::remove(fifo);
  wavllm::test::make_fifo(fifo.string());
  try {
    Tokenizer::load(fifo.string());
    ADD_FAILURE() << "a FIFO was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FIFO"), std::string::npos) << e.what();
  }
  std::filesystem::remove(fifo);
}
