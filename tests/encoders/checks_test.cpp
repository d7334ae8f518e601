// Input and weight checks, sizes, and reduced-precision weights.
#include <gtest/gtest.h>

#include <functional>

#include "encoder_fixtures.h"
#include "wavllm/core/error.h"

namespace {

using namespace wavllm;
using namespace wavllm::test;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no wavllm::Error)";
}

at::Tensor zeros_mel(int64_t parts, int64_t mels, int64_t frames) { return at::zeros({parts, mels, frames}); }

TEST(WhisperEncoder, RejectsBadLogMel) {
  const auto& enc = demo().whisper;
  EXPECT_NE(error_of([&] { enc.forward(zeros_mel(1, 81, 3000), {10}); }).find("expected log-mel [parts, 80, 3000]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { enc.forward(zeros_mel(1, 80, 2999), {10}); }).find("got [1, 80, 2999]"), std::string::npos);
  EXPECT_NE(error_of([&] { enc.forward(at::zeros({80, 3000}), {10}); }).find("got [80, 3000]"), std::string::npos);
  EXPECT_NE(error_of([&] { enc.forward(zeros_mel(2, 80, 3000), {10}); }).find("1 valid frame counts for 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { enc.forward(zeros_mel(1, 80, 3000), {0}); }).find("valid frames 0 outside 1..3000"),
            std::string::npos);
  EXPECT_NE(error_of([&] { enc.forward(zeros_mel(1, 80, 3000), {3001}); }).find("valid frames 3001"),
            std::string::npos);
}

TEST(WhisperEncoder, OutputLengthFollowsConvStride) {
  EXPECT_EQ(encoders::WhisperEncoder::output_length(1), 1);
  EXPECT_EQ(encoders::WhisperEncoder::output_length(2), 1);
  EXPECT_EQ(encoders::WhisperEncoder::output_length(3), 2);
  EXPECT_EQ(encoders::WhisperEncoder::output_length(340), 170);
  EXPECT_EQ(encoders::WhisperEncoder::output_length(3000), 1500);
}

TEST(WhisperEncoder, ConstructorNamesTensorsTheConfigDisagreesWith) {
  WhisperConfig more_layers = demo().cfg.whisper;
  ++more_layers.encoder_layers;
  EXPECT_NE(error_of([&] { encoders::WhisperEncoder(more_layers, whisper_module(nn::Scope::binding(demo().w))); })
                .find("'audio_encoder.model.layers.2.self_attn.q_proj.weight'"),
            std::string::npos);
  WhisperConfig mels = demo().cfg.whisper;
  mels.num_mel_bins = 128;
  EXPECT_NE(error_of([&] { encoders::WhisperEncoder(mels, whisper_module(nn::Scope::binding(demo().w))); })
                .find("'audio_encoder.model.conv1.weight' is [64, 80, 3], config says [64, 128, 3]"),
            std::string::npos);
  WhisperConfig heads = demo().cfg.whisper;
  heads.encoder_attention_heads = 5;
  EXPECT_NE(error_of([&] { encoders::WhisperEncoder(heads, whisper_module(nn::Scope::binding(demo().w))); }).find("encoder_attention_heads 5"),
            std::string::npos);
}

TEST(WavLMEncoder, ReceptiveFieldAndFrames) {
  const auto& enc = demo().wavlm;
  EXPECT_EQ(enc.min_samples(), 400);
  EXPECT_EQ(enc.frames(399), 0);
  EXPECT_EQ(enc.frames(400), 1);
  EXPECT_EQ(enc.frames(719), 1);
  EXPECT_EQ(enc.frames(720), 2);
  EXPECT_EQ(enc.frames(480000), 1499);
  const auto hidden = enc.hidden_states(at::randn({400}));
  EXPECT_EQ(hidden.back().sizes(), at::IntArrayRef({1, demo().cfg.wavlm.hidden_size}));
}

TEST(WavLMEncoder, RejectsBadWaveform) {
  const auto& enc = demo().wavlm;
  EXPECT_NE(error_of([&] { enc.hidden_states(at::zeros({399})); })
                .find("399 samples is shorter than the feature extractor's receptive field of 400"),
            std::string::npos);
  EXPECT_NE(error_of([&] { enc.hidden_states(at::zeros({2, 1000})); }).find("expected a mono waveform [samples], got [2, 1000]"),
            std::string::npos);
  const auto hidden = enc.hidden_states(at::randn({1000}));
  EXPECT_NE(error_of([&] { enc.weighted_sum({hidden.begin(), hidden.end() - 1}); })
                .find("3 hidden states, output_weights has 4"),
            std::string::npos);
  auto odd = hidden;
  odd[1] = odd[1].narrow(0, 0, 1);
  EXPECT_NE(error_of([&] { enc.weighted_sum(odd); }).find("must all be [T, 48]"), std::string::npos);
}

TEST(WavLMEncoder, ConstructorNamesTensorsTheConfigDisagreesWith) {
  WavLMConfig buckets = demo().cfg.wavlm;
  buckets.num_buckets = 256;
  EXPECT_NE(error_of([&] { encoders::WavLMEncoder(buckets, wavlm_module(nn::Scope::binding(demo().w))); })
                .find("'wavlm_encoder.model.encoder.layers.0.attention.rel_attn_embed.weight' is [320, 4], config says [256, 4]"),
            std::string::npos);
  WavLMConfig bias = demo().cfg.wavlm;
  bias.conv_bias = true;
  EXPECT_NE(error_of([&] { encoders::WavLMEncoder(bias, wavlm_module(nn::Scope::binding(demo().w))); })
                .find("'wavlm_encoder.model.feature_extractor.conv_layers.0.conv.bias'"),
            std::string::npos);
  WavLMConfig layers = demo().cfg.wavlm;
  layers.num_hidden_layers = 2;
  EXPECT_NE(error_of([&] { encoders::WavLMEncoder(layers, wavlm_module(nn::Scope::binding(demo().w))); })
                .find("'wavlm_encoder.output_weights' is [4], config says [3]"),
            std::string::npos);
  WavLMConfig kernels = demo().cfg.wavlm;
  kernels.conv_kernel.pop_back();
  EXPECT_NE(error_of([&] { encoders::WavLMEncoder(kernels, wavlm_module(nn::Scope::binding(demo().w))); }).find("equal length"), std::string::npos);
}

// bfloat16 weights compute in bfloat16: the outputs keep that dtype and stay near the float32
// reference. bfloat16 keeps 8 significant bits (step 2^-8 = 0.4%); rounding through the layers
// gives 1.2% (Whisper) and 2.3% (WavLM) of max |reference| here, so 5% fails only a real error:
// LibTorch 1.13's scalar bfloat16 loop, which it runs on CPUs without AVX-512, gave 34% and 7%
// (kernels::bf16_gemm() widens the products to float32 there).
constexpr double kBf16Bound = 0.05;

TEST(Encoders, RunInTheWeightsDtype) {
  const auto& d = demo();
  const Weights bf16 = Weights::load(demo_dir(), model_spec(d.cfg), at::kCPU, at::kBFloat16);
  const auto f = stage("plants_asr");

  const auto [mel, frames] = logmel_parts(*f);
  const at::Tensor w_out = encoders::WhisperEncoder(d.cfg.whisper, whisper_module(nn::Scope::binding(bf16))).forward(mel, frames);
  EXPECT_EQ(w_out.scalar_type(), at::kBFloat16);
  const at::Tensor w_ref = load_tensor(*f, "whisper.part0.encoder_out");
  EXPECT_LE(max_abs_diff(w_out[0], w_ref), kBf16Bound * w_ref.abs().max().item<double>());

  const encoders::WavLMEncoder wavlm(d.cfg.wavlm, wavlm_module(nn::Scope::binding(bf16)));
  const at::Tensor v_out = wavlm.weighted_sum(wavlm.hidden_states(wave16k(*f)));
  EXPECT_EQ(v_out.scalar_type(), at::kBFloat16);
  const at::Tensor v_ref = load_tensor(*f, "wavlm.weighted");
  EXPECT_LE(max_abs_diff(v_out, v_ref), kBf16Bound * v_ref.abs().max().item<double>());
}

}  // namespace
