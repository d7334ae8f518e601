// Recordings from the command line: pieces for long audio, whisper.cpp's flags and output files,
// standard input and directories, and the tasks that need the whole audio.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "../audio/audio_test_util.h"
#include "cli_test_util.h"
#include "commands.h"
#include "test_util.h"
#include "transcript.h"
#include "wavllm/audio/audio.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using wavllm::test::audio;
using wavllm::test::demo_dir;
using wavllm::test::kWavllm;
using wavllm::test::Outcome;
using wavllm::test::read_file;

class Recordings : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("wavllm_recordings_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    // 4 x (plants, museum, story with 2 s of faint noise after each): 217 s, beyond the demo
    // model's 154 s in one request.
    std::mt19937 rng(3);
    std::normal_distribution<float> noise(0.0f, 0.002f);
    std::vector<float> samples;
    for (int round = 0; round < 4; ++round)
      for (const char* name : {"plants.wav", "museum.wav", "story.wav"}) {
        for (float x : wavllm::audio::load_mono_16k(audio(name))) samples.push_back(x);
        for (int i = 0; i < 32000; ++i) samples.push_back(noise(rng));
      }
    wavllm::test::write_audio(long_wav().string(), SF_FORMAT_WAV | SF_FORMAT_PCM_16, samples, 16000, 1);
    wavllm::test::write_audio((dir_ / "silence.wav").string(), SF_FORMAT_WAV | SF_FORMAT_PCM_16,
                              std::vector<float>(16000 * 10, 0.0f), 16000, 1);
    fs::copy_file(audio("plants.wav"), dir_ / "plants.wav");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path long_wav() { return dir_ / "long.wav"; }

  // The built executable through the shell: `args` as given (quote them yourself), in dir_.
  static Outcome sh(const std::string& args) {
    return wavllm::test::run_shell("cd '" + dir_.string() + "' && env -u WAVLLM_MODEL '" + kWavllm + "' " + args,
                                   dir_ / "stderr.txt");
  }
  static std::string demo() { return "-m '" + demo_dir() + "'"; }

  static fs::path dir_;
};
fs::path Recordings::dir_;

TEST_F(Recordings, WhisperCppFlagsWriteSubtitlesBesideTheInput) {
  const Outcome r = sh("transcribe " + demo() + " -f long.wav -osrt -np -t 2 --max-new-tokens 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");  // -np: not even the random-weights note
  const std::string srt = read_file(dir_ / "long.wav.srt");
  EXPECT_EQ(srt.rfind("1\n00:00:0", 0), 0u) << srt;
  EXPECT_GE(std::count(srt.begin(), srt.end(), '>'), 5) << srt;  // 217 s in pieces of at most 30 s
  // The terminal shows each piece with its times.
  EXPECT_EQ(r.out.rfind("[00:00:0", 0), 0u) << r.out;
  // Again: the file exists and is not written over; --overwrite replaces it.
  EXPECT_EQ(sh("transcribe " + demo() + " -f long.wav -osrt").status, 1);
  EXPECT_EQ(read_file(dir_ / "long.wav.srt"), srt);
  EXPECT_EQ(sh("transcribe " + demo() + " -f long.wav -osrt --overwrite --max-new-tokens 2 -np").status, 0);
}

TEST_F(Recordings, NamedOutputsJsonAndStandardOutput) {
  Outcome r = sh("transcribe " + demo() + " long.wav -of named -otxt -oj -ocsv -ovtt --max-new-tokens 2 -np");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(read_file(dir_ / "named.json"));
  ASSERT_GE(j["segments"].size(), 5u);
  double last_end = 0;
  for (const auto& s : j["segments"]) {
    EXPECT_GE(s["start"].get<double>(), last_end);
    EXPECT_LE(s["end"].get<double>() - s["start"].get<double>(), 30.0);
    EXPECT_EQ(s["token_ids"].size(), 2u);
    last_end = s["end"].get<double>();
  }
  EXPECT_FALSE(j["segments"][0].contains("token_logprobs"));  // only with --logprobs
  EXPECT_EQ(read_file(dir_ / "named.vtt").rfind("WEBVTT\n\n", 0), 0u);
  EXPECT_EQ(read_file(dir_ / "named.csv").rfind("start,end,text\n", 0), 0u);
  // -of -: the output on standard output, nothing else there.
  r = sh("transcribe " + demo() + " long.wav -of - -oj --logprobs --max-new-tokens 2 -np");
  ASSERT_EQ(r.status, 0) << r.err;
  const json out = json::parse(r.out);
  EXPECT_EQ(out["segments"].size(), j["segments"].size());
  EXPECT_EQ(out["segments"][0]["token_logprobs"].size(), 2u);
  EXPECT_EQ(sh("transcribe " + demo() + " long.wav silence.wav -of x -otxt").status, 2);  // one name, two inputs
  // An output folder that is not there fails before anything runs (no text printed).
  r = sh("transcribe " + demo() + " plants.wav -otxt -of no/such/folder/x");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("no/such/folder/x.txt: cannot be written: no/such/folder is not a writable folder (nothing was run)"),
            std::string::npos) << r.err;
}

TEST_F(Recordings, TasksOnTheWholeAudioNeedSegmentBeyondTheContext) {
  Outcome r = sh("verify-speaker " + demo() + " long.wav --max-new-tokens 2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("the audio is 216.7 s; one request with this instruction takes at most"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pass --segment to answer per piece"), std::string::npos) << r.err;
  r = sh("verify-speaker " + demo() + " long.wav --segment --max-new-tokens 2 -np");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 5) << r.out;
  // Audio that fits stays the reference's single request (no timestamps).
  r = sh("transcribe " + demo() + " plants.wav --max-new-tokens 10 -np");
  std::ifstream in(wavllm::test::fixture("cases.json"));
  EXPECT_EQ(r.out, json::parse(in)["plants_asr"]["text"].get<std::string>() + "\n");
}

TEST_F(Recordings, StandardInputDirectoriesAndSilence) {
  const Outcome file = sh("transcribe " + demo() + " plants.wav --max-new-tokens 6 -np");
  const Outcome piped = sh("transcribe " + demo() + " - --max-new-tokens 6 -np < plants.wav");
  ASSERT_EQ(piped.status, 0) << piped.err;
  EXPECT_EQ(piped.out, file.out);
  // A directory: each audio file in it, in name order; other files are not audio.
  fs::create_directories(dir_ / "folder");
  fs::copy_file(audio("short.wav"), dir_ / "folder" / "b.wav", fs::copy_options::overwrite_existing);
  fs::copy_file(audio("plants.wav"), dir_ / "folder" / "a.WAV", fs::copy_options::overwrite_existing);
  { std::ofstream(dir_ / "folder" / "notes.txt") << "not audio"; }
  const Outcome dir = sh("emotion " + demo() + " folder --max-new-tokens 2 -np");
  ASSERT_EQ(dir.status, 0) << dir.err;
  EXPECT_EQ(dir.out.find("# folder/a.WAV"), 0u) << dir.out;
  EXPECT_NE(dir.out.find("# folder/b.wav"), std::string::npos) << dir.out;
  EXPECT_EQ(dir.out.find("notes"), std::string::npos);
  // Silence: no piece, no text, said so; the subtitles are empty, not invented.
  const Outcome quiet = sh("transcribe " + demo() + " silence.wav -osrt");
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_NE(quiet.err.find("no speech found in 10.0 s of audio: nothing to decode, no text"), std::string::npos) << quiet.err;
  EXPECT_EQ(read_file(dir_ / "silence.wav.srt"), "");
  EXPECT_EQ(quiet.out, "");
}

TEST_F(Recordings, LanguageAndVersionAsWhisperCppUsersTypeThem) {
  const Outcome to = sh("translate " + demo() + " --to German plants.wav --max-new-tokens 4 -np");
  const Outcome l = sh("translate " + demo() + " -l de plants.wav --max-new-tokens 4 -np");
  ASSERT_EQ(l.status, 0) << l.err;
  EXPECT_EQ(l.out, to.out);
  Outcome r = sh("transcribe " + demo() + " -l de plants.wav");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("transcribe takes English speech"), std::string::npos) << r.err;
  EXPECT_EQ(sh("translate " + demo() + " -l xx plants.wav").status, 2);
  r = sh("transcribe --version");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("wavllm ", 0), 0u);
  EXPECT_EQ(sh("transcribe " + demo() + " --max-segment 0.5 plants.wav").status, 2);
  EXPECT_EQ(sh("transcribe " + demo() + " --max-segment 600 --segment long.wav").status, 1);  // beyond the context
  r = sh("transcribe " + demo() + " --encoder-batch 0 plants.wav");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--encoder-batch"), std::string::npos) << r.err;
  EXPECT_EQ(sh("transcribe " + demo() + " --encoder-batch 65 plants.wav").status, 2);
  r = sh("transcribe " + demo() + " --whisper-margin 31 plants.wav");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--whisper-margin"), std::string::npos) << r.err;
  EXPECT_EQ(sh("transcribe " + demo() + " --whisper-margin 2 --max-new-tokens 2 plants.wav").status, 0);
}

TEST(Transcript, FormatsMendWhatWouldBreakACue) {
  using namespace wavllm::cli;
  EXPECT_EQ(timestamp(3723.4564, ','), "01:02:03,456");
  EXPECT_EQ(timestamp(0.0005, '.'), "00:00:00.001");
  EXPECT_EQ(cue_text(" a\n\n\nb --> c\x01\xff "), "a\nb -> c \xEF\xBF\xBD");
  Transcript t;
  t.segments.resize(3);
  t.segments[0].start = 0, t.segments[0].end = 1.5, t.segments[0].text = "one, \"two\"";
  t.segments[1].start = 2, t.segments[1].end = 3, t.segments[1].text = " ";
  t.segments[2].start = 4, t.segments[2].end = 5.25, t.segments[2].text = "three\nfour";
  EXPECT_EQ(to_srt(t), "1\n00:00:00,000 --> 00:00:01,500\none, \"two\"\n\n2\n00:00:04,000 --> 00:00:05,250\nthree\nfour\n\n");
  EXPECT_EQ(to_vtt(t).rfind("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n", 0), 0u);
  EXPECT_EQ(to_csv(t), "start,end,text\n0,1500,\"one, \"\"two\"\"\"\n2000,3000,\"\"\n4000,5250,\"three\nfour\"\n");
  EXPECT_EQ(to_txt(t), "one, \"two\"\n\nthree four\n");
}

}  // namespace
