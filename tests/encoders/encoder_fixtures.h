#pragma once
// Inputs of the encoder stages of each fixture case: the demo model, the reference log-mel
// parts and the 16 kHz waveform the reference fed to WavLM.
#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "torch_util.h"
#include "wavllm/core/config.h"
#include "wavllm/core/weights.h"
#include "wavllm/encoders/encoders.h"
#include "wavllm/pipeline/stages.h"

namespace wavllm::test {

inline const std::vector<std::string> kCases = {"plants_asr", "museum_sqa", "short_er",
                                                "story_st",   "stereo_sv",  "phone_free"};

inline std::string demo_dir() { return std::string(WAVLLM_TEST_FIXTURES) + "/../../models/demo"; }

struct Demo {
  ModelConfig cfg = ModelConfig::load(demo_dir());
  Weights w = Weights::load(demo_dir(), model_spec(cfg), at::kCPU, at::kFloat);
  encoders::WhisperEncoder whisper{cfg.whisper, whisper_module(nn::Scope::binding(w))};
  encoders::WavLMEncoder wavlm{cfg.wavlm, wavlm_module(nn::Scope::binding(w))};
};
inline const Demo& demo() {
  static const Demo d;
  return d;
}

inline std::shared_ptr<st::File> stage(const std::string& name) {
  return st::File::open(fixture("stages/" + name + ".safetensors"));
}
inline const st::File& frontend() {
  static const auto f = st::File::open(fixture("frontend.safetensors"));
  return *f;
}

// "plants.wav" -> "plants": the key prefix in frontend.safetensors.
inline std::string audio_stem(const st::File& stage_file) {
  const std::string audio = stage_file.metadata().at("audio");
  return audio.substr(0, audio.rfind('.'));
}

// A 16-bit PCM mono 16 kHz WAV as float32, scaled by 1/32768 like the reference loader.
inline at::Tensor read_pcm16_wav(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto read = [&](size_t at, void* out, size_t n) {
    if (at + n > bytes.size()) throw std::runtime_error(path + ": truncated");
    std::memcpy(out, bytes.data() + at, n);
  };
  auto u32 = [&](size_t at) { uint32_t v; read(at, &v, 4); return v; };
  auto u16 = [&](size_t at) { uint16_t v; read(at, &v, 2); return v; };
  EXPECT_TRUE(bytes.size() >= 12 && std::memcmp(bytes.data(), "RIFF", 4) == 0 && std::memcmp(&bytes[8], "WAVE", 4) == 0)
      << path;
  for (size_t pos = 12; pos + 8 <= bytes.size(); pos += 8 + u32(pos + 4) + (u32(pos + 4) & 1)) {
    const std::string id(&bytes[pos], 4);
    if (id == "fmt ") {
      EXPECT_EQ(u16(pos + 8), 1) << path << ": not PCM";
      EXPECT_EQ(u16(pos + 10), 1) << path << ": not mono";
      EXPECT_EQ(u32(pos + 12), 16000u) << path << ": not 16 kHz";
      EXPECT_EQ(u16(pos + 22), 16) << path << ": not 16-bit";
    } else if (id == "data") {
      const int64_t n = u32(pos + 4) / 2;
      std::vector<int16_t> pcm(n);
      read(pos + 8, pcm.data(), 2 * n);
      return at::tensor(std::vector<float>(pcm.begin(), pcm.end()), at::kFloat) / 32768.0;
    }
  }
  ADD_FAILURE() << path << ": no data chunk";
  return at::Tensor();
}

// What the reference fed WavLM: the file itself when it is 16 kHz mono, else the reference
// resampler's output stored beside the log-mels.
inline at::Tensor wave16k(const st::File& stage_file) {
  const std::string stem = audio_stem(stage_file);
  if (frontend().contains(stem + ".wave16k")) return load_tensor(frontend(), stem + ".wave16k");
  return read_pcm16_wav(fixture("audio/" + stage_file.metadata().at("audio")));
}

// The reference log-mel parts [parts, mels, frames] and their valid frame counts.
inline std::pair<at::Tensor, std::vector<int64_t>> logmel_parts(const st::File& stage_file) {
  const std::string stem = audio_stem(stage_file);
  std::vector<at::Tensor> mels;
  std::vector<int64_t> frames;
  for (int i = 0; frontend().contains(stem + ".part" + std::to_string(i) + ".logmel"); ++i) {
    const std::string p = stem + ".part" + std::to_string(i);
    mels.push_back(load_tensor(frontend(), p + ".logmel"));
    frames.push_back(frontend().read_i64(p + ".frames").at(0));
  }
  return {at::stack(mels), frames};
}

}  // namespace wavllm::test
