#pragma once
// A recording's answer as files: text, SubRip, WebVTT, CSV and JSON, named as whisper.cpp names
// them (-otxt -osrt -ovtt -ocsv -oj). Text that would break a cue (blank lines, "-->", control
// characters, invalid UTF-8 from a random-weight model) is mended, never written as is.
#include <string>
#include <vector>

#include "wavllm/pipeline/segments.h"

namespace wavllm::cli {

struct Transcript {
  std::string audio, prompt;
  double duration = 0, speech_seconds = 0;
  bool segmented = false;  // pieces of speech (false: the reference's single request)
  std::vector<Segment> segments;
};

// "01:02:03,456" (SubRip, sep ',') or "01:02:03.456" (WebVTT, sep '.').
std::string timestamp(double seconds, char sep);
// Valid UTF-8 on one logical cue: invalid bytes become U+FFFD, control characters spaces,
// blank lines single line breaks, "-->" "->".
std::string cue_text(const std::string& text);

std::string to_txt(const Transcript& t);  // one line per piece
std::string to_srt(const Transcript& t);
std::string to_vtt(const Transcript& t);
std::string to_csv(const Transcript& t);  // start,end in milliseconds, text quoted (whisper.cpp's columns)
std::string to_json(const Transcript& t, bool logprobs);

}  // namespace wavllm::cli
