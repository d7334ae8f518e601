#pragma once
// The bytes of OpenAI-style requests that `wavllm serve` parses itself (docs/server.md): the
// chat request's JSON and its base64 audio. Torch-free and model-free, so the fuzzer runs it
// (fuzz/fuzz_openai_request.cpp). HTTP itself is cpp-httplib's.
#include <string>

#include "wavllm/core/generation.h"

namespace wavllm::cli {

// A request the server refuses, as OpenAI's error body says it: status, message, type, param.
struct HttpError {
  int status;
  std::string message;
  std::string param;
  std::string type() const {
    switch (status) {
      case 401: return "authentication_error";
      case 404: return "not_found_error";
      case 429: return "rate_limit_error";
      case 500: return "server_error";
      case 503: return "service_unavailable";
      default: return "invalid_request_error";
    }
  }
};

// RFC 4648 base64 (padding optional, no whitespace); an HttpError 400 naming `param` for any
// other byte. The output is at most 3/4 of the input: bounded by the request body.
std::string decode_base64(const std::string& in, const std::string& param);

// A /v1/chat/completions body: one user message with one input_audio part (its bytes decoded
// from base64) and text parts (the instruction), the decoding options laid over `defaults` and
// validated. An HttpError 400 names the first problem; nothing else is thrown for any bytes.
struct ChatRequest {
  std::string audio, format, instruction;
  GenerationOptions options;
  bool stream = false, logprobs = false;
};
ChatRequest parse_chat_request(const std::string& body, const GenerationOptions& defaults);

}  // namespace wavllm::cli
