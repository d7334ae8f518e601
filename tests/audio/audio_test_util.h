#pragma once
// Helpers for the audio suite: a scratch directory and a libsndfile writer for generated inputs.
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace wavllm::test {

// A libsndfile writer of `format` (SF_FORMAT_* container | subtype); null (and a test failure)
// when libsndfile cannot write it.
inline SNDFILE* open_for_writing(const std::string& path, int format, int sample_rate, int channels) {
  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  EXPECT_NE(f, nullptr) << path << ": " << sf_strerror(nullptr);
  return f;
}

// Writes interleaved float samples in `format`.
inline void write_audio(const std::string& path, int format, const std::vector<float>& interleaved, int sample_rate,
                        int channels) {
  SNDFILE* f = open_for_writing(path, format, sample_rate, channels);
  if (!f) return;
  sf_count_t frames = static_cast<sf_count_t>(interleaved.size() / channels);
  EXPECT_EQ(sf_writef_float(f, interleaved.data(), frames), frames);
  sf_close(f);
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `seconds` of a sine at `hz` and amplitude `amp`, mono.
inline std::vector<float> sine(double hz, int sample_rate, double seconds, double amp = 0.5) {
  std::vector<float> s(static_cast<size_t>(std::llround(seconds * sample_rate)));
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(amp * std::sin(2.0 * M_PI * hz * i / sample_rate));
  return s;
}

}  // namespace wavllm::test
