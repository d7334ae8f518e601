#include "wavllm/audio/vad.h"

#include <webrtc/modules/audio_processing/include/audio_processing.h>
#include <webrtc/modules/interface/module_common_types.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

namespace wavllm::audio {

namespace {

int64_t seconds_to_samples(double s) { return int64_t(std::llround(s * kSampleRate)); }

// The sample in [lo, hi) that starts the quietest 100 ms (least energy): where a region with no
// pause is cut.
int64_t quietest_cut(const float* samples, int64_t lo, int64_t hi) {
  constexpr int64_t kWindow = kSampleRate / 10;
  int64_t best = hi;
  double best_energy = INFINITY;
  for (int64_t at = lo; at + kWindow <= hi; at += kVadFrameSamples) {
    double e = 0;
    for (int64_t i = at; i < at + kWindow; ++i) e += double(samples[i]) * samples[i];
    if (e < best_energy) best_energy = e, best = at + kWindow / 2;
  }
  return best;
}

}  // namespace

std::string VadOptions::problem() const {
  if (aggressiveness < 0 || aggressiveness > 3) return "aggressiveness must be 0, 1, 2 or 3";
  if (!(min_speech_seconds >= 0 && min_speech_seconds <= 10)) return "min_speech_seconds must be in [0, 10]";
  if (!(min_silence_seconds >= 0 && min_silence_seconds <= 10)) return "min_silence_seconds must be in [0, 10]";
  if (!(pad_seconds >= 0 && pad_seconds <= 2)) return "pad_seconds must be in [0, 2]";
  if (!(max_piece_seconds >= 2 * pad_seconds + 1 && max_piece_seconds <= 3600))
    return "max_piece_seconds must be in [1 + 2 x pad_seconds, 3600]";
  return "";
}

std::vector<bool> voice_frames(const float* samples, size_t n, int aggressiveness) {
  static const webrtc::VoiceDetection::Likelihood kLikelihood[] = {
      webrtc::VoiceDetection::kHighLikelihood, webrtc::VoiceDetection::kModerateLikelihood,
      webrtc::VoiceDetection::kLowLikelihood, webrtc::VoiceDetection::kVeryLowLikelihood};
  if (aggressiveness < 0 || aggressiveness > 3)
    throw ArgumentError("voice activity aggressiveness must be 0, 1, 2 or 3, got " + std::to_string(aggressiveness));
  std::unique_ptr<webrtc::AudioProcessing> apm(webrtc::AudioProcessing::Create());
  webrtc::VoiceDetection* vad = apm ? apm->voice_detection() : nullptr;
  if (!vad || vad->Enable(true) != 0 || vad->set_likelihood(kLikelihood[aggressiveness]) != 0 ||
      vad->set_frame_size_ms(10) != 0)
    throw Error("the WebRTC voice activity detector could not be set up");
  webrtc::AudioFrame frame;
  frame.sample_rate_hz_ = kSampleRate;
  frame.num_channels_ = 1;
  frame.samples_per_channel_ = kVadFrameSamples;
  std::vector<bool> voiced(n / kVadFrameSamples);
  for (size_t f = 0; f < voiced.size(); ++f) {
    for (int i = 0; i < kVadFrameSamples; ++i) {
      const float x = std::clamp(samples[f * kVadFrameSamples + size_t(i)], -1.0f, 1.0f);
      frame.data_[i] = int16_t(std::lrint(x * 32767.0f));
    }
    frame.vad_activity_ = webrtc::AudioFrame::kVadUnknown;
    if (apm->ProcessStream(&frame) != 0) throw Error("the WebRTC voice activity detector failed on a frame");
    voiced[f] = vad->stream_has_voice();
  }
  return voiced;
}

std::vector<Span> speech_regions(const std::vector<bool>& frames, const VadOptions& opt) {
  const int64_t min_gap = seconds_to_samples(opt.min_silence_seconds), min_len = seconds_to_samples(opt.min_speech_seconds);
  // Runs of speech frames, then groups of runs with pauses shorter than min_gap between them.
  std::vector<std::vector<Span>> groups;
  for (size_t f = 0; f < frames.size(); ++f) {
    if (!frames[f]) continue;
    const int64_t begin = int64_t(f) * kVadFrameSamples, end = begin + kVadFrameSamples;
    if (!groups.empty() && groups.back().back().end == begin) groups.back().back().end = end;
    else if (!groups.empty() && begin - groups.back().back().end < min_gap) groups.back().push_back({begin, end});
    else groups.push_back({{begin, end}});
  }
  // A run shorter than kEdgeRun at either edge of a group is a noise burst next to the speech
  // (measured: it moved piece starts 0.3-0.5 s early at -50 dBFS noise); the group keeps its
  // longest run.
  constexpr int64_t kEdgeRun = kSampleRate / 10;
  std::vector<Span> regions;
  for (const auto& g : groups) {
    size_t first = 0, last = g.size() - 1;
    const size_t longest = size_t(std::max_element(g.begin(), g.end(), [](const Span& a, const Span& b) {
                                    return a.length() < b.length();
                                  }) - g.begin());
    while (first < longest && g[first].length() < kEdgeRun) ++first;
    while (last > longest && g[last].length() < kEdgeRun) --last;
    const Span r{g[first].begin, g[last].end};
    if (r.length() >= min_len) regions.push_back(r);
  }
  return regions;
}

std::vector<Span> plan_pieces(const std::vector<Span>& regions, const float* samples, size_t n, const VadOptions& opt) {
  if (const std::string p = opt.problem(); !p.empty()) throw ArgumentError("voice activity option " + p);
  const int64_t pad = seconds_to_samples(opt.pad_seconds);
  const int64_t limit = seconds_to_samples(opt.max_piece_seconds) - 2 * pad;  // before padding

  // Regions longer than the limit are split first, at the quietest point of their second half.
  std::vector<Span> parts;
  for (Span r : regions) {
    while (r.length() > limit) {
      const int64_t cut = quietest_cut(samples, r.begin + limit / 2, r.begin + limit);
      parts.push_back({r.begin, cut});
      r.begin = cut;
    }
    parts.push_back(r);
  }

  std::vector<Span> pieces;
  for (size_t i = 0; i < parts.size();) {
    // parts[i..j) fit in one piece. When more follow, it ends at the longest pause among the cuts
    // k in (i, j] (between parts[k-1] and parts[k]) that leave it at least half the allowed
    // length; the last cut that fits always qualifies, and a later one wins a tie.
    size_t j = i + 1;
    while (j < parts.size() && parts[j].end - parts[i].begin <= limit) ++j;
    size_t end = j;
    if (j < parts.size()) {
      int64_t longest = -1;
      for (size_t k = i + 1; k <= j; ++k) {
        if (k < j && parts[k - 1].end - parts[i].begin < limit / 2) continue;
        const int64_t pause = parts[k].begin - parts[k - 1].end;
        if (pause >= longest) longest = pause, end = k;
      }
    }
    pieces.push_back({parts[i].begin, parts[end - 1].end});
    i = end;
  }

  // The margin, never past the audio or into the middle of the pause before the neighbour.
  std::vector<Span> padded(pieces.size());
  for (size_t k = 0; k < pieces.size(); ++k) {
    const int64_t lo = k == 0 ? 0 : (pieces[k - 1].end + pieces[k].begin) / 2;
    const int64_t hi = k + 1 == pieces.size() ? int64_t(n) : (pieces[k].end + pieces[k + 1].begin) / 2;
    padded[k] = {std::max(lo, pieces[k].begin - pad), std::min(hi, pieces[k].end + pad)};
  }
  return padded;
}

std::vector<Span> speech_pieces(const float* samples, size_t n, const VadOptions& opt) {
  if (const std::string p = opt.problem(); !p.empty()) throw ArgumentError("voice activity option " + p);
  return plan_pieces(speech_regions(voice_frames(samples, n, opt.aggressiveness), opt), samples, n, opt);
}

}  // namespace wavllm::audio
