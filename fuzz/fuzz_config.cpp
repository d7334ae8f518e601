// config.json text from an untrusted model directory: parsed and validated, or wavllm::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "wavllm/core/config.h"
#include "wavllm/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto cfg = wavllm::ModelConfig::from_json_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    // A valid config must round-trip. (Its tensor list comes from the LibTorch layers, which this
    // torch-free fuzzer does not link; ConfigTest checks it for extreme configs.)
    auto again = wavllm::ModelConfig::from_json_text(cfg.to_json_text(), "fuzz round trip");
    if (again.to_json_text() != cfg.to_json_text()) __builtin_trap();
  } catch (const wavllm::Error&) {
  }
  return 0;
}
