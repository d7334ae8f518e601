// Whisper log-mel against the reference (HF WhisperFeatureExtractor) for every fixture audio.
#include <gtest/gtest.h>

#include <thread>

#include "test_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"
#include "wavllm/core/safetensors.h"

namespace wa = wavllm::audio;
using wavllm::test::fixture;
using wavllm::test::max_abs_diff;

namespace {

std::shared_ptr<wavllm::st::File> frontend() {
  static auto f = wavllm::st::File::open(fixture("frontend.safetensors"));
  return f;
}

// The 16 kHz waveform the reference computed its log-mel from: the file itself, or for
// resampled inputs the reference resampler's output (our resampler is checked separately).
std::vector<float> reference_input(const std::string& stem, const std::string& file) {
  if (frontend()->contains(stem + ".wave16k")) return frontend()->read_f32(stem + ".wave16k");
  return wa::load_mono_16k(fixture("audio/" + file));
}

void expect_matches_reference(const std::string& stem, const std::string& file, int parts) {
  std::vector<float> wave = reference_input(stem, file);
  wa::LogMel mel = wa::whisper_log_mel(wave.data(), wave.size());
  ASSERT_EQ(mel.parts, parts);
  ASSERT_EQ(mel.n_mels, 80);
  ASSERT_EQ(mel.values.size(), static_cast<size_t>(parts) * 80 * wa::kFramesPerPart);
  const size_t part_values = 80 * wa::kFramesPerPart;
  for (int p = 0; p < parts; ++p) {
    std::string name = stem + ".part" + std::to_string(p);
    std::vector<float> ref = frontend()->read_f32(name + ".logmel");
    std::vector<float> got(mel.values.begin() + p * part_values, mel.values.begin() + (p + 1) * part_values);
    float diff = max_abs_diff(got, ref);
    EXPECT_LE(diff, 1e-4f) << name;  // the fixtures' bound
    // Double-precision FFTs leave only float32 output rounding; a float32 FFT would show ~3e-5.
    EXPECT_LE(diff, 1e-6f) << name;
    std::cout << "[ parity ] " << name << ".logmel max abs diff " << diff << "\n";
    EXPECT_EQ(mel.valid_frames[p], frontend()->read_i64(name + ".frames").at(0)) << name;
  }
  EXPECT_FALSE(frontend()->contains(stem + ".part" + std::to_string(parts) + ".logmel"));
}

}  // namespace

TEST(audio, LogMelMatchesReferencePlants) { expect_matches_reference("plants", "plants.wav", 1); }
TEST(audio, LogMelMatchesReferenceMuseum) { expect_matches_reference("museum", "museum.wav", 1); }
TEST(audio, LogMelMatchesReferenceShort) { expect_matches_reference("short", "short.wav", 1); }
TEST(audio, LogMelMatchesReferenceStoryTwoParts) { expect_matches_reference("story", "story.wav", 2); }
TEST(audio, LogMelMatchesReferenceStereo44k) { expect_matches_reference("stereo44k", "stereo44k.wav", 1); }
TEST(audio, LogMelMatchesReferencePhone8k) { expect_matches_reference("phone8k", "phone8k.flac", 1); }

TEST(audio, LogMelPartSplitAndValidFrames) {
  struct Case {
    size_t n;
    std::vector<int64_t> frames;
  } cases[] = {{1, {1}},
               {160, {1}},
               {161, {2}},
               {wa::kPartSamples, {3000}},
               {wa::kPartSamples + 1, {3000, 1}},
               {2 * wa::kPartSamples + 16000, {3000, 3000, 100}}};
  for (const Case& c : cases) {
    std::vector<float> s(c.n, 0.01f);
    wa::LogMel mel = wa::whisper_log_mel(s.data(), s.size());
    EXPECT_EQ(mel.parts, static_cast<int>(c.frames.size())) << c.n;
    EXPECT_EQ(mel.valid_frames, c.frames) << c.n;
  }
  EXPECT_THROW(wa::whisper_log_mel(nullptr, 0), wavllm::Error);
}

TEST(audio, LogMelOfSilenceIsTheFloor) {
  // Every bin at log10(1e-10) = -10, which is also the maximum: (-10 + 4) / 4 everywhere.
  std::vector<float> s(8000, 0.0f);
  wa::LogMel mel = wa::whisper_log_mel(s.data(), s.size());
  for (float v : mel.values) ASSERT_EQ(v, -1.5f);
}

TEST(audio, LogMelPartsAreIndependentWindows) {
  // Part 1 of a long waveform is the log-mel of its own samples alone (own max, own padding).
  std::vector<float> wave = wa::load_mono_16k(fixture("audio/story.wav"));
  wa::LogMel whole = wa::whisper_log_mel(wave.data(), wave.size());
  wa::LogMel tail = wa::whisper_log_mel(wave.data() + wa::kPartSamples, wave.size() - wa::kPartSamples);
  ASSERT_EQ(tail.parts, 1);
  std::vector<float> part1(whole.values.begin() + 80 * wa::kFramesPerPart, whole.values.end());
  EXPECT_EQ(part1, tail.values);
}

TEST(audio, LogMelExtractorIsThreadSafe) {
  std::vector<float> wave = wa::load_mono_16k(fixture("audio/museum.wav"));
  const wa::LogMelExtractor extractor(80);
  const wa::LogMel expected = extractor.compute(wave.data(), wave.size());
  std::vector<wa::LogMel> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) threads.emplace_back([&] { g = extractor.compute(wave.data(), wave.size()); });
  // Plans created and destroyed concurrently with the computations above.
  for (int i = 0; i < 2; ++i) threads.emplace_back([] { wa::LogMelExtractor other(128); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g.values, expected.values);
}

TEST(audio, LogMelOtherMelCounts) {
  // large-v3 uses 128 mels; the filterbank follows n_mels, the frame layout does not change.
  std::vector<float> wave = wa::load_mono_16k(fixture("audio/short.wav"));
  wa::LogMel mel = wa::whisper_log_mel(wave.data(), wave.size(), 128);
  EXPECT_EQ(mel.n_mels, 128);
  EXPECT_EQ(mel.values.size(), 128u * wa::kFramesPerPart);
  EXPECT_THROW(wa::LogMelExtractor(0), wavllm::Error);
  EXPECT_THROW(wa::LogMelExtractor(202), wavllm::Error);
  std::vector<float> big(wa::kPartSamples + 1, 0.0f), out(80 * wa::kFramesPerPart);
  EXPECT_THROW(wa::LogMelExtractor(80).compute_part(big.data(), big.size(), out.data()), wavllm::Error);
}
