#pragma once
// The whole WavLLM model (docs/model.md §2-§7): audio at 16 kHz + an instruction -> text.
// Loaded once, then immutable: every method is const and may be called from several threads
// at once (the CLI batch mode and the Python binding rely on that).
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wavllm/core/config.h"
#include "wavllm/decoder/decoding.h"
#include "wavllm/decoder/tokenizer.h"

namespace wavllm {

// How a model is loaded and run, typed and checked once.
struct ModelOptions {
  at::Device device = at::kCPU;
  // nullopt ("auto"): the float dtype the weights are stored in (stored_dtype), so that a
  // bfloat16 folder is not silently widened to float32.
  std::optional<at::ScalarType> dtype;
  // Intra-op threads of this model's calls (resolve_threads: 0 = one per core). Set for the
  // calling thread for the length of each call only (ThreadScope): loading a model changes no
  // process-wide setting.
  int threads = 0;
  // Beyond the reference (docs/model.md §2): Whisper encodes only the audio plus this many
  // seconds (0 to 30) of each 30-s window instead of the whole padded window; nullopt (the
  // default) keeps the reference's full window. Faster on short audio, at a fidelity cost
  // measured in eval/RESULTS.md.
  std::optional<double> whisper_margin_seconds;

  // From the text of CLI flags or Python keywords ("auto" or a parse_dtype name): an
  // ArgumentError names a bad value, and float16 on CPU is one (LibTorch has no float16
  // convolutions there).
  static ModelOptions parse(const std::string& device, const std::string& dtype, int threads);
};

// Wall-clock seconds spent in each stage of one call.
struct StageTimings {
  double audio = 0, frontend = 0, whisper = 0, wavlm = 0, adapters = 0, prompt_adapter = 0, prefill = 0,
         decode = 0;
  double total() const { return audio + frontend + whisper + wavlm + adapters + prompt_adapter + prefill + decode; }
  // (stage, seconds) in pipeline order with "total" last: the one serialised form of the
  // timings, for the CLI's JSON, batch lines and the binding's dict alike.
  std::vector<std::pair<const char*, double>> items() const;
};

struct GenerationResult {
  std::string text;
  std::vector<int64_t> token_ids;       // generated ids (after the forced prefix, EOS stripped)
  std::vector<float> token_logprobs;    // per token id: its log-probability when it was chosen
  double avg_logprob() const;           // their mean (0 for no tokens): faster-whisper's avg_logprob
  std::vector<int64_t> decoded_tokens;  // every token chosen after the initial BOS
  at::Tensor step_logits;               // [steps, vocab] when GenerationOptions asked for them
  StageTimings timings;                 // timings.audio: decoding the file (0 for samples given as such)
  double audio_seconds = 0;
  double real_time_factor = 0;  // timings.total() / audio_seconds

  // {"text", "token_ids", "audio_seconds", "real_time_factor", "timings": {items()}} as one line
  // of JSON; invalid UTF-8 in the text (random weights make any bytes) becomes U+FFFD.
  std::string to_json() const;
};

// A file's audio at 16 kHz mono, with the seconds decoding it took (the "audio" stage).
struct DecodedAudio {
  std::vector<float> samples;
  double seconds = 0;
  static DecodedAudio load(const std::string& path);
};

// One piece of audio's Whisper output, computed in a batch with other pieces (Model::encode_whisper)
// for generate() to decode as if the piece ran alone.
struct WhisperEncoded {
  at::Tensor output;  // [parts, L, d] in the weights' dtype: what generate() computes for the piece
  double frontend_seconds = 0, whisper_seconds = 0;  // the piece's share of the batch's time (by parts)
};

// A request decoded among others (continuous batching, docs/server.md): Model::start runs its
// encoders and prefills its prompt, Model::step advances any set of running requests by a token
// each in one decoder pass, Model::finish gives its result once done(). Greedy and sampled
// requests get exactly the tokens generate() gives them (on CPU).
class RunningRequest {
 public:
  bool done() const { return sequence_.done(); }
  // Ends it where it is and frees its KV cache (a cancelled request).
  void cancel() { sequence_.stop(); }
  size_t generated_tokens() const { return sequence_.generated(); }

 private:
  friend class Model;
  RunningRequest(decoder::Sequence s, const StageTimings& t, size_t samples);
  decoder::Sequence sequence_;
  StageTimings timings_;
  size_t samples_ = 0;
};

// The float dtype holding most of a model directory's parameters, read from the safetensors
// headers only.
at::ScalarType stored_dtype(const std::string& model_dir);

class Model {
 public:
  // Reads config.json, checks the directory (config.json, model*.safetensors, tokenizer.model),
  // loads the weights to opt.device / opt.dtype and builds every stage once. An ArgumentError
  // for options this engine cannot run (float16 on CPU, negative threads).
  static std::shared_ptr<Model> load(const std::string& model_dir, const ModelOptions& opt = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const;
  const std::string& directory() const;
  // True for a model with random weights (made by make-random-model, or the bundled demo, whose
  // README.md says "RANDOM weights" on its first line): its output text is meaningless.
  bool random_weights() const;
  // Decoding options filled from config.json's "generation" section (the caller may override).
  GenerationOptions generation_options() const;
  at::Device device() const;
  at::ScalarType dtype() const;
  int threads() const;  // resolved: the intra-op threads each call runs with
  std::optional<double> whisper_margin_seconds() const;

  // Per 30-s part [T, d], cut as in docs/model.md §2 (float32 on CPU).
  std::vector<at::Tensor> whisper_encoder(const std::vector<float>& samples16k) const;
  // The input of WavLM layer 0 and the output of every layer: L+1 of [T, h] (float32 on CPU).
  std::vector<at::Tensor> wavlm_hidden_states(const std::vector<float>& samples16k) const;
  // After fusion: [T, dim] (float32 on CPU).
  at::Tensor audio_embeddings(const std::vector<float>& samples16k) const;
  // How many audio embeddings (decoder positions) audio of this many samples becomes; 0 when
  // it is too short for the model. Lets a caller budget the context before any compute.
  int64_t audio_token_count(int64_t samples16k) const;
  // The most 16 kHz samples one request with this instruction takes: its prompt and their audio
  // tokens fill the decoder's context (the rotary table) at most.
  int64_t longest_audio_samples(const std::string& instruction) const;
  // Bytes of activations encoding that much audio holds at its peak (both encoders, every live
  // buffer); audio that needs more than the machine has is refused with this figure.
  uint64_t activation_bytes(int64_t samples16k) const;
  decoder::PromptIds prompt_ids(const std::string& instruction) const;
  // One token's text as OpenAI's logprobs list it: its piece with "▁" as a space, a byte piece
  // as that byte. An Error for an id outside the vocabulary.
  std::string token_text(int64_t id) const;
  // The prompt-aware LoRA scale [dim] (float32 on CPU); cached per instruction.
  at::Tensor prompt_scale(const std::string& instruction) const;
  // Computes every preset instruction's LoRA scale and writes them beside the weights, as
  // prompt_scales.safetensors in the model directory (replaced atomically), for this build,
  // dtype, device and thread count. A later load of the directory with the same ones takes those
  // scales from the file, bit for bit what the prompt adapter gives, instead of running it
  // (docs/model.md §5a). Returns the file's path.
  std::string save_preset_scales() const;
  // How many instructions' scales this load took from prompt_scales.safetensors: 0 without the
  // file, or when it was written by another build, dtype, device, thread count or weights.
  size_t preset_scales_loaded() const;
  // on_text receives the text as it is produced (streaming output).
  GenerationResult generate(const std::vector<float>& samples16k, const std::string& instruction,
                            const GenerationOptions& opt,
                            const decoder::TextCallback& on_text = nullptr) const;
  // Whisper's output for several pieces of audio in one pass of the encoder, their 30-s parts
  // stacked in one batch: each equals the piece's own output up to the order of float sums (the
  // encoder has no mask and no operation across parts). Each piece is checked as generate()
  // checks audio, and the batch's activations against the memory budget.
  std::vector<WhisperEncoded> encode_whisper(const std::vector<std::vector<float>>& pieces) const;
  // generate() for audio whose Whisper output encode_whisper() computed.
  GenerationResult generate(const std::vector<float>& samples16k, const WhisperEncoded& whisper,
                            const std::string& instruction, const GenerationOptions& opt,
                            const decoder::TextCallback& on_text = nullptr) const;
  // Continuous batching (RunningRequest): checks as generate() does, runs the encoders (whisper:
  // the audio's encode_whisper() output, or null) and prefills the prompt; num_beams must be 1.
  // on_text is called from the thread that runs start() and step().
  std::unique_ptr<RunningRequest> start(const std::vector<float>& samples16k, const WhisperEncoded* whisper,
                                        const std::string& instruction, const GenerationOptions& opt,
                                        const decoder::TextCallback& on_text = nullptr) const;
  // One token more for every request of the batch that is not done.
  void step(const std::vector<RunningRequest*>& batch) const;
  // The result of a done request (an Error when its decoding failed).
  GenerationResult finish(RunningRequest& r) const;
  // The same for decoded audio: its decoding time is the result's "audio" stage.
  GenerationResult generate(const DecodedAudio& audio, const std::string& instruction,
                            const GenerationOptions& opt,
                            const decoder::TextCallback& on_text = nullptr) const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A ResourceError for more 16 kHz samples than the audio time limit allows (the limit of audio
// files, audio::DecodeOptions): callers holding samples check it before copying them.
void check_audio_length(int64_t samples16k);

// Instruction strings of docs/model.md §7 (as in the reference test data).
std::string transcribe_instruction();
// "Translate the audio clip into <Language>." An Error for an empty or unknown language name;
// the name is matched case-insensitively and written capitalised.
std::string translate_instruction(const std::string& language);
std::string speaker_verification_instruction();
std::string emotion_instruction();
// Spoken question answering: the question (with its options) is the instruction itself;
// an Error when it is empty.
std::string question_instruction(const std::string& question);
// The target languages translate_instruction accepts, as the reference writes them.
std::vector<std::string> translation_languages();
// Every task preset's instruction: transcribe, translate into each language, speaker
// verification, emotion (the ones Model::save_preset_scales stores).
std::vector<std::string> preset_instructions();

}  // namespace wavllm
