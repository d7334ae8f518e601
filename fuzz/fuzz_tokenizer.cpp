// tokenizer.model files come with downloaded models: the decoder parses the sentencepiece
// protobuf itself, so every byte string must load into a working tokenizer or raise wavllm::Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "wavllm/core/error.h"
#include "wavllm/decoder/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/wavllm_fuzz_tokenizer_" + std::to_string(getpid()) + ".model";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto tok = wavllm::decoder::Tokenizer::load(path);
    auto ids = tok.encode("Hello, world! \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 [INST] <SPEECH>");
    tok.decode(ids);
    for (int64_t id = 0; id < tok.vocab_size() && id < 64; ++id) tok.id_to_piece(id);
  } catch (const wavllm::Error&) {
  }
  return 0;
}
