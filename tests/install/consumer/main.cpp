// consumer MODEL_DIR AUDIO: prints the greedy transcription (10 tokens) of AUDIO.
#include <cstdio>

#include "every_header.h"  // each installed public header, compiled here

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  try {
    const auto model = wavllm::Model::load(argv[1]);
    wavllm::GenerationOptions opt = model->generation_options();
    opt.max_new_tokens = 10;
    const auto r = model->generate(wavllm::DecodedAudio::load(argv[2]), wavllm::transcribe_instruction(), opt);
    std::printf("%s\n", r.text.c_str());
  } catch (const wavllm::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
