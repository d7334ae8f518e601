// Decoding every container libsndfile offers, and the bad-input table: each broken input is a
// wavllm::Error whose message names the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "audio_test_util.h"
#include "test_util.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wa = wavllm::audio;
using wavllm::test::fixture;
using wavllm::test::TempDir;
using wavllm::test::write_audio;
using wavllm::test::write_bytes;
using wavllm::test::sine;

// libsndfile 1.2.0 leaks the Vorbis header state when opening a malformed Ogg fails (its
// bug, reproduced with sf_open alone): keeps LeakSanitizer runs of this suite meaningful.
// A forgotten sf_close would still be reported (its allocations do not come from here).
extern "C" const char* __lsan_default_suppressions() { return "leak:vorbis_info_init\n"; }

namespace {

// Expects `fn` to throw a wavllm::Error whose message names the input (`label`) and contains
// `needle` (or `alternative`, when not empty).
template <class Fn>
void expect_error(Fn fn, const std::string& label, const std::string& needle, const std::string& alternative = "") {
  try {
    fn();
    ADD_FAILURE() << label << ": no error, expected one mentioning '" << needle << "'";
  } catch (const wavllm::Error& e) {
    std::string msg = e.what();
    EXPECT_TRUE(msg.find(needle) != std::string::npos ||
                (!alternative.empty() && msg.find(alternative) != std::string::npos))
        << "message: " << msg;
    EXPECT_NE(msg.find(label), std::string::npos) << "message does not name the input: " << msg;
  }
}

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u16(std::string& s, uint16_t v) {
  for (int i = 0; i < 2; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A canonical 44-byte WAV header; `data_bytes` is what the header declares.
std::string wav_header(uint16_t format_tag, int channels, uint32_t rate, int bits, uint32_t data_bytes) {
  std::string h = "RIFF";
  put_u32(h, 36 + data_bytes);
  h += "WAVEfmt ";
  put_u32(h, 16);
  put_u16(h, format_tag);
  put_u16(h, static_cast<uint16_t>(channels));
  put_u32(h, rate);
  put_u32(h, rate * channels * bits / 8);
  put_u16(h, static_cast<uint16_t>(channels * bits / 8));
  put_u16(h, static_cast<uint16_t>(bits));
  h += "data";
  put_u32(h, data_bytes);
  return h;
}

std::string wav16(int channels, uint32_t rate, size_t frames) {
  return wav_header(1, channels, rate, 16, static_cast<uint32_t>(frames * channels * 2)) +
         std::string(frames * channels * 2, '\x01');
}

std::vector<float> test_tone(int rate, double seconds) { return wavllm::test::sine(1000.0, rate, seconds, 0.5); }

}  // namespace

TEST(audio, DecodesEveryWavSampleFormatAndFlac) {
  TempDir dir;
  const std::vector<float> tone = test_tone(16000, 0.25);
  struct Case {
    const char* name;
    int format;
    float tolerance;  // quantisation step of the format
  } cases[] = {
      {"u8.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 1.0f / 128},
      {"s16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1.0f / 32768},
      {"s24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1.0f / 8388608},
      {"s32.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 1e-7f},
      {"f32.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 0.0f},
      {"f64.wav", SF_FORMAT_WAV | SF_FORMAT_DOUBLE, 0.0f},
      {"s16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1.0f / 32768},
      {"s24.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 1.0f / 8388608},
      {"s16.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 1.0f / 32768},
  };
  for (const Case& c : cases) {
    write_audio(dir.file(c.name), c.format, tone, 16000, 1);
    wa::Buffer b = wa::decode_file(dir.file(c.name));
    EXPECT_EQ(b.sample_rate, 16000) << c.name;
    EXPECT_EQ(b.channels, 1) << c.name;
    ASSERT_EQ(b.frames(), tone.size()) << c.name;
    EXPECT_LE(wavllm::test::max_abs_diff(b.interleaved, tone), c.tolerance) << c.name;
  }
}

TEST(audio, DecodesLossyFormats) {
  TempDir dir;
  const std::vector<float> tone = test_tone(16000, 1.0);
  struct Case {
    const char* name;
    int format;
  } cases[] = {{"a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS}, {"a.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III}};
  for (const Case& c : cases) {
    SF_INFO check{0, 16000, 1, c.format, 0, 0};
    if (!sf_format_check(&check)) {
      ADD_FAILURE() << c.name << ": this libsndfile cannot write the format";
      continue;
    }
    write_audio(dir.file(c.name), c.format, tone, 16000, 1);
    std::vector<float> got = wa::load_mono_16k(dir.file(c.name));
    // Encoder delay and padding change the length a little; the tone's level survives.
    EXPECT_NEAR(static_cast<double>(got.size()), 16000.0, 2000.0) << c.name;
    double e = 0;
    for (size_t i = got.size() / 4; i < got.size() * 3 / 4; ++i) e += double(got[i]) * got[i];
    EXPECT_NEAR(std::sqrt(e / (got.size() / 2)), 0.5 / std::sqrt(2.0), 0.02) << c.name;
  }
}

TEST(audio, DecodeMemoryEqualsDecodeFile) {
  for (const char* f : {"audio/stereo44k.wav", "audio/phone8k.flac"}) {
    std::string bytes = wavllm::test::read_bytes(fixture(f));
    wa::Buffer a = wa::decode_file(fixture(f));
    wa::Buffer b = wa::decode_memory(bytes.data(), bytes.size(), f);
    EXPECT_EQ(a.sample_rate, b.sample_rate);
    EXPECT_EQ(a.channels, b.channels);
    EXPECT_EQ(a.interleaved, b.interleaved) << f;
  }
  wa::Buffer st = wa::decode_file(fixture("audio/stereo44k.wav"));
  EXPECT_EQ(st.channels, 2);
  EXPECT_EQ(st.sample_rate, 44100);
  EXPECT_EQ(st.frames(), 175850u);
}

TEST(audio, LoadMono16kOfA16kFileIsTheSamples) {
  std::vector<float> s = wa::load_mono_16k(fixture("audio/plants.wav"));
  ASSERT_EQ(s.size(), 54355u);
  wa::Buffer b = wa::decode_file(fixture("audio/plants.wav"));
  EXPECT_EQ(s, b.interleaved);
  for (float v : s) ASSERT_LE(std::fabs(v), 1.0f);
}

// ---- The bad-input table ----

TEST(audio, BadInputMissingFile) {
  expect_error([] { wa::load_mono_16k("/nonexistent/dir/a.wav"); }, "/nonexistent/dir/a.wav", "no such file");
}

TEST(audio, BadInputDirectory) {
  TempDir dir;
  expect_error([&] { wa::load_mono_16k(dir.file("")); }, dir.file(""), "directory");
}

TEST(audio, BadInputZeroLength) {
  TempDir dir;
  write_bytes(dir.file("empty.wav"), "");
  expect_error([&] { wa::load_mono_16k(dir.file("empty.wav")); }, "empty.wav", "empty");
  expect_error([] { wa::decode_memory("", 0, "mem"); }, "mem", "empty");
}

TEST(audio, BadInputHeaderOnly) {
  TempDir dir;
  write_bytes(dir.file("hdr.wav"), wav_header(1, 1, 16000, 16, 32000));
  expect_error([&] { wa::load_mono_16k(dir.file("hdr.wav")); }, "hdr.wav", "truncated");
  // A well-formed header that declares no data at all.
  write_bytes(dir.file("nodata.wav"), wav_header(1, 1, 16000, 16, 0));
  expect_error([&] { wa::load_mono_16k(dir.file("nodata.wav")); }, "nodata.wav", "no samples");
}

TEST(audio, BadInputTruncated) {
  TempDir dir;
  const std::vector<float> tone = test_tone(16000, 2.0);
  struct Case {
    const char* name;
    int format;
  } cases[] = {{"t.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16},
               {"t.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
               {"t.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS},
               {"t.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III}};
  for (const Case& c : cases) {
    write_audio(dir.file(c.name), c.format, tone, 16000, 1);
    std::string bytes = wavllm::test::read_bytes(dir.file(c.name));
    std::string cut = std::string("cut_") + c.name;
    write_bytes(dir.file(cut), bytes.substr(0, bytes.size() / 2));
    // A cut Ogg may already fail to open ("malformed"): also a clear refusal.
    expect_error([&] { wa::load_mono_16k(dir.file(cut)); }, cut, "truncated", "malformed");
    for (size_t keep : {bytes.size() / 2, bytes.size() * 3 / 4, bytes.size() - 100}) {
      std::string part = bytes.substr(0, keep);
      expect_error([&] { wa::decode_memory(part.data(), part.size(), cut); }, cut, "truncated", "malformed");
    }
  }
}

TEST(audio, BadInputNotAudio) {
  TempDir dir;
  write_bytes(dir.file("notes.wav"), "this is a text file, not audio at all\n" + std::string(4000, 'x'));
  expect_error([&] { wa::load_mono_16k(dir.file("notes.wav")); }, "notes.wav", "cannot be read as audio");
  std::string junk(1000, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 7919 % 251);
  expect_error([&] { wa::decode_memory(junk.data(), junk.size(), "junk"); }, "junk", "cannot be read as audio");
}

TEST(audio, BadInputUnsupportedFormat) {
  TempDir dir;
  // A RIFF/WAVE file whose codec tag no decoder knows.
  std::string bytes = wav_header(0x7777, 1, 16000, 16, 3200) + std::string(3200, '\x01');
  write_bytes(dir.file("codec.wav"), bytes);
  expect_error([&] { wa::load_mono_16k(dir.file("codec.wav")); }, "codec.wav", "cannot be read as audio");
}

TEST(audio, BadInputNanAndInfSamples) {
  TempDir dir;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> s = test_tone(16000, 0.5);
    s[1234] = bad;
    write_audio(dir.file("bad.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, s, 16000, 1);
    expect_error([&] { wa::load_mono_16k(dir.file("bad.wav")); }, "bad.wav", "sample 1234 is");
    // Also when the file needs resampling: caught before the filter smears it.
    write_audio(dir.file("bad8k.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, s, 8000, 1);
    expect_error([&] { wa::load_mono_16k(dir.file("bad8k.wav")); }, "bad8k.wav", std::isnan(bad) ? "NaN" : "infinite");
  }
  std::vector<float> empty;
  expect_error([&] { wa::check_samples(empty.data(), 0, "arr"); }, "arr", "no samples");
}

TEST(audio, BadInputAbsurdSampleRate) {
  TempDir dir;
  for (uint32_t rate : {1u, 999u, 5000000u, 2000000000u}) {
    std::string name = "rate" + std::to_string(rate) + ".wav";
    write_bytes(dir.file(name), wav16(1, rate, 4000));
    expect_error([&] { wa::load_mono_16k(dir.file(name)); }, name, "sample rate");
  }
}

TEST(audio, BadInputTooManyChannels) {
  TempDir dir;
  write_bytes(dir.file("ch33.wav"), wav16(33, 16000, 1000));
  expect_error([&] { wa::load_mono_16k(dir.file("ch33.wav")); }, "ch33.wav", "33 channels");
  write_bytes(dir.file("ch32.wav"), wav16(32, 16000, 1000));
  EXPECT_EQ(wa::load_mono_16k(dir.file("ch32.wav")).size(), 1000u);  // the limit itself is fine
}

TEST(audio, BadInputLongerThanTheLimit) {
  TempDir dir;
  // A 4 GiB WAV (sparse: no disk, no data) declares 37 hours: refused from the header, before
  // a sample is read, with the default 2 h limit.
  const uint32_t data_bytes = 0xFFFFFF00u;
  write_bytes(dir.file("huge.wav"), wav_header(1, 1, 16000, 16, data_bytes));
  std::filesystem::resize_file(dir.file("huge.wav"), 44 + uint64_t(data_bytes));
  expect_error([&] { wa::decode_file(dir.file("huge.wav")); }, "huge.wav", "limit");

  // A lower limit; Ogg does not declare its length, so its limit is enforced while reading.
  wa::DecodeOptions opt;
  opt.max_seconds = 1.0;
  const std::vector<float> tone = test_tone(16000, 1.5);
  for (const char* name : {"long.wav", "long.ogg"}) {
    int format = std::strstr(name, ".ogg") ? SF_FORMAT_OGG | SF_FORMAT_VORBIS : SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    write_audio(dir.file(name), format, tone, 16000, 1);
    expect_error([&] { wa::load_mono_16k(dir.file(name), opt); }, name, "limit");
  }
}

// Found by fuzz_audio (fuzz/regressions/audio): a 43-byte FLAC whose header declares 17 million
// frames made the decoder reserve memory for them before reading anything.
TEST(audio, BadInputTinyFileDeclaringMillionsOfFrames) {
  const unsigned char bytes[] = {0x66, 0x4c, 0x61, 0x43, 0x00, 0x00, 0x00, 0x22, 0x10, 0xfe, 0x31, 0x00, 0x43, 0x6f, 0x6d,
                                 0x94, 0x65, 0x6e, 0x74, 0xff, 0x00, 0xf0, 0x01, 0x06, 0x00, 0x00, 0x00, 0x75, 0x00, 0x00,
                                 0x00, 0x00, 0x0b, 0x02, 0x00, 0xa7, 0x04, 0x00, 0x00, 0xba, 0x00, 0x00, 0x75};
  expect_error([&] { wa::decode_memory(bytes, sizeof bytes, "lying.flac"); }, "lying.flac", "truncated");
}

// --- round 2: decompression bombs, streaming, special files ---------------------------------

namespace {

// `seconds` of silence at `rate` Hz over `channels` channels, written block by block (the test
// itself never holds the decoded size).
void write_silence(const std::string& path, int format, int rate, int channels, double seconds) {
  SNDFILE* f = wavllm::test::open_for_writing(path, format, rate, channels);
  if (!f) return;
  const std::vector<float> block(size_t(1 << 16) * size_t(channels), 0.0f);
  for (sf_count_t left = sf_count_t(seconds * rate); left > 0; left -= 1 << 16)
    sf_writef_float(f, block.data(), std::min<sf_count_t>(left, 1 << 16));
  sf_close(f);
}

}  // namespace

// A small FLAC of silence at 655 kHz over 8 channels decodes to 30 s x 655350 x 8 = 157M samples
// (629 MB as float32, 2.7 GB at the old geometric growth): load_mono_16k resamples it block by
// block within a few MB, and the raw decoder refuses it with the reason.
TEST(audio, DecompressionBombDecodesWithinBoundedMemory) {
  TempDir dir;
  const std::string path = dir.file("bomb.flac");
  write_silence(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 655350, 8, 30.0);
  ASSERT_LT(std::filesystem::file_size(path), 2u << 20);  // it is small on disk
  expect_error([&] { wa::decode_file(path); }, "bomb.flac", "block by block");
  WAVLLM_SKIP_UNDER_ASAN();
  wavllm::test::reset_peak_rss();
  const uint64_t before = wavllm::test::rss_bytes();
  const std::vector<float> mono = wa::load_mono_16k(path);
  const uint64_t added = wavllm::test::peak_rss_bytes() - before;
  EXPECT_EQ(mono.size(), 480000u);
  EXPECT_LT(added, 64u << 20) << "peak grew by " << added << " bytes";
}

TEST(audio, StreamingResamplerEqualsOneShot) {
  // Blocks of odd sizes give the same samples, bit for bit, as one block (44.1 kHz stereo, 8 kHz).
  for (const auto& [rate, channels] : {std::pair<int, int>{44100, 2}, {8000, 1}, {16000, 3}}) {
    std::vector<float> in = sine(440.0, rate, 1.3);
    std::vector<float> interleaved;
    for (float v : in)
      for (int c = 0; c < channels; ++c) interleaved.push_back(v * float(c + 1) / float(channels));
    const std::vector<float> whole = wa::to_mono_16k(interleaved.data(), in.size(), rate, channels);
    wa::MonoResampler r(rate, channels);
    std::vector<float> streamed;
    size_t done = 0;
    for (size_t block = 1; done < in.size(); block = block * 3 + 7) {
      const size_t n = std::min(block, in.size() - done);
      r.push(interleaved.data() + done * size_t(channels), n, streamed);
      done += n;
    }
    r.finish(streamed);
    EXPECT_EQ(streamed, whole) << rate << " Hz, " << channels << " channels";
  }
}

// +-3e38 is finite as float32 but the resampler's filter overflows it: an error naming the
// file and the cause, never NaN samples passed on.
TEST(audio, OverflowingSamplesAreAnErrorAfterResampling) {
  TempDir dir;
  std::vector<float> loud = sine(1000.0, 44100, 0.5, 3e38);
  write_audio(dir.file("loud.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, loud, 44100, 1);
  expect_error([&] { wa::load_mono_16k(dir.file("loud.wav")); }, "loud.wav", "overflows when resampled to 16 kHz: its samples reach 3e+38");
}

TEST(audio, SpecialFilesAreRefusedWithoutBlocking) {
  TempDir dir;
  wavllm::test::make_fifo(dir.file("pipe.wav"));
  expect_error([&] { wa::load_mono_16k(dir.file("pipe.wav")); }, "pipe.wav", "FIFO");
  std::filesystem::create_symlink("/dev/zero", dir.file("zero.wav"));
  expect_error([&] { wa::load_mono_16k(dir.file("zero.wav")); }, "zero.wav", "character device");
}
