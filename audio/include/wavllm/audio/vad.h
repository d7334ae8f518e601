#pragma once
// Voice activity and the pieces a long recording is decoded in (docs/model.md §11): WebRTC's
// voice detector (Debian's libwebrtc-audio-processing) marks 10-ms frames of 16 kHz audio; runs
// of speech become regions (short pauses bridged, bursts under 0.1 s at a region's edges and
// regions under min_speech dropped); regions are grouped into
// pieces of at most max_piece_seconds, cut at the longest pause in the second half of the
// allowed length (in the quietest 100 ms where one region alone is too long), and padded by a
// margin that never reaches into the neighbouring piece. Torch-free.
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace wavllm::audio {

struct VadOptions {
  // WebRTC's aggressiveness: 0 keeps the most frames as speech, 3 drops the most non-speech.
  // 2 had the best precision and recall on the synthetic test set (eval/RESULTS.md).
  int aggressiveness = 2;
  double min_speech_seconds = 0.25;  // shorter runs of speech frames are noise
  double min_silence_seconds = 0.2;  // shorter pauses do not split a region (pieces are cut at the longest pause)
  double pad_seconds = 0.15;         // margin around each piece
  double max_piece_seconds = 30;     // no piece is longer (one Whisper window by default)

  // "" when valid, else which field is out of range and why.
  std::string problem() const;
};

constexpr int kVadFrameSamples = 160;  // 10 ms at 16 kHz

// A stretch of 16 kHz samples, [begin, end).
struct Span {
  int64_t begin = 0, end = 0;
  int64_t length() const { return end - begin; }
  bool operator==(const Span& o) const { return begin == o.begin && end == o.end; }
};
// "[begin, end)" in samples, for test failures.
inline std::ostream& operator<<(std::ostream& os, const Span& s) { return os << "[" << s.begin << ", " << s.end << ")"; }

// One decision per whole 10-ms frame of `samples` (a trailing part frame is not speech).
std::vector<bool> voice_frames(const float* samples, size_t n, int aggressiveness);

// Runs of speech frames as sample spans, after bridging pauses shorter than min_silence and
// dropping runs shorter than min_speech.
std::vector<Span> speech_regions(const std::vector<bool>& frames, const VadOptions& opt);

// The pieces to decode: regions grouped and cut as above, padded, each at most
// max_piece_seconds; `samples` (n of them) locate the quietest cut inside a long region.
std::vector<Span> plan_pieces(const std::vector<Span>& regions, const float* samples, size_t n, const VadOptions& opt);

// All three steps; empty when nothing is speech.
std::vector<Span> speech_pieces(const float* samples, size_t n, const VadOptions& opt);

}  // namespace wavllm::audio
