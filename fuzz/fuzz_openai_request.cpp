// Chat completion bodies come from any HTTP client: parsed, or an HttpError 400 (or, for
// options the engine refuses, wavllm::Error), never a crash, hang or unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "openai_request.h"
#include "wavllm/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const wavllm::cli::ChatRequest r = wavllm::cli::parse_chat_request(body, wavllm::GenerationOptions{});
    // A parsed request has its audio and instruction, and decoding never grows the bytes.
    if (r.audio.empty() || r.instruction.empty() || r.audio.size() > size) __builtin_trap();
  } catch (const wavllm::cli::HttpError& e) {
    if (e.status != 400 || e.message.empty()) __builtin_trap();
  } catch (const wavllm::Error&) {
  }
  try {
    if (wavllm::cli::decode_base64(body, "fuzz").size() > size) __builtin_trap();
  } catch (const wavllm::cli::HttpError&) {
  }
  return 0;
}
