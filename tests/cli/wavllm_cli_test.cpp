// The `wavllm` command line: exit codes, messages, --json, batch (broken item, resume, shards).
// Most tests run the subcommands in-process (a process start costs LibTorch's initialisation);
// a few run the built executable itself.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_test_util.h"
#include "commands.h"
#include "wavllm/pipeline/model.h"
#include "wavllm/core/safetensors.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using wavllm::test::audio;
using wavllm::test::demo_dir;
using wavllm::test::kWavllm;
using wavllm::test::Outcome;
using wavllm::test::read_file;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("WAVLLM_MODEL");
    dir_ = fs::temp_directory_path() /
           ("wavllm_cli_test_" + std::to_string(getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `wavllm ARGS...` in this process.
  Outcome run(const std::vector<std::string>& args) const {
    std::vector<std::string> storage = {"wavllm"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    Outcome r;
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    r.status = wavllm::cli::run_main(int(storage.size()), argv.data());
    std::fflush(stdout);
    r.out = ::testing::internal::GetCapturedStdout();
    r.err = ::testing::internal::GetCapturedStderr();
    return r;
  }

  // The built executable; arguments are single-quoted for the shell (none holds a quote).
  Outcome run_process(const std::vector<std::string>& args) const {
    std::string cmd = "env -u WAVLLM_MODEL '" + kWavllm + "'";
    for (const auto& a : args) cmd += " '" + a + "'";
    return wavllm::test::run_shell(cmd, dir_ / "stderr.txt");
  }

  std::vector<json> jsonl(const fs::path& p) const {
    std::vector<json> v;
    std::istringstream in(read_file(p));
    std::string line;
    while (std::getline(in, line)) v.push_back(json::parse(line));
    return v;
  }

  fs::path dir_;
};

int count_lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

TEST_F(Cli, HelpEverywhere) {
  Outcome r = run({"--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* c : {"transcribe", "translate", "ask", "verify-speaker", "emotion", "run", "batch", "spec",
                        "make-random-model", "convert"})
    EXPECT_NE(r.out.find(c), std::string::npos) << c;
  for (const char* c : {"transcribe", "translate", "ask", "verify-speaker", "emotion", "run", "batch", "spec",
                        "make-random-model"}) {
    r = run({c, "--help"});
    EXPECT_EQ(r.status, 0) << c;
    EXPECT_NE(r.out.find(std::string("usage: wavllm ") + c), std::string::npos) << c;
  }
  EXPECT_NE(run({"batch", "--help"}).out.find("--shard I/N"), std::string::npos);
}

TEST_F(Cli, UsageMistakesExitTwoWithOneLineNamingTheOption) {
  const std::string m = demo_dir();
  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Bad> cases = {
      {{}, "usage: wavllm"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"transcribe", "--bogus", "a.wav"}, "unknown option --bogus"},
      {{"transcribe", "--model"}, "--model needs a value"},
      {{"transcribe", "--model", m, "--threads", "two", "a.wav"}, "--threads: 'two' is not an integer"},
      {{"transcribe", "--model", m, "--temperature", "-1", "a.wav"}, "--temperature"},
      {{"transcribe", "--model", m}, "needs at least one audio file"},
      {{"transcribe", "--model", m, "--dtype", "float64", audio("plants.wav")}, "--dtype: unknown dtype 'float64'"},
      {{"transcribe", audio("plants.wav")}, "--model"},
      {{"translate", "--model", m, audio("plants.wav")}, "--to"},
      {{"translate", "--model", m, "--to", "Klingon", audio("plants.wav")}, "Klingon"},
      {{"run", "--model", m, audio("plants.wav")}, "--prompt"},
      {{"batch", "--model", m, "x.tsv"}, "--out"},
      {{"batch", "--model", m, "--out", "o.jsonl", "--shard", "2/2", "x.tsv"}, "--shard"},
  };
  for (const auto& c : cases) {
    const Outcome r = run(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.status, 2) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << joined << "\n" << r.err;
    if (!c.args.empty()) {
      EXPECT_EQ(count_lines(r.err), 1) << joined << "\n" << r.err;
      EXPECT_EQ(r.err.rfind("wavllm: error: ", 0), 0u) << r.err;
    }
  }
}

TEST_F(Cli, FailuresExitOneWithOneLine) {
  Outcome r = run({"transcribe", "--model", demo_dir(), (dir_ / "missing.wav").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing.wav"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wavllm: error: "), std::string::npos) << r.err;
  r = run({"batch", "--model", demo_dir(), "--out", (dir_ / "o.jsonl").string(), (dir_ / "none.tsv").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "wavllm: error: manifest " + (dir_ / "none.tsv").string() + ": no such file\n");
}

TEST_F(Cli, TheExecutableTranscribesAndReportsErrorsWithExitCodes) {
  // The demo model is the fixtures' model: greedy decoding gives the reference text (cut to
  // the fixture's 10 tokens).
  Outcome r = run_process({"transcribe", "--model", demo_dir(), "--max-new-tokens", "10", audio("plants.wav")});
  EXPECT_EQ(r.status, 0) << r.err;
  std::ifstream in(wavllm::test::fixture("cases.json"));
  const json cases = json::parse(in);
  EXPECT_EQ(r.out, cases["plants_asr"]["text"].get<std::string>() + "\n");
  EXPECT_NE(r.err.find("random weights"), std::string::npos) << r.err;
  r = run_process({"transcribe", "--bogus"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "wavllm: error: unknown option --bogus\n");
  r = run_process({"transcribe", "--model", (dir_ / "none").string(), audio("plants.wav")});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "wavllm: error: " + (dir_ / "none").string() + ": no such model directory\n");
}

TEST_F(Cli, JsonOutputParses) {
  const Outcome r = run({"ask", "--model", demo_dir(), "--json", "--max-new-tokens", "10", "--threads", "1",
                     "Where will the speakers go first? A. The museum; B. A cafe; C. The station.", audio("museum.wav"),
                     audio("short.wav")});
  EXPECT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<json> objs;
  while (std::getline(lines, line)) objs.push_back(json::parse(line));
  ASSERT_EQ(objs.size(), 2u);
  const json& j = objs[0];
  EXPECT_EQ(j["audio"], audio("museum.wav"));
  EXPECT_EQ(j["prompt"], "Where will the speakers go first? A. The museum; B. A cafe; C. The station.");
  EXPECT_EQ(j["token_ids"], json::parse("[434,109,246,368,142,284,94,284,94,211]"));
  EXPECT_GT(j["audio_seconds"].get<double>(), 9.0);
  EXPECT_GT(j["real_time_factor"].get<double>(), 0.0);
  for (const char* stage : {"audio", "frontend", "whisper", "wavlm", "adapters", "prompt_adapter", "prefill", "decode", "total"})
    EXPECT_TRUE(j["timings"].contains(stage)) << stage;
  // The pipeline times the file's decoding and computes the real-time factor from the total.
  EXPECT_GT(j["timings"]["audio"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["real_time_factor"].get<double>(),
                   j["timings"]["total"].get<double>() / j["audio_seconds"].get<double>());
  EXPECT_TRUE(objs[1]["text"].is_string());
}

TEST_F(Cli, BatchGoesOnAfterABrokenItemResumesAndShards) {
  fs::copy_file(audio("short.wav"), dir_ / "short.wav");
  fs::copy_file(audio("plants.wav"), dir_ / "plants.wav");
  { std::ofstream(dir_ / "broken.wav") << "RIFF not really a wave file"; }
  const fs::path manifest = dir_ / "m.tsv";
  {
    std::ofstream m(manifest);
    m << "id\taudio\tn_frames\tprompt\ttgt_text\twith_speech\n"
      << "a\tsub/dir/short.wav\t11246\tCan you describe the emotional condition of the speaker in the provided audio clip?\tsad\tTrue\n"
      << "b\tbroken.wav\t1\tIs there only one speaker in the audio clip?\tyes\tTrue\n"
      << "c\tplants.wav\t54355\tBased on the attached audio, generate a comprehensive text transcription of the spoken content.\tx\tTrue\n";
  }
  const fs::path out = dir_ / "out.jsonl";
  auto batch = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"batch", "--model", demo_dir(), "--max-new-tokens", "3", "--audio-dir", dir_.string(),
                                  "--out", out.string(), manifest.string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  // Shard 1/2 runs item b only: the broken file is reported and the batch exits 1.
  Outcome r = batch({"--shard", "1/2"});
  EXPECT_EQ(r.status, 1) << r.err;
  auto lines = jsonl(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["id"], "b");
  EXPECT_NE(lines[0]["error"].get<std::string>().find("broken.wav"), std::string::npos);

  // Simulate an interruption in the middle of a line: it is dropped and its item reruns.
  { std::ofstream(out, std::ios::app) << "{\"id\": \"c\", \"te"; }
  r = batch({});
  EXPECT_EQ(r.status, 1) << r.err;  // only a and c ran, both fine; b's failure stands
  EXPECT_NE(r.err.find("--retry-failed runs the 1 failed items again"), std::string::npos) << r.err;
  lines = jsonl(out);
  ASSERT_EQ(lines.size(), 3u);
  std::set<std::string> ids;
  for (const auto& j : lines) ids.insert(j["id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"a", "b", "c"}));
  for (const auto& j : lines) {
    if (j["id"] == "b") continue;
    EXPECT_FALSE(j.contains("error")) << j.dump();
    EXPECT_EQ(j["token_ids"].size(), 3u) << j.dump();
  }
  EXPECT_EQ(lines[1]["reference"], "sad");  // a: found by file name under the audio root

  // Everything answered: nothing runs, the output is unchanged.
  const std::string before = read_file(out);
  r = batch({});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(read_file(out), before);
  EXPECT_NE(r.err.find("2 done and 1 failed before in"), std::string::npos) << r.err;

  // --retry-failed reruns b (its file mended) and drops its error line: one line per id.
  fs::copy_file(audio("short.wav"), dir_ / "broken.wav", fs::copy_options::overwrite_existing);
  r = batch({"--retry-failed"});
  EXPECT_EQ(r.status, 0) << r.err;
  lines = jsonl(out);
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& j : lines) EXPECT_FALSE(j.contains("error")) << j.dump();
  EXPECT_EQ(lines[2]["id"], "b");
  r = batch({});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("3 done and 0 failed before in"), std::string::npos) << r.err;
}

TEST_F(Cli, DidYouMeanForMistypedCommandsAndOptions) {
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"transcibe", "a.wav"}, "unknown command 'transcibe' (did you mean transcribe?)"},
           {{"conver"}, "(did you mean convert?)"},
           {{"transcribe", "--beams", "2", "a.wav"}, "unknown option --beams (did you mean --num-beams?)"},
           {{"batch", "--audio-root", "x", "m.tsv"}, "unknown option --audio-root (did you mean --audio-dir?)"},
           {{"transcribe", "-model", "x", "a.wav"}, "unknown option -model (did you mean --model?)"},
           {{"transcribe", "--max-new-token", "3", "a.wav"}, "(did you mean --max-new-tokens?)"},
           {{"xyzzy"}, "unknown command 'xyzzy' (see wavllm --help)"}}) {
    const Outcome r = run(args);
    EXPECT_EQ(r.status, 2) << args[0];
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }
}

TEST_F(Cli, VersionInfoAndTasks) {
  Outcome r = run({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind(std::string("wavllm ") + WAVLLM_VERSION_FOR_TEST + " (LibTorch ", 0), 0u) << r.out;
  r = run({"tasks"});
  EXPECT_EQ(r.status, 0);
  for (const std::string& instruction : {wavllm::transcribe_instruction(), wavllm::emotion_instruction(),
                                         wavllm::speaker_verification_instruction(), wavllm::translate_instruction("German")})
    EXPECT_NE(r.out.find(instruction), std::string::npos) << instruction;
  r = run({"info", demo_dir()});
  EXPECT_EQ(r.status, 0) << r.err;
  // The demo model: 542,617 parameters, float32, 2048 positions; every figure is on its line.
  for (const char* says : {"stored dtype: float32 (loaded as float32 on cpu)", "quantization: none", "parameters:   542617",
                           "2048 decoder positions", "512 pieces, bos 1, eos 2", "(random weights)"})
    EXPECT_NE(r.out.find(says), std::string::npos) << says << "\n" << r.out;
  // The longest audio printed is what the context takes: a second more does not fit.
  const auto at = r.out.find("in one request: ");
  ASSERT_NE(at, std::string::npos);
  const double seconds = std::stod(r.out.substr(at + 16));
  const auto m = wavllm::Model::load(demo_dir());
  const auto ids = m->prompt_ids(wavllm::transcribe_instruction());
  const int64_t budget = m->config().llama.max_positions() - int64_t(ids.left.size() + ids.right.size());
  EXPECT_LE(m->audio_token_count(int64_t(seconds * 16000)), budget);
  EXPECT_GT(m->audio_token_count(int64_t((seconds + 1) * 16000)), budget);
  EXPECT_EQ(run({"info", demo_dir(), "--model", demo_dir()}).status, 2);
  // Quantized, the same parameters in fewer bytes.
  const std::string q4 = (dir_ / "q4").string();
  ASSERT_EQ(run({"quantize", demo_dir(), q4, "--type", "q4_0"}).status, 0);
  r = run({"info", q4});
  EXPECT_EQ(r.status, 0) << r.err;
  for (const char* says : {"quantization: q4_0 (the decoder layers' projections)", "parameters:   542617"})
    EXPECT_NE(r.out.find(says), std::string::npos) << says << "\n" << r.out;
}

TEST_F(Cli, NewcomerMistakesGetUsefulAnswers) {
  const std::string m = demo_dir(), a = audio("short.wav");
  // The question after the audio: the message shows the right order.
  Outcome r = run({"ask", "--model", m, a, "What is said?"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("ask takes the question first, then the audio files: wavllm ask \"What is said?\" " + a),
            std::string::npos) << r.err;
  // Audio paths are checked before the model loads (here a model that does not exist).
  r = run({"transcribe", "--model", (dir_ / "no-model").string(), a, (dir_ / "x.wav").string(), (dir_ / "y.wav").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("2 of 3 audio inputs cannot be read (nothing was run)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("x.wav: no such file"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("no-model"), std::string::npos) << r.err;
  // float16 is CUDA's: refused on CPU as a usage error, and the help says so.
  r = run({"transcribe", "--model", m, "--dtype", "fp16", a});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("option --dtype: dtype float16 runs on CUDA only"), std::string::npos) << r.err;
  EXPECT_NE(run({"transcribe", "--help"}).out.find("float16 (CUDA only)"), std::string::npos);
  // batch --out: a directory is refused before anything runs; - is standard output.
  const fs::path manifest = dir_ / "m.tsv";
  { std::ofstream(manifest) << "id\taudio\nx\tshort.wav\n"; }
  fs::copy_file(a, dir_ / "short.wav");
  r = run({"batch", "--model", m, "--audio-dir", dir_.string(), "--out", dir_.string(), manifest.string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("is a directory; batch writes one JSON-lines file"), std::string::npos) << r.err;
  const auto before = std::distance(fs::directory_iterator(dir_), fs::directory_iterator());
  r = run({"batch", "--model", m, "--audio-dir", dir_.string(), "--max-new-tokens", "2", "--out", "-", manifest.string()});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["id"], "x");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), before);  // no file named -
  EXPECT_FALSE(fs::exists("-"));
}

TEST_F(Cli, BatchOutputThatCannotBeWrittenFailsWithTheReason) {
  fs::copy_file(audio("short.wav"), dir_ / "short.wav");
  const fs::path manifest = dir_ / "m.tsv";
  { std::ofstream(manifest) << "id\taudio\nx\tshort.wav\n"; }
  auto batch = [&](const std::string& out) {
    return run({"batch", "--model", demo_dir(), "--max-new-tokens", "2", "--audio-dir", dir_.string(), "--out", out,
                manifest.string()});
  };
  Outcome r = batch((dir_ / "no/such/dir/out.jsonl").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("out.jsonl: cannot open for writing: No such file or directory"), std::string::npos) << r.err;
  if (fs::exists("/dev/full")) {  // every write to it fails with ENOSPC, like a full disk
    r = batch("/dev/full");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("/dev/full: write failed (disk full?): No space left on device"), std::string::npos) << r.err;
  }
}

TEST_F(Cli, MakeRandomModelRuns) {
  const fs::path m = dir_ / "random";
  Outcome r = run({"make-random-model", "--config", demo_dir() + "/config.json", "--out", m.string(), "--seed", "3",
               "--tokenizer", demo_dir() + "/tokenizer.model"});
  ASSERT_EQ(r.status, 0) << r.err;
  r = run({"emotion", "--model", m.string(), "--max-new-tokens", "2", audio("short.wav")});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("random weights"), std::string::npos) << r.err;
  r = run({"make-random-model", "--config", demo_dir() + "/config.json", "--out", m.string()});
  EXPECT_EQ(r.status, 1);  // the directory holds a model already
}

}  // namespace

// --- round 2 of bad input ----------------------------------------------------------------

// --out naming a file that is not a results file (a manifest, notes without a final newline,
// the manifest itself) is refused with the file left byte for byte as it was.
TEST_F(Cli, BatchNeverTruncatesAFileItDidNotWrite) {
  fs::copy_file(audio("short.wav"), dir_ / "short.wav");
  const fs::path manifest = dir_ / "m.tsv";
  { std::ofstream(manifest) << "id\taudio\nx\tshort.wav\n"; }
  const std::vector<std::string> contents = {"id\taudio\nx\tshort.wav\n", "my notes, no final newline",
                                             "{\"id\": \"x\", \"text\": \"\"}\n{\"te", "{\"almost\": 1}"};
  for (const std::string& text : contents) {
    const fs::path out = dir_ / "precious.txt";
    { std::ofstream(out, std::ios::binary) << text; }
    const Outcome r = run({"batch", "--model", demo_dir(), "--audio-dir", dir_.string(), "--out", out.string(),
                           manifest.string()});
    if (text.rfind("{\"id\"", 0) == 0) {  // ours, cut short: resumed (x is done; the cut line goes)
      EXPECT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(read_file(out), "{\"id\": \"x\", \"text\": \"\"}\n");
      continue;
    }
    EXPECT_EQ(r.status, 1) << text;
    EXPECT_NE(r.err.find("left untouched"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(out), text);
  }
  const Outcome r = run({"batch", "--model", demo_dir(), "--out", manifest.string(), manifest.string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("is the manifest itself"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(manifest), "id\taudio\nx\tshort.wav\n");
}

TEST_F(Cli, BatchManifestPathsStayInsideTheAudioRootAndABomIsNoColumnName) {
  const fs::path root = dir_ / "root";
  fs::create_directories(root);
  fs::copy_file(audio("short.wav"), root / "short.wav");
  fs::copy_file(audio("short.wav"), dir_ / "outside.wav");
  const fs::path manifest = dir_ / "m.tsv";
  {
    std::ofstream(manifest) << "\xEF\xBB\xBFid\taudio\n"
                            << "in\tsome/checkout/short.wav\n"
                            << "up\t../outside.wav\n"
                            << "abs\t" << (dir_ / "outside.wav").string() << "\n";
  }
  const fs::path out = dir_ / "out.jsonl";
  const Outcome r = run({"batch", "--model", demo_dir(), "--max-new-tokens", "2", "--audio-dir", root.string(),
                         "--out", out.string(), manifest.string()});
  EXPECT_EQ(r.status, 1) << r.err;
  std::map<std::string, json> by_id;
  for (const auto& j : jsonl(out)) by_id[j["id"]] = j;
  ASSERT_EQ(by_id.size(), 3u) << r.err;
  EXPECT_FALSE(by_id["in"].contains("error")) << by_id["in"].dump();
  for (const char* id : {"up", "abs"})
    EXPECT_NE(by_id[id]["error"].get<std::string>().find("leads outside --audio-dir"), std::string::npos)
        << by_id[id].dump();
}

TEST_F(Cli, SpecialFilesAndHostileNamesNeverHangOrDriveTheTerminal) {
  wavllm::test::make_fifo((dir_ / "m.fifo").string());
  Outcome r = run({"batch", "--model", demo_dir(), "--out", (dir_ / "o.jsonl").string(), (dir_ / "m.fifo").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  // A FIFO as the output: nobody reads it, so opening it to write would block forever.
  fs::copy_file(audio("short.wav"), dir_ / "short.wav");
  { std::ofstream(dir_ / "m.tsv") << "id\taudio\nx\tshort.wav\n"; }
  wavllm::test::make_fifo((dir_ / "out.fifo").string());
  r = run({"batch", "--model", demo_dir(), "--audio-dir", dir_.string(), "--out", (dir_ / "out.fifo").string(),
           (dir_ / "m.tsv").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("out.fifo: cannot open for writing: a FIFO with no reader"), std::string::npos) << r.err;
  // A file name with an escape sequence is quoted escaped in the error.
  const std::string evil = (dir_ / "a\x1b[2Jb.wav").string();
  r = run({"transcribe", "--model", demo_dir(), evil});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("a\\x1b[2Jb.wav"), std::string::npos) << r.err;
}

TEST_F(Cli, OptionsThatPassAloneButFailLaterAreUsageErrors) {
  const std::string m = demo_dir(), a = audio("short.wav");
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"transcribe", "--model", m, "--temperature", "1e-300", a}, "option --temperature: must be 0 (greedy) or in"},
           {{"transcribe", "--model", m, "--num-beams", "64", a}, "option --num-beams: must be in [1, 16]"},
           {{"transcribe", "--model", m, "--top-p", "0", a}, "option --top-p: must be in (0, 1]"}}) {
    const Outcome r = run(args);
    EXPECT_EQ(r.status, 2) << args[4] << "\n" << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }
  // A tiny top_p is the most likely token, not a sampler failure; 100000 threads are capped.
  const Outcome greedy = run({"transcribe", "--model", m, "--max-new-tokens", "4", a});
  const Outcome tiny = run({"transcribe", "--model", m, "--max-new-tokens", "4", "--temperature", "1", "--top-p",
                            "1e-300", "--threads", "100000", a});
  EXPECT_EQ(tiny.status, 0) << tiny.err;
  EXPECT_EQ(tiny.out, greedy.out);
}

// One tensor list: what `wavllm spec` prints is what the demo model holds and what
// make-random-model writes (the converter checks checkpoints against it: tests/python).
TEST_F(Cli, SpecListsEveryTensorOfTheModel) {
  const Outcome r = run({"spec", "--config", demo_dir()});
  ASSERT_EQ(r.status, 0) << r.err;
  std::map<std::string, std::vector<int64_t>> spec;
  const json declared = json::parse(r.out);
  for (const json& t : declared.at("tensors")) spec[t["name"].get<std::string>()] = t["shape"].get<std::vector<int64_t>>();
  auto tensors_of = [](const fs::path& file) {
    std::map<std::string, std::vector<int64_t>> out;
    const auto f = wavllm::st::File::open(file.string());  // alive while its tensors are read
    for (const auto& [name, info] : f->tensors()) out[name] = info.shape;
    return out;
  };
  EXPECT_EQ(tensors_of(fs::path(demo_dir()) / "model.safetensors"), spec);
  ASSERT_EQ(run({"make-random-model", "--config", demo_dir(), "--out", (dir_ / "m").string()}).status, 0);
  EXPECT_EQ(tensors_of(dir_ / "m" / "model.safetensors"), spec);
  EXPECT_EQ(run({"spec"}).status, 2);
}
