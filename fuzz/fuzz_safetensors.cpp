// Any byte string handed to the safetensors reader either parses into tensors whose every
// byte lies inside the buffer, or raises wavllm::Error.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "wavllm/core/error.h"
#include "wavllm/core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = wavllm::st::File::from_bytes(data, size, "fuzz");
    volatile uint8_t sink = 0;
    for (const auto& [name, info] : f->tensors()) {
      const uint8_t* p = f->data(info);
      if (info.nbytes) sink ^= p[0] ^ p[info.nbytes - 1];  // ASan flags any byte outside the image
      if (info.numel() <= 4096) {
        if (info.dtype == wavllm::st::DType::I64 || info.dtype == wavllm::st::DType::I32)
          f->read_i64(name);
        else
          f->read_f32(name);
      }
    }
  } catch (const wavllm::Error&) {
  }
  return 0;
}
