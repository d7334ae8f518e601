// Batch manifests (TSV) and --shard values come from users: parsed, or wavllm::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "manifest.h"
#include "wavllm/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto items = wavllm::cli::parse_manifest(text, "fuzz");
    // Shards of a parsed manifest are disjoint and cover it.
    size_t total = 0;
    for (int64_t i = 0; i < 3; ++i) total += wavllm::cli::select_shard(items, {i, 3}).size();
    if (total != items.size()) __builtin_trap();
  } catch (const wavllm::Error&) {
  }
  try {
    wavllm::cli::parse_shard(text.substr(0, 32));
  } catch (const wavllm::Error&) {
  }
  return 0;
}
