// Resampling to 16 kHz and mixing to mono: the reference resampler's output (SoX `rate 16000`,
// `channels 1`) and synthetic sines at the common rates.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "audio_test_util.h"
#include "test_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"
#include "wavllm/core/safetensors.h"

namespace wa = wavllm::audio;
using wavllm::test::fixture;

namespace {

double snr_db(const std::vector<float>& got, const std::vector<float>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double sig = 0, err = 0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    sig += double(ref[i]) * ref[i];
    err += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
  }
  return 10.0 * std::log10(sig / std::max(err, 1e-30));
}

void expect_reference_resampling(const std::string& stem, const std::string& file) {
  auto st = wavllm::st::File::open(fixture("frontend.safetensors"));
  std::vector<float> ref = st->read_f32(stem + ".wave16k");
  std::vector<float> got = wa::load_mono_16k(fixture("audio/" + file));
  ASSERT_EQ(got.size(), ref.size());
  double snr = snr_db(got, ref);
  std::cout << "[ parity ] " << stem << " resampled vs SoX: SNR " << snr << " dB\n";
  EXPECT_GE(snr, 60.0) << stem;
}

// Fraction of the signal's energy that is not at `hz` (least-squares fit of a sine and cosine
// at hz, over the middle of the signal so the resampler's edges do not count).
double impurity(const std::vector<float>& s, double hz, int rate) {
  size_t lo = s.size() / 8, hi = s.size() - s.size() / 8;
  double cc = 0, ss = 0, cs = 0, xc = 0, xs = 0, xx = 0;
  for (size_t i = lo; i < hi; ++i) {
    double c = std::cos(2 * M_PI * hz * i / rate), sn = std::sin(2 * M_PI * hz * i / rate);
    cc += c * c, ss += sn * sn, cs += c * sn, xc += s[i] * c, xs += s[i] * sn, xx += double(s[i]) * s[i];
  }
  double det = cc * ss - cs * cs;
  double a = (xc * ss - xs * cs) / det, b = (xs * cc - xc * cs) / det;
  double fitted = a * xc + b * xs;  // energy captured by the best-fitting sinusoid
  return (xx - fitted) / xx;
}

}  // namespace

TEST(audio, ResampleStereo44kMatchesSox) { expect_reference_resampling("stereo44k", "stereo44k.wav"); }
TEST(audio, ResamplePhone8kFlacMatchesSox) { expect_reference_resampling("phone8k", "phone8k.flac"); }

TEST(audio, ResampleCommonRatesLengthAndPurity) {
  for (int rate : {8000, 22050, 32000, 44100, 48000, 96000}) {
    for (size_t n : {size_t(rate) * 2 + 7, size_t(rate) * 3}) {
      std::vector<float> in(n);
      for (size_t i = 0; i < n; ++i) in[i] = static_cast<float>(0.5 * std::sin(2 * M_PI * 1000.0 * i / rate));
      std::vector<float> out = wa::to_mono_16k(in.data(), n, rate, 1);
      double expected = static_cast<double>(n) * wa::kSampleRate / rate;
      EXPECT_NEAR(static_cast<double>(out.size()), std::round(expected), 1.0) << rate << " Hz, " << n << " frames";
      double imp = impurity(out, 1000.0, wa::kSampleRate);
      EXPECT_LT(imp, 1e-8) << rate << " Hz: energy outside 1 kHz";
      double rms = std::sqrt(std::inner_product(out.begin() + out.size() / 4, out.end() - out.size() / 4,
                                                out.begin() + out.size() / 4, 0.0) / (out.size() / 2));
      EXPECT_NEAR(rms, 0.5 / std::sqrt(2.0), 1e-3) << rate << " Hz: passband gain";
    }
  }
}

TEST(audio, ResampleRemovesContentAboveNyquist) {
  // 12 kHz at 48 kHz cannot exist at 16 kHz: it must be filtered out, not aliased to 4 kHz.
  std::vector<float> in = wavllm::test::sine(12000.0, 48000, 1.0);
  std::vector<float> out = wa::to_mono_16k(in.data(), in.size(), 48000, 1);
  double e = 0;
  for (size_t i = out.size() / 4; i < out.size() * 3 / 4; ++i) e += double(out[i]) * out[i];
  EXPECT_LT(std::sqrt(e / (out.size() / 2)), 1e-4);
}

TEST(audio, MonoAveragesChannelsAfterResampling) {
  // Left 1 kHz at 0.8, right 1 kHz at 0.2 in antiphase: the mean is 0.3 at 1 kHz.
  const int rate = 44100;
  std::vector<float> left = wavllm::test::sine(1000.0, rate, 1.0, 0.8), st(left.size() * 2);
  for (size_t i = 0; i < left.size(); ++i) st[2 * i] = left[i], st[2 * i + 1] = -0.25f * left[i];
  std::vector<float> mono = wa::to_mono_16k(st.data(), left.size(), rate, 2);
  std::vector<float> l_only(left.size() * 2);
  for (size_t i = 0; i < left.size(); ++i) l_only[2 * i] = left[i];
  std::vector<float> ref = wa::to_mono_16k(l_only.data(), left.size(), rate, 2);  // 0.4 at 1 kHz
  ASSERT_EQ(mono.size(), ref.size());
  for (size_t i = 0; i < mono.size(); ++i) ASSERT_NEAR(mono[i], ref[i] * 0.75f, 1e-5f) << i;

  // At 16 kHz nothing is resampled: the plain mean of the channels.
  std::vector<float> st16 = {0.5f, -0.25f, 1.0f, 0.0f, -1.0f, -1.0f};
  EXPECT_EQ(wa::to_mono_16k(st16.data(), 3, 16000, 2), (std::vector<float>{0.125f, 0.5f, -1.0f}));
}

TEST(audio, Mono16kIsCopiedUnchanged) {
  std::vector<float> in = wavllm::test::sine(440.0, 16000, 0.5);
  EXPECT_EQ(wa::to_mono_16k(in.data(), in.size(), 16000, 1), in);
}

TEST(audio, ResampleRejectsBadParameters) {
  std::vector<float> in(100, 0.1f);
  EXPECT_THROW(wa::to_mono_16k(in.data(), 100, 0, 1), wavllm::Error);
  EXPECT_THROW(wa::to_mono_16k(in.data(), 100, 5000000, 1), wavllm::Error);
  EXPECT_THROW(wa::to_mono_16k(in.data(), 50, 16000, 0), wavllm::Error);
  EXPECT_THROW(wa::to_mono_16k(in.data(), 1, 16000, 33), wavllm::Error);
  EXPECT_THROW(wa::to_mono_16k(in.data(), 0, 16000, 1), wavllm::Error);
}

TEST(audio, NormalizeZeroMeanUnitVariance) {
  std::vector<float> s = wavllm::test::sine(300.0, 16000, 0.5, 0.3);
  for (float& v : s) v += 0.2f;
  wa::normalize_zero_mean_unit_var(s);
  double mean = std::accumulate(s.begin(), s.end(), 0.0) / s.size();
  double var = 0;
  for (float v : s) var += (v - mean) * (v - mean);
  EXPECT_NEAR(mean, 0.0, 1e-6);
  EXPECT_NEAR(var / s.size(), 1.0, 1e-4);
}
