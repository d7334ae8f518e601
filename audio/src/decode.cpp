// Decoding with libsndfile. Every check that can be made from the header (rate, channels,
// declared length) is made before a sample is read, so a hostile header costs no memory;
// samples are read in fixed blocks and the buffer grows geometrically (linear total cost).
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wavllm::audio {
namespace {

constexpr sf_count_t kBlockFrames = 1 << 15;

struct MemoryStream {
  const unsigned char* data;
  sf_count_t size;
  sf_count_t pos;
};

sf_count_t mem_length(void* user) { return static_cast<MemoryStream*>(user)->size; }

sf_count_t mem_seek(sf_count_t offset, int whence, void* user) {
  auto* m = static_cast<MemoryStream*>(user);
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  sf_count_t p = base + offset;
  if (p < 0 || p > m->size) return -1;
  m->pos = p;
  return p;
}

sf_count_t mem_read(void* ptr, sf_count_t count, void* user) {
  auto* m = static_cast<MemoryStream*>(user);
  sf_count_t n = std::max<sf_count_t>(0, std::min(count, m->size - m->pos));
  if (n > 0) std::memcpy(ptr, m->data + m->pos, static_cast<size_t>(n));
  m->pos += n;
  return n;
}

sf_count_t mem_write(const void*, sf_count_t, void*) { return 0; }
sf_count_t mem_tell(void* user) { return static_cast<MemoryStream*>(user)->pos; }

[[noreturn]] void fail(const std::string& label, const std::string& why) {
  throw Error("audio '" + label + "': " + why);
}

std::string seconds_text(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string format_name(int format) {
  SF_FORMAT_INFO info{};
  info.format = format & SF_FORMAT_TYPEMASK;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &info, sizeof(info)) == 0 && info.name) return info.name;
  return "unknown container";
}

// libsndfile quietly shortens a WAV/AIFF whose data chunk runs past the end of the file and
// only says so in its log ("data : <declared> (should be <present>)"); a streamed file
// declares 0xFFFFFFFF and is not truncated. Ogg logs a missing end-of-stream page, which
// libsndfile's own writer also omits: it means truncation only when the last page (which
// gives the length) is missing too.
bool log_says_truncated(SNDFILE* f, bool known_length) {
  char log[8192] = {0};
  sf_command(f, SFC_GET_LOG_INFO, log, sizeof(log) - 1);
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    if (!known_length && line.find("ended unexpectedly") != std::string::npos) return true;
    long long declared = 0, present = 0;
    char tag[8] = {0};
    if (std::sscanf(line.c_str(), "%7s : %lld (should be %lld)", tag, &declared, &present) == 3 &&
        (std::strcmp(tag, "data") == 0 || std::strcmp(tag, "SSND") == 0) && present < declared &&
        declared < 0xFFFFFFFFLL)
      return true;
  }
  return false;
}

Buffer read_all(SNDFILE* f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt) {
  if (info.channels < 1 || info.channels > kMaxChannels)
    fail(label, std::to_string(info.channels) + " channels (supported: 1 to " + std::to_string(kMaxChannels) + ")");
  if (info.samplerate < kMinSampleRate || info.samplerate > kMaxSampleRate)
    fail(label, "sample rate " + std::to_string(info.samplerate) + " Hz is outside " + std::to_string(kMinSampleRate) +
                    " to " + std::to_string(kMaxSampleRate) + " Hz");
  if (!(opt.max_seconds > 0)) fail(label, "max_seconds must be positive");
  const double limit_frames_d = opt.max_seconds * info.samplerate;
  const sf_count_t limit_frames = static_cast<sf_count_t>(std::min(limit_frames_d, 9.0e18));
  // Formats that cannot tell their length (Ogg, some MP3) report SF_COUNT_MAX.
  const bool known_length = info.frames >= 0 && info.frames != SF_COUNT_MAX;
  if (known_length && info.frames > limit_frames)
    fail(label, "is " + seconds_text(static_cast<double>(info.frames) / info.samplerate) + " long, over the " +
                    seconds_text(opt.max_seconds) + " limit");
  if (known_length && info.frames == 0)
    fail(label, log_says_truncated(f, known_length)
                    ? "is truncated: the header declares audio data the file does not hold"
                    : "contains no samples (empty audio)");

  Buffer b;
  b.sample_rate = info.samplerate;
  b.channels = info.channels;
  const size_t ch = static_cast<size_t>(info.channels);
  // No reservation from the header's frame count: a 43-byte file may declare millions of frames
  // (found by fuzz_audio). The buffer grows with what is really decoded.
  std::vector<float> block(static_cast<size_t>(kBlockFrames) * ch);
  sf_count_t total = 0;
  for (;;) {
    sf_count_t got = sf_readf_float(f, block.data(), kBlockFrames);
    if (got <= 0) break;
    total += got;
    if (total > limit_frames)
      fail(label, "is longer than the " + seconds_text(opt.max_seconds) + " limit");
    b.interleaved.insert(b.interleaved.end(), block.begin(), block.begin() + got * static_cast<sf_count_t>(ch));
  }
  if (sf_error(f) != SF_ERR_NO_ERROR)
    fail(label, std::string("decoding failed (truncated or corrupt?): ") + sf_strerror(f));
  if (known_length && total < info.frames)
    fail(label, "is truncated: the header declares " + std::to_string(info.frames) + " frames, only " +
                    std::to_string(total) + " could be decoded");
  if (log_says_truncated(f, known_length))
    fail(label, "is truncated: the file ends before the audio data the header declares");
  if (total == 0) fail(label, "contains no samples (empty audio)");
  return b;
}

struct Closer {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using Handle = std::unique_ptr<SNDFILE, Closer>;

Buffer decode_open(Handle f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt) {
  try {
    return read_all(f.get(), info, label, opt);
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail(label, "out of memory while decoding " + format_name(info.format));
  }
}

}  // namespace

Buffer decode_file(const std::string& path, const DecodeOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, "no such file");
  if (fs::is_directory(st)) fail(path, "is a directory, not an audio file");
  if (!fs::is_regular_file(st)) fail(path, "is not a regular file");
  if (fs::file_size(path, ec) == 0) fail(path, "is an empty file (0 bytes)");
  SF_INFO info{};
  Handle f(sf_open(path.c_str(), SFM_READ, &info));
  if (!f) fail(path, std::string("cannot be read as audio: ") + sf_strerror(nullptr));
  return decode_open(std::move(f), info, path, opt);
}

Buffer decode_memory(const void* data, size_t size, const std::string& label, const DecodeOptions& opt) {
  if (size == 0 || data == nullptr) fail(label, "is empty (0 bytes)");
  MemoryStream m{static_cast<const unsigned char*>(data), static_cast<sf_count_t>(size), 0};
  SF_VIRTUAL_IO io{mem_length, mem_seek, mem_read, mem_write, mem_tell};
  SF_INFO info{};
  Handle f(sf_open_virtual(&io, SFM_READ, &info, &m));
  if (!f) fail(label, std::string("cannot be read as audio: ") + sf_strerror(nullptr));
  return decode_open(std::move(f), info, label, opt);
}

void check_samples(const float* s, size_t n, const std::string& label) {
  if (n == 0) fail(label, "contains no samples (empty audio)");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(s[i]))
      fail(label, "sample " + std::to_string(i) + " is " + (std::isnan(s[i]) ? "NaN" : "infinite"));
}

std::vector<float> load_mono_16k(const std::string& path, const DecodeOptions& opt) {
  Buffer b = decode_file(path, opt);
  // Checked before resampling: the resampler would smear one NaN over its filter length.
  check_samples(b.interleaved.data(), b.interleaved.size(), path);
  std::vector<float> mono = to_mono_16k(b.interleaved.data(), b.frames(), b.sample_rate, b.channels);
  check_samples(mono.data(), mono.size(), path);
  return mono;
}

}  // namespace wavllm::audio
