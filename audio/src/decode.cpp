// Decoding with libsndfile. Every check that can be made from the header (rate, channels,
// declared length) is made before a sample is read, so a hostile header costs no memory;
// samples are read in fixed blocks, and load_mono_16k resamples each block as it comes, so
// memory follows the 16 kHz mono result, not the file's rate x channels.
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"
#include "wavllm/core/files.h"

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

// Valid audio over the time limit: a limit, not a fault of the file (HTTP 413 in the server).
[[noreturn]] void too_long(const std::string& label, const std::string& why) {
  throw ResourceError("audio '" + label + "': " + why);
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

// Everything the header tells, checked before a sample is read.
void check_header(SNDFILE* f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt) {
  if (info.channels < 1 || info.channels > kMaxChannels)
    fail(label, std::to_string(info.channels) + " channels (supported: 1 to " + std::to_string(kMaxChannels) + ")");
  if (info.samplerate < kMinSampleRate || info.samplerate > kMaxSampleRate)
    fail(label, "sample rate " + std::to_string(info.samplerate) + " Hz is outside " + std::to_string(kMinSampleRate) +
                    " to " + std::to_string(kMaxSampleRate) + " Hz");
  if (!(opt.max_seconds > 0)) fail(label, "max_seconds must be positive");
  const bool known_length = info.frames >= 0 && info.frames != SF_COUNT_MAX;
  if (known_length && static_cast<double>(info.frames) > opt.max_seconds * info.samplerate)
    too_long(label, "is " + seconds_text(static_cast<double>(info.frames) / info.samplerate) + " long, over the " +
                    seconds_text(opt.max_seconds) + " limit");
  if (known_length && info.frames == 0)
    fail(label, log_says_truncated(f, known_length)
                    ? "is truncated: the header declares audio data the file does not hold"
                    : "contains no samples (empty audio)");
}

// Reads every frame in fixed blocks, handing each to sink(block, frames, first_sample); the
// time limit counts frames as they are decoded. No reservation from the header's frame count:
// a 43-byte file may declare millions of frames (found by fuzz_audio).
template <class Sink>
void read_blocks(SNDFILE* f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt, Sink&& sink) {
  const bool known_length = info.frames >= 0 && info.frames != SF_COUNT_MAX;
  const sf_count_t limit_frames = static_cast<sf_count_t>(std::min(opt.max_seconds * info.samplerate, 9.0e18));
  const size_t ch = static_cast<size_t>(info.channels);
  std::vector<float> block(static_cast<size_t>(kBlockFrames) * ch);
  sf_count_t total = 0;
  for (;;) {
    const sf_count_t got = sf_readf_float(f, block.data(), kBlockFrames);
    if (got <= 0) break;
    if (total + got > limit_frames) too_long(label, "is longer than the " + seconds_text(opt.max_seconds) + " limit");
    sink(block.data(), static_cast<size_t>(got), static_cast<size_t>(total) * ch);
    total += got;
  }
  if (sf_error(f) != SF_ERR_NO_ERROR)
    fail(label, std::string("decoding failed (truncated or corrupt?): ") + sf_strerror(f));
  if (known_length && total < info.frames)
    fail(label, "is truncated: the header declares " + std::to_string(info.frames) + " frames, only " +
                    std::to_string(total) + " could be decoded");
  if (log_says_truncated(f, known_length))
    fail(label, "is truncated: the file ends before the audio data the header declares");
  if (total == 0) fail(label, "contains no samples (empty audio)");
}

Buffer read_raw(SNDFILE* f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt) {
  Buffer b;
  b.sample_rate = info.samplerate;
  b.channels = info.channels;
  const size_t ch = static_cast<size_t>(info.channels);
  read_blocks(f, info, label, opt, [&](const float* block, size_t frames, size_t) {
    if (b.interleaved.size() + frames * ch > kMaxRawSamples)
      fail(label, "decodes to more than " + std::to_string(kMaxRawSamples) +
                      " samples (frames x channels); load_mono_16k reads such files block by block");
    b.interleaved.insert(b.interleaved.end(), block, block + frames * ch);
  });
  return b;
}

std::vector<float> read_mono_16k(SNDFILE* f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt) {
  MonoResampler resampler(info.samplerate, info.channels);
  std::vector<float> mono;
  // Sized once from the header (already checked against the time limit) where it tells the
  // length: growing by doubling held up to twice an hour's 230 MB at once.
  if (info.frames > 0 && info.frames != SF_COUNT_MAX)
    mono.reserve(size_t(double(info.frames) * kSampleRate / info.samplerate) + 4096);
  const size_t ch = static_cast<size_t>(info.channels);
  float peak = 0;
  read_blocks(f, info, label, opt, [&](const float* block, size_t frames, size_t first) {
    // Checked before resampling: the resampler would smear one NaN over its filter length.
    for (size_t i = 0; i < frames * ch; ++i) {
      if (!std::isfinite(block[i]))
        fail(label, "sample " + std::to_string(first + i) + " is " + (std::isnan(block[i]) ? "NaN" : "infinite"));
      peak = std::max(peak, std::fabs(block[i]));
    }
    resampler.push(block, frames, mono);
  });
  resampler.finish(mono);
  // The input was finite, so a non-finite output is the resampler's filter overflowing.
  if (std::any_of(mono.begin(), mono.end(), [](float v) { return !std::isfinite(v); })) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", peak);
    fail(label, std::string("overflows when resampled to 16 kHz: its samples reach ") + text +
                    " in magnitude (audio is expected within [-1, 1]); rescale it");
  }
  if (mono.empty()) fail(label, "contains no samples (empty audio)");
  return mono;
}

struct Closer {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using Handle = std::unique_ptr<SNDFILE, Closer>;

template <class Reader>
auto decode_open(SNDFILE* f, const SF_INFO& info, const std::string& label, const DecodeOptions& opt, Reader read) {
  Handle h(f);
  check_header(h.get(), info, label, opt);  // for both readers; the resampler needs a valid rate
  try {
    return read(h.get(), info, label, opt);
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail(label, "out of memory while decoding " + format_name(info.format));
  }
}

// The file as a regular file (a FIFO or a device is refused before libsndfile reads a byte).
template <class Reader>
auto decode_path(const std::string& path, const DecodeOptions& opt, Reader read) {
  std::unique_ptr<RegularFile> file;
  try {
    file = std::make_unique<RegularFile>(path, "audio");
  } catch (const FileError& e) {
    fail(path, e.reason());
  }
  if (file->size() == 0) fail(path, "is an empty file (0 bytes)");
  SF_INFO info{};
  SNDFILE* f = sf_open_fd(file->fd(), SFM_READ, &info, /*close_desc=*/SF_FALSE);
  if (!f) fail(path, std::string("cannot be read as audio: ") + sf_strerror(nullptr));
  return decode_open(f, info, path, opt, read);
}

template <class Reader>
auto decode_bytes(const void* data, size_t size, const std::string& label, const DecodeOptions& opt, Reader read) {
  if (size == 0 || data == nullptr) fail(label, "is empty (0 bytes)");
  MemoryStream m{static_cast<const unsigned char*>(data), static_cast<sf_count_t>(size), 0};
  SF_VIRTUAL_IO io{mem_length, mem_seek, mem_read, mem_write, mem_tell};
  SF_INFO info{};
  SNDFILE* f = sf_open_virtual(&io, SFM_READ, &info, &m);
  if (!f) fail(label, std::string("cannot be read as audio: ") + sf_strerror(nullptr));
  return decode_open(f, info, label, opt, read);
}

}  // namespace

Buffer decode_file(const std::string& path, const DecodeOptions& opt) { return decode_path(path, opt, read_raw); }

Buffer decode_memory(const void* data, size_t size, const std::string& label, const DecodeOptions& opt) {
  return decode_bytes(data, size, label, opt, read_raw);
}

std::vector<float> load_mono_16k(const std::string& path, const DecodeOptions& opt) {
  return decode_path(path, opt, read_mono_16k);
}

std::vector<float> decode_mono_16k(const void* data, size_t size, const std::string& label, const DecodeOptions& opt) {
  return decode_bytes(data, size, label, opt, read_mono_16k);
}

void check_samples(const float* s, size_t n, const std::string& label) {
  if (n == 0) fail(label, "contains no samples (empty audio)");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(s[i]))
      fail(label, "sample " + std::to_string(i) + " is " + (std::isnan(s[i]) ? "NaN" : "infinite"));
}

}  // namespace wavllm::audio
