// The CLI's argument and manifest parsers as units.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "args.h"
#include "manifest.h"
#include "test_util.h"

namespace {

using namespace wavllm;
using namespace wavllm::cli;

const std::vector<OptionSpec> kSpecs = {{"model", "DIR", ""}, {"threads", "N", ""}, {"top-p", "P", ""}, {"json", "", ""}};

Args parse(std::vector<std::string> a) { return Args::parse(a, kSpecs); }

std::string usage_error(std::vector<std::string> a) {
  try {
    parse(std::move(a));
  } catch (const ArgumentError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Args, ValuesFlagsAndPositionals) {
  const Args a = parse({"a.wav", "--model", "m", "--threads=3", "--json", "b.wav", "--", "--c.wav"});
  EXPECT_EQ(a.value("model"), "m");
  EXPECT_EQ(a.integer("threads", 0, 10), 3);
  EXPECT_TRUE(a.flag("json"));
  EXPECT_FALSE(a.help());
  EXPECT_FALSE(a.value("top-p").has_value());
  EXPECT_EQ(a.positional(), (std::vector<std::string>{"a.wav", "b.wav", "--c.wav"}));
  EXPECT_TRUE(parse({"x", "-h"}).help());
  EXPECT_EQ(parse({"-"}).positional(), std::vector<std::string>{"-"});
}

TEST(Args, MistakesNameTheOption) {
  EXPECT_NE(usage_error({"--bogus"}).find("--bogus"), std::string::npos);
  EXPECT_NE(usage_error({"-x"}).find("-x"), std::string::npos);
  EXPECT_NE(usage_error({"--model"}).find("--model needs a value"), std::string::npos);
  EXPECT_NE(usage_error({"--json=1"}).find("--json takes no value"), std::string::npos);
  auto bad_number = [](const std::string& opt, const std::string& v) {
    try {
      const Args a = parse({"--" + opt, v});
      if (opt == "threads") a.integer(opt, 0, 10);
      else a.number(opt, 0, 1);
    } catch (const ArgumentError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(bad_number("threads", "3x").find("--threads: '3x' is not an integer"), std::string::npos);
  EXPECT_NE(bad_number("threads", "").find("--threads"), std::string::npos);
  EXPECT_NE(bad_number("threads", "11").find("outside [0, 10]"), std::string::npos);
  EXPECT_NE(bad_number("threads", "99999999999999999999").find("not an integer"), std::string::npos);
  EXPECT_NE(bad_number("top-p", "nan").find("--top-p"), std::string::npos);
  EXPECT_NE(bad_number("top-p", "1.5").find("outside [0, 1]"), std::string::npos);
  EXPECT_EQ(bad_number("top-p", "0.25"), "(no error)");
}

TEST(Args, HelpListsEveryOption) {
  const std::string h = options_help(kSpecs);
  for (const auto& s : kSpecs) EXPECT_NE(h.find("--" + s.name), std::string::npos) << s.name;
  EXPECT_NE(h.find("--model DIR"), std::string::npos);
}

std::string manifest_error(const std::string& text) {
  try {
    parse_manifest(text, "m.tsv");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Manifest, ColumnsByNameInAnyOrder) {
  const auto items = parse_manifest(
      "id\taudio\tn_frames\ttgt_text\tprompt\twith_speech\r\n"
      "a\tx/a.flac\t34560\tSie wird.\tTranslate the audio clip into German.\tTrue\r\n"
      "\r\n"
      "b\tb.wav\t0\t\t\tfalse\n",
      "m.tsv");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].id, "a");
  EXPECT_EQ(items[0].audio, "x/a.flac");
  EXPECT_EQ(items[0].n_frames, 34560);
  EXPECT_EQ(items[0].tgt_text, "Sie wird.");
  EXPECT_EQ(items[0].prompt, "Translate the audio clip into German.");
  EXPECT_TRUE(items[0].with_speech);
  EXPECT_EQ(items[0].line, 2u);
  EXPECT_EQ(items[1].line, 4u);
  EXPECT_FALSE(items[1].with_speech);
  EXPECT_EQ(items[1].prompt, "");

  const auto minimal = parse_manifest("audio\tid\nf.wav\t7", "m.tsv");
  ASSERT_EQ(minimal.size(), 1u);
  EXPECT_EQ(minimal[0].id, "7");
  EXPECT_EQ(minimal[0].n_frames, -1);
}

TEST(Manifest, ErrorsNameTheLineAndTheProblem) {
  EXPECT_NE(manifest_error("").find("empty manifest"), std::string::npos);
  EXPECT_NE(manifest_error("id\tpath\n").find("no 'audio' column"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\tid\n").find("'id' appears twice"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\na\tx\tEXTRA\n").find("line 2: 3 tab-separated fields, the header has 2"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\na\n").find("line 2: 1 tab"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\n\tx\n").find("line 2: empty id"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\na\tx\na\ty\n").find("line 3: id 'a' appears twice"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\na\t\n").find("empty audio"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\tn_frames\na\tx\t-5\n").find("n_frames '-5'"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\tn_frames\na\tx\t99999999999999999999999\n").find("n_frames"), std::string::npos);
  EXPECT_NE(manifest_error("id\taudio\twith_speech\na\tx\tmaybe\n").find("with_speech 'maybe'"), std::string::npos);
}

TEST(Manifest, ParsesEveryReferenceManifest) {
  const std::string dir = wavllm::test::shared_data("wavllm_test_data");
  WAVLLM_SKIP_WITHOUT_SHARED(dir);
  for (const char* name : {"asr.tsv", "en2de.tsv", "SQA.tsv", "SQQA.tsv", "emo.tsv", "CoT-task.tsv", "gaokao.tsv"}) {
    std::ifstream in(dir + "/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    const auto items = parse_manifest(ss.str(), name);
    EXPECT_FALSE(items.empty()) << name;
    for (const auto& it : items) EXPECT_GT(it.n_frames, 0) << name << " " << it.id;
    if (std::string(name) == "gaokao.tsv") EXPECT_EQ(items.size(), 2000u);
  }
}

TEST(Shard, ParsesAndSplitsDisjointly) {
  EXPECT_EQ(parse_shard("1/3").index, 1);
  EXPECT_EQ(parse_shard("1/3").count, 3);
  for (const char* bad : {"3/3", "1", "/3", "1/0", "-1/3", "a/b", "1/3/4", ""}) EXPECT_THROW(parse_shard(bad), Error) << bad;
  std::vector<ManifestItem> items(7);
  for (size_t i = 0; i < items.size(); ++i) items[i].id = std::to_string(i);
  std::vector<std::string> seen;
  for (int64_t s = 0; s < 3; ++s)
    for (const auto& it : select_shard(items, {s, 3})) seen.push_back(it.id);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"}));
  EXPECT_EQ(select_shard(items, {2, 3}).size(), 2u);
}

}  // namespace
