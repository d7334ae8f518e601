#include <algorithm>
#include <array>
#include <cctype>

#include "wavllm/core/error.h"
#include "wavllm/pipeline/model.h"

namespace wavllm {

namespace {

// Target languages accepted by `translate`: names as the reference writes them ("German"), or
// their ISO 639-1 codes ("de", as whisper.cpp's -l takes them). A fixed list, so that a typo is
// an error instead of a silently odd instruction.
struct Language {
  const char* name;
  const char* code;
};
constexpr std::array<Language, 24> kLanguages = {{
    {"Arabic", "ar"},  {"Catalan", "ca"},    {"Chinese", "zh"}, {"Czech", "cs"},     {"Dutch", "nl"},
    {"English", "en"}, {"Estonian", "et"},   {"French", "fr"},  {"German", "de"},    {"Hindi", "hi"},
    {"Indonesian", "id"}, {"Italian", "it"}, {"Japanese", "ja"}, {"Korean", "ko"},   {"Latvian", "lv"},
    {"Mongolian", "mn"}, {"Persian", "fa"},  {"Polish", "pl"},  {"Portuguese", "pt"}, {"Russian", "ru"},
    {"Slovenian", "sl"}, {"Spanish", "es"},  {"Swedish", "sv"}, {"Turkish", "tr"}}};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

std::string transcribe_instruction() {
  return "Based on the attached audio, generate a comprehensive text transcription of the spoken content.";
}

std::string translate_instruction(const std::string& language) {
  const std::string want = lower(trim(language));
  for (const Language& l : kLanguages)
    if (lower(l.name) == want || l.code == want) return std::string("Translate the audio clip into ") + l.name + ".";
  std::string known;
  for (const Language& l : kLanguages) known += (known.empty() ? "" : ", ") + std::string(l.name) + " (" + l.code + ")";
  throw ArgumentError("unknown target language '" + language + "' (known: " + known + ")");
}

std::vector<std::string> translation_languages() {
  std::vector<std::string> names;
  for (const Language& l : kLanguages) names.push_back(l.name);
  return names;
}

std::string speaker_verification_instruction() { return "Is there only one speaker in the audio clip?"; }

std::string emotion_instruction() {
  return "Can you describe the emotional condition of the speaker in the provided audio clip?";
}

std::vector<std::string> preset_instructions() {
  std::vector<std::string> out = {transcribe_instruction()};
  for (const Language& l : kLanguages) out.push_back(translate_instruction(l.name));
  out.push_back(speaker_verification_instruction());
  out.push_back(emotion_instruction());
  return out;
}

std::string question_instruction(const std::string& question) {
  const std::string q = trim(question);
  if (q.empty()) throw ArgumentError("the question is empty");
  return q;
}

}  // namespace wavllm
