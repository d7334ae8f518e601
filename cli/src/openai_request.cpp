#include "openai_request.h"

#include <climits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "wavllm/core/error.h"

namespace wavllm::cli {

namespace {

using json = nlohmann::json;

// The request's audio (base64, not yet decoded) and instruction.
struct ChatInput {
  std::string audio, format, instruction;
};

ChatInput chat_input(const json& body) {
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    throw HttpError{400, "messages must be a non-empty array", "messages"};
  const json& messages = body["messages"];
  for (size_t i = 0; i + 1 < messages.size(); ++i)
    if (!messages[i].is_object() || messages[i].value("role", "") != "system" || i > 0)
      throw HttpError{400, "one user message is answered (with an optional system message before it): multi-turn "
                           "conversations are not supported", "messages"};
  // value(), not operator[]: a const json's operator[] on a missing key is undefined (found by
  // fuzz_openai_request).
  if (messages.size() == 2 && !messages[0].value("content", json("")).is_string())
    throw HttpError{400, "the system message's content must be text", "messages"};
  if (messages.size() == 2 && !messages[0].value("content", std::string()).empty())
    throw HttpError{400, "the model's system prompt is fixed (config.json): send the instruction in the user message",
                    "messages"};
  const json& last = messages.back();
  if (!last.is_object() || last.value("role", "") != "user")
    throw HttpError{400, "the last message must come from the user", "messages"};
  ChatInput in;
  const json content = last.value("content", json());
  if (!content.is_array())
    throw HttpError{400, "the user message's content must be an array of parts with one input_audio part", "messages"};
  for (const json& part : content) {
    const std::string type = part.is_object() ? part.value("type", "") : "";
    if (type == "text" && part.contains("text") && part["text"].is_string()) {
      in.instruction += (in.instruction.empty() ? "" : "\n") + part["text"].get<std::string>();
    } else if (type == "input_audio" && part.contains("input_audio") && part["input_audio"].is_object()) {
      if (!in.audio.empty()) throw HttpError{400, "one input_audio part per request", "messages"};
      const json& a = part["input_audio"];
      if (!a.contains("data") || !a["data"].is_string() || a["data"].get<std::string>().empty())
        throw HttpError{400, "input_audio.data must be the audio file as base64", "messages"};
      in.audio = a["data"].get<std::string>();
      in.format = a.value("format", json("wav")).is_string() ? a.value("format", std::string("wav")) : "";
    } else {
      throw HttpError{400, "content parts must be {\"type\": \"text\"} or {\"type\": \"input_audio\"}", "messages"};
    }
  }
  if (in.audio.empty()) throw HttpError{400, "the user message has no input_audio part", "messages"};
  if (in.instruction.empty()) throw HttpError{400, "the user message has no text part (the instruction)", "messages"};
  return in;
}

template <class T>
T number(const json& body, const char* key, T fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_number()) throw HttpError{400, std::string(key) + " must be a number", key};
  if (std::is_integral<T>::value && !body[key].is_number_integer())
    throw HttpError{400, std::string(key) + " must be an integer", key};
  return body[key].get<T>();
}

GenerationOptions chat_options(const json& body, GenerationOptions o) {
  o.num_beams = 1;
  o.temperature = number(body, "temperature", o.temperature);
  o.top_p = number(body, "top_p", o.top_p);
  const int64_t max_tokens = number<int64_t>(body, "max_completion_tokens", number<int64_t>(body, "max_tokens", 0));
  if (max_tokens < 0 || max_tokens > INT_MAX) throw HttpError{400, "max_tokens must be 0 or more", "max_tokens"};
  if (max_tokens > 0) o.max_new_tokens = int(max_tokens);
  if (body.contains("seed") && !body["seed"].is_null()) {
    const int64_t seed = number<int64_t>(body, "seed", 0);
    if (seed < 0) throw HttpError{400, "seed must be 0 or more", "seed"};
    o.seed = uint64_t(seed);
  }
  if (number<int64_t>(body, "n", 1) != 1) throw HttpError{400, "n must be 1", "n"};
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& stop = body["stop"];
    o.stop.clear();
    if (stop.is_string()) o.stop.push_back(stop.get<std::string>());
    else if (stop.is_array() && stop.size() <= 4)
      for (const json& s : stop) {
        if (!s.is_string()) throw HttpError{400, "stop must be a string or up to 4 strings", "stop"};
        o.stop.push_back(s.get<std::string>());
      }
    else throw HttpError{400, "stop must be a string or up to 4 strings", "stop"};
  }
  try {
    o.validate();
  } catch (const ArgumentError& e) {
    throw HttpError{400, e.what(), ""};
  }
  return o;
}

}  // namespace

std::string decode_base64(const std::string& in, const std::string& param) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  size_t n = in.size();
  while (n > 0 && in[n - 1] == '=' && in.size() - n < 2) --n;
  std::string out;
  out.reserve(n / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int v = value(in[i]);
    if (v < 0) throw HttpError{400, "the audio data is not valid base64 (byte " + std::to_string(i) + ")", param};
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  if (n % 4 == 1) throw HttpError{400, "the audio data is not valid base64 (truncated)", param};
  return out;
}

ChatRequest parse_chat_request(const std::string& body, const GenerationOptions& defaults) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw HttpError{400, std::string("the body is not valid JSON: ") + e.what(), ""};
  }
  if (!j.is_object()) throw HttpError{400, "the body must be a JSON object", ""};
  ChatInput in;
  ChatRequest r;
  try {
    in = chat_input(j);
    r.options = chat_options(j, defaults);
    r.stream = j.value("stream", json(false)).is_boolean() && j.value("stream", false);
    r.logprobs = j.value("logprobs", json(false)).is_boolean() && j.value("logprobs", false);
  } catch (const json::exception& e) {  // a field of another JSON type than the one read (e.g. "role": 5)
    throw HttpError{400, std::string("a field has the wrong type: ") + e.what(), ""};
  }
  r.audio = decode_base64(in.audio, "messages");
  r.format = in.format;
  r.instruction = in.instruction;
  return r;
}

}  // namespace wavllm::cli
