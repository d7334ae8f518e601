// Audio file bytes (any container libsndfile knows): decoded to 16 kHz mono, or wavllm::Error.
// The log-mel is left out: its input is an already-validated float array, and one 30-s window
// under coverage instrumentation takes seconds, which would drown the parser in timeouts.
#include <cstddef>
#include <cstdint>

#include "wavllm/audio/audio.h"
#include "wavllm/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    wavllm::audio::DecodeOptions opt;
    opt.max_seconds = 60;  // keeps each input's work bounded
    wavllm::audio::decode_mono_16k(data, size, "fuzz", opt);
  } catch (const wavllm::Error&) {
  }
  return 0;
}

// libsndfile 1.2.0 leaks its Vorbis state when opening a malformed Ogg file fails (upstream,
// not ours); without this LeakSanitizer stops every run within seconds.
extern "C" const char* __lsan_default_suppressions() { return "leak:vorbis_info_init\n"; }
