#include "transcript.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace wavllm::cli {

namespace {

// Length of the valid UTF-8 sequence at s[i], 0 when it is not one.
size_t utf8_length(const std::string& s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 0;
  return n;
}

std::string valid_utf8(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(s, i, n);
    i += n;
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// Cues numbered from 1 in SubRip; empty ones (nothing said in a piece) are left out.
std::string cues(const Transcript& t, bool srt) {
  std::string out = srt ? "" : "WEBVTT\n\n";
  size_t n = 0;
  for (const Segment& s : t.segments) {
    const std::string text = cue_text(s.text);
    if (text.find_first_not_of(" \n") == std::string::npos) continue;
    if (srt) out += std::to_string(++n) + "\n";
    out += timestamp(s.start, srt ? ',' : '.') + " --> " + timestamp(s.end, srt ? ',' : '.') + "\n" + text + "\n\n";
  }
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \n");
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(" \n") - b + 1);
}

}  // namespace

std::string timestamp(double seconds, char sep) {
  const long long ms = std::llround(std::max(0.0, seconds) * 1000);
  char s[32];
  std::snprintf(s, sizeof s, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, sep, ms % 1000);
  return s;
}

std::string cue_text(const std::string& text) {
  std::string s = valid_utf8(text);
  for (char& c : s)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == 0x7F) c = ' ';
  while (s.find("\n\n") != std::string::npos) s = replace_all(s, "\n\n", "\n");
  while (s.find("-->") != std::string::npos) s = replace_all(s, "-->", "->");
  return trim(s);
}

std::string to_txt(const Transcript& t) {
  std::string out;
  for (const Segment& s : t.segments) out += replace_all(cue_text(s.text), "\n", " ") + "\n";  // a line per piece
  return out;
}

std::string to_srt(const Transcript& t) { return cues(t, true); }
std::string to_vtt(const Transcript& t) { return cues(t, false); }

std::string to_csv(const Transcript& t) {
  std::string out = "start,end,text\n";
  for (const Segment& s : t.segments)
    out += std::to_string(std::llround(s.start * 1000)) + "," + std::to_string(std::llround(s.end * 1000)) + ",\"" +
           replace_all(cue_text(s.text), "\"", "\"\"") + "\"\n";
  return out;
}

std::string to_json(const Transcript& t, bool logprobs) {
  nlohmann::json segments = nlohmann::json::array();
  std::string text;
  for (size_t i = 0; i < t.segments.size(); ++i) {
    const Segment& s = t.segments[i];
    nlohmann::json j = {{"id", i},
                        {"start", s.start},
                        {"end", s.end},
                        {"text", s.text},
                        {"token_ids", s.token_ids},
                        {"avg_logprob", s.avg_logprob}};
    if (logprobs) j["token_logprobs"] = s.token_logprobs;
    segments.push_back(std::move(j));
    text += (text.empty() ? "" : " ") + s.text;
  }
  const nlohmann::json j = {{"audio", t.audio},       {"prompt", t.prompt},
                            {"duration", t.duration}, {"speech_seconds", t.speech_seconds},
                            {"segmented", t.segmented}, {"text", text},
                            {"segments", segments}};
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace wavllm::cli
