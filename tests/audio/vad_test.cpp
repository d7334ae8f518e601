// Voice activity and piece planning (audio/vad.h): the planner's rules on made-up regions, and
// the WebRTC detector on the fixtures' speech with silence and noise between.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "test_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/audio/vad.h"
#include "wavllm/core/error.h"

namespace {

namespace wa = wavllm::audio;
using wavllm::test::fixture;

constexpr int64_t kRate = wa::kSampleRate;
int64_t at(double seconds) { return int64_t(std::llround(seconds * kRate)); }

std::vector<bool> frames_from(const std::vector<std::pair<double, double>>& speech, double total) {
  std::vector<bool> f(size_t(at(total) / wa::kVadFrameSamples), false);
  for (const auto& [b, e] : speech)
    for (int64_t i = at(b) / wa::kVadFrameSamples; i < at(e) / wa::kVadFrameSamples; ++i) f[size_t(i)] = true;
  return f;
}

TEST(Vad, RegionsBridgeShortPausesAndDropShortBursts) {
  wa::VadOptions o;
  o.min_speech_seconds = 0.25;
  o.min_silence_seconds = 0.3;
  const auto regions = wa::speech_regions(frames_from({{1.0, 2.0}, {2.2, 3.0}, {4.0, 4.1}, {5.0, 6.0}}, 8), o);
  ASSERT_EQ(regions.size(), 2u);  // 1-2 and 2.2-3 bridged (0.2 s pause); the 0.1-s burst dropped
  EXPECT_EQ(regions[0], (wa::Span{at(1.0), at(3.0)}));
  EXPECT_EQ(regions[1], (wa::Span{at(5.0), at(6.0)}));
  EXPECT_TRUE(wa::speech_regions(frames_from({}, 8), o).empty());
  // A burst shorter than 0.1 s just before (or after) speech is not its start (or end).
  const auto trimmed = wa::speech_regions(frames_from({{2.90, 2.97}, {3.0, 4.0}, {4.05, 4.1}}, 8), o);
  ASSERT_EQ(trimmed.size(), 1u);
  EXPECT_EQ(trimmed[0], (wa::Span{at(3.0), at(4.0)}));
}

TEST(Vad, PiecesStayUnderTheLimitAndCutAtTheLongestPause) {
  wa::VadOptions o;
  o.max_piece_seconds = 10;  // 9.6 s before the 0.2-s margins
  o.pad_seconds = 0.2;
  const std::vector<float> silence(size_t(at(40)), 0.0f);
  // Pauses of 0.5 (at 3 s), 2.0 (at 6 s) and 0.4 s (at 8.4 s): the piece may reach 9.6 s;
  // the longest pause in its second half (4.8-9.6 s) is the 2-s one.
  const std::vector<wa::Span> regions = {{at(0.5), at(3.0)}, {at(3.5), at(6.0)}, {at(8.0), at(8.4)},
                                         {at(8.8), at(11.0)}, {at(30.0), at(31.0)}};
  const auto pieces = wa::plan_pieces(regions, silence.data(), silence.size(), o);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0], (wa::Span{at(0.3), at(6.2)}));   // cut at the 2-s pause, padded
  EXPECT_EQ(pieces[1], (wa::Span{at(7.8), at(11.2)}));
  EXPECT_EQ(pieces[2], (wa::Span{at(29.8), at(31.2)}));  // nothing starts inside the long silence
  for (const auto& p : pieces) EXPECT_LE(p.length(), at(o.max_piece_seconds));
  // Margins never cross the middle of a short pause.
  const auto close = wa::plan_pieces({{at(1.0), at(5.0)}, {at(5.1), at(14.0)}}, silence.data(), silence.size(), o);
  ASSERT_EQ(close.size(), 2u);
  EXPECT_LE(close[0].end, close[1].begin);
}

TEST(Vad, ARegionWithNoPauseIsCutInItsQuietestPart) {
  wa::VadOptions o;
  o.max_piece_seconds = 10;
  o.pad_seconds = 0.2;
  std::vector<float> tone(size_t(at(25)));
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = 0.5f * std::sin(0.05f * float(i));
  for (int64_t i = at(7.0); i < at(7.1); ++i) tone[size_t(i)] *= 0.01f;  // a dip at 7 s
  const auto pieces = wa::plan_pieces({{0, at(25)}}, tone.data(), tone.size(), o);
  ASSERT_GE(pieces.size(), 3u);
  EXPECT_NEAR(double(pieces[0].end) / kRate, 7.05, 0.02);
  for (const auto& p : pieces) EXPECT_LE(p.length(), at(o.max_piece_seconds));
  EXPECT_EQ(pieces.back().end, at(25));
}

TEST(Vad, OptionsOutOfRangeAreNamed) {
  wa::VadOptions o;
  o.aggressiveness = 4;
  EXPECT_NE(o.problem().find("aggressiveness"), std::string::npos);
  o = {};
  o.max_piece_seconds = 0.2;
  EXPECT_NE(o.problem().find("max_piece_seconds"), std::string::npos);
  EXPECT_THROW(wa::speech_pieces(nullptr, 0, o), wavllm::ArgumentError);
  EXPECT_THROW(wa::voice_frames(nullptr, 0, -1), wavllm::ArgumentError);
}

// Speech from the fixtures, 2 s of faint noise between: the detector finds each utterance, and
// nothing in the noise.
TEST(Vad, WebRtcFindsTheFixturesSpeechAndNotTheNoise) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.002f);
  std::vector<float> audio;
  std::vector<wa::Span> truth;
  auto gap = [&](double seconds) {
    for (int64_t i = 0; i < at(seconds); ++i) audio.push_back(noise(rng));
  };
  gap(2);
  for (const char* name : {"audio/plants.wav", "audio/museum.wav", "audio/short.wav"}) {
    const auto speech = wa::load_mono_16k(fixture(name));
    truth.push_back({int64_t(audio.size()), int64_t(audio.size() + speech.size())});
    for (float x : speech) audio.push_back(x + noise(rng));
    gap(2);
  }
  const auto pieces = wa::speech_pieces(audio.data(), audio.size(), {});
  ASSERT_FALSE(pieces.empty());
  for (const auto& p : pieces) {
    // Each piece overlaps an utterance, and none starts in the first 2 s of noise.
    bool overlaps = false;
    for (const auto& t : truth) overlaps = overlaps || (p.begin < t.end && t.begin < p.end);
    EXPECT_TRUE(overlaps) << p.begin << "-" << p.end;
  }
  EXPECT_GE(pieces.front().begin, at(1.7));
  // Every utterance is covered by some piece for most of its length.
  for (const auto& t : truth) {
    int64_t covered = 0;
    for (const auto& p : pieces) covered += std::max<int64_t>(0, std::min(p.end, t.end) - std::max(p.begin, t.begin));
    EXPECT_GE(double(covered), 0.8 * double(t.length())) << t.begin;
  }
  // Silence alone: no piece at all.
  const std::vector<float> quiet(size_t(at(10)), 0.0f);
  EXPECT_TRUE(wa::speech_pieces(quiet.data(), quiet.size(), {}).empty());
}

}  // namespace
