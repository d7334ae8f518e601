// The subcommand table, help texts, make-random-model, convert, and the entry point.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "wavllm/core/config.h"
#include "wavllm/core/random_model.h"
#include "wavllm/core/runtime.h"
#include "wavllm/pipeline/quantize.h"
#include "wavllm/pipeline/stages.h"

namespace fs = std::filesystem;

namespace wavllm::cli {

namespace {

int run_make_random_model(const Command& self, const Args& a) {
  if (!a.positional().empty()) throw ArgumentError("make-random-model takes no positional argument");
  const auto config = a.value("config");
  const auto out = a.value("out");
  if (!config) throw ArgumentError("make-random-model needs --config CONFIG.json");
  if (!out) throw ArgumentError("make-random-model needs --out DIR");
  RandomModelOptions o;
  o.seed = uint64_t(a.integer("seed", 0, LLONG_MAX).value_or(0));
  o.dtype = a.parsed("dtype", "float32", parse_dtype);
  o.tokenizer = a.value_or("tokenizer", "");
  const ModelConfig cfg = ModelConfig::load(*config);
  write_random_model(cfg, model_spec(cfg), *out, o);
  std::fprintf(stderr, "wavllm: wrote a random-weight model to %s\n", out->c_str());
  return 0;
}

int run_quantize(const Command& self, const Args& a) {
  if (a.positional().size() != 2) throw ArgumentError("quantize needs IN_DIR and OUT_DIR");
  const std::string type = a.value_or("type", QuantizationConfig::kQ8_0);
  quantize_model(a.positional()[0], a.positional()[1], type);
  std::fprintf(stderr, "wavllm: wrote the %s model to %s\n", type.c_str(), a.positional()[1].c_str());
  return 0;
}

int run_spec(const Command& self, const Args& a) {
  if (!a.positional().empty()) throw ArgumentError("spec takes no positional argument");
  const auto config = a.value("config");
  if (!config) throw ArgumentError("spec needs --config CONFIG.json (or a model directory)");
  std::fputs(model_spec(ModelConfig::load(*config)).to_json().c_str(), stdout);
  return 0;
}

// The directory holding the package wavllm/ (with convert.py) that belongs to this executable:
// build/python beside build/bin, P/lib/wavllm/python of `cmake --install --prefix P`, or the
// site-packages a wheel put wavllm/_bin/wavllm in; else the build tree it was compiled in.
std::string python_dir() {
  std::error_code ec;
  const fs::path bin = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (!ec) {
    for (const fs::path& dir : {bin.parent_path() / "python", bin.parent_path() / "lib" / "wavllm" / "python",
                                bin.parent_path().parent_path()})
      if (fs::exists(dir / "wavllm" / "convert.py", ec)) return dir.string();
  }
  return WAVLLM_PYTHON_DIR;
}

// The converter is Python (it reads the fairseq pickle without executing it); this forwards
// the arguments untouched, --help included, to $WAVLLM_PYTHON or the interpreter the build used.
[[noreturn]] void exec_convert(const std::vector<std::string>& args) {
  const std::string dir = python_dir();
  const char* old = std::getenv("PYTHONPATH");
  const std::string path = dir + (old && *old ? ":" + std::string(old) : "");
  setenv("PYTHONPATH", path.c_str(), 1);
  const char* chosen = std::getenv("WAVLLM_PYTHON");
  const std::string python = chosen && *chosen ? chosen : WAVLLM_PYTHON_EXECUTABLE;
  std::vector<std::string> argv_s = {python, "-m", "wavllm.convert"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(python.c_str(), argv.data());
  throw Error("convert: cannot run " + python + ": " + std::strerror(errno));
}

std::string main_help() {
  std::string s =
      "usage: wavllm COMMAND [OPTIONS] ...\n\n"
      "WavLLM speech LLM inference (Whisper + WavLM encoders, LLaMA-2 decoder with prompt-aware LoRA).\n\n"
      "commands:\n";
  for (const auto& c : commands()) s += "  " + c.name + std::string(20 - std::min<size_t>(19, c.name.size()), ' ') + c.summary + "\n";
  s += "  convert             convert a WavLLM fairseq checkpoint (.pt) to a model directory\n\n"
       "`wavllm COMMAND --help` lists the options of a command; `wavllm --version` the version.\n"
       "Exit status: 0 success, 2 usage error, 1 failure.\n";
  return s;
}

int dispatch(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(main_help().c_str(), stderr);
    return 2;
  }
  const std::string name = args[0];
  args.erase(args.begin());
  if (name == "-h" || name == "--help" || name == "help") {
    std::fputs(main_help().c_str(), stdout);
    return 0;
  }
  // --version anywhere before "--" (whisper.cpp users type it after the command).
  const auto options_end = std::find(args.begin(), args.end(), "--");
  if (name == "--version" || name == "version" || std::find(args.begin(), options_end, "--version") != options_end) {
    std::fputs(version_text().c_str(), stdout);
    return 0;
  }
  if (name == "convert") exec_convert(args);
  for (const auto& c : commands()) {
    if (c.name != name) continue;
    const Args a = Args::parse(args, c.options);
    if (a.help()) {
      std::fputs(command_help(c).c_str(), stdout);
      return 0;
    }
    return c.run(c, a);
  }
  std::vector<std::string> names = {"convert"};
  for (const auto& c : commands()) names.push_back(c.name);
  const std::string near = did_you_mean(name, names);
  throw ArgumentError("unknown command '" + name + "'" + (near.empty() ? " (see wavllm --help)" : near));
}

}  // namespace

std::vector<OptionSpec> model_options() {
  return {{"model", "DIR", "model directory (config.json, model*.safetensors, tokenizer.model); default $WAVLLM_MODEL", "m"},
          {"threads", "N", "CPU threads (default 0: all cores; more than the cores are capped at the core count)", "t"},
          {"device", "DEVICE", "cpu, cuda or cuda:N (default cpu)"},
          {"dtype", "DTYPE", "auto (default: as the weights are stored), float32, bfloat16, or float16 (CUDA only)"},
          {"whisper-margin", "S", "beyond the reference: Whisper encodes the audio plus S seconds (0-30) of its 30-s window, "
                                  "not the whole window (faster on short audio; fidelity in eval/RESULTS.md)"}};
}

std::vector<OptionSpec> recording_options() {
  return {{"file", "AUDIO", "an audio file, as a positional one (repeatable); - reads standard input", "f", true},
          {"json", "", "print one JSON object per file: text, token ids, timings, real-time factor (segments when in pieces)"},
          {"segment", "", "decode in pieces of speech even when the audio fits one request (voice activity)"},
          {"max-segment", "S", "longest piece in seconds (default 30)"},
          {"vad-aggressiveness", "N", "0 to 3: how much the voice detector drops as non-speech (default 2)"},
          {"encoder-batch", "N", "pieces sharing one pass of the Whisper encoder, 1 to 64 (default 1; see docs/model.md §11)"},
          {"output-txt", "", "write INPUT.txt: the text of each piece", "otxt"},
          {"output-srt", "", "write INPUT.srt (SubRip subtitles; implies pieces)", "osrt"},
          {"output-vtt", "", "write INPUT.vtt (WebVTT subtitles; implies pieces)", "ovtt"},
          {"output-csv", "", "write INPUT.csv: start,end (ms),text (implies pieces)", "ocsv"},
          {"output-json", "", "write INPUT.json: segments with start, end, text, token ids, avg_logprob (implies pieces)", "oj"},
          {"output-file", "NAME", "outputs as NAME.txt, NAME.srt... instead of beside the input; - for standard output", "of"},
          {"logprobs", "", "per-token log-probabilities in the JSON output"},
          {"overwrite", "", "replace output files that exist (else they are refused, nothing run)"},
          {"no-timestamps", "", "print pieces without their [start --> end]", "nt"},
          {"no-prints", "", "nothing on stderr but errors (no progress, no notes)", "np"},
          {"prompt", "TEXT", "the instruction (run only; the other tasks send their own: wavllm tasks)", "p"}};
}

std::vector<OptionSpec> generation_options() {
  return {{"temperature", "T", "sampling temperature, 0 = greedy, else 0.001 to 100 (default from config.json)"},
          {"top-p", "P", "nucleus sampling mass in (0, 1]"},
          {"top-k", "K", "sample among the K best tokens (0 = all)"},
          {"seed", "N", "sampling seed (default: random)"},
          {"num-beams", "N", "beam search with N beams, 1 to 16 (greedy when 1)"},
          {"max-new-tokens", "N", "stop after N generated tokens (0 = until EOS or the step limit)"}};
}

const std::vector<Command>& commands() {
  static const std::vector<Command> list = [] {
    auto infer = [](std::vector<OptionSpec> extra) {
      std::vector<OptionSpec> o = std::move(extra);
      for (auto& s : model_options()) o.push_back(s);
      for (auto& s : generation_options()) o.push_back(s);
      for (auto& s : recording_options()) o.push_back(s);
      return o;
    };
    std::vector<OptionSpec> batch_opts = {
        {"out", "FILE", "JSON-lines output, appended to (ids already there are skipped); - for standard output"},
        {"audio-dir", "DIR", "directory the manifest's audio paths are relative to (default .)"},
        {"retry-failed", "", "run the items whose earlier lines in --out have an \"error\" again (those lines are dropped)"},
        {"shard", "I/N", "run only items I, I+N, I+2N, ... (0 <= I < N)"},
        {"prompt", "TEXT", "instruction for every item instead of the manifest's prompt column"},
        {"parallel", "N", "decode N items together (continuous batching, as wavllm serve; same tokens), 1 to 256 (default 1)"}};
    for (auto& s : model_options()) batch_opts.push_back(s);
    for (auto& s : generation_options()) batch_opts.push_back(s);
    const char* files_note =
        "Audio: files libsndfile reads (WAV, FLAC, OGG, MP3...), any rate and channels; a directory\n"
        "runs every audio file in it; - reads standard input. Audio beyond the model's context\n"
        "needs --segment (an answer per piece of speech).";
    const char* long_note =
        "Audio: files libsndfile reads (WAV, FLAC, OGG, MP3...), any rate and channels; a directory\n"
        "runs every audio file in it; - reads standard input. Audio that fits the model's context is\n"
        "one request (the reference's); longer audio, --segment, or a timestamped output (-osrt,\n"
        "-ovtt, -ocsv, -oj) is decoded in pieces of speech found by WebRTC's voice detector, each\n"
        "at most --max-segment seconds, cut at pauses; silence is never decoded.";
    return std::vector<Command>{
        {"transcribe", "[OPTIONS] AUDIO...", "speech recognition", long_note,
         infer({{"language", "LANG", "the spoken language: en (the model transcribes English)", "l"}}), run_inference_command},
        {"translate", "--to LANGUAGE [OPTIONS] AUDIO...", "speech translation into LANGUAGE", long_note,
         infer({{"to", "LANGUAGE", "target language: a name (German) or its ISO code (de)"},
                {"language", "LANG", "the same as --to, as whisper.cpp spells it", "l"}}),
         run_inference_command},
        {"ask", "[OPTIONS] QUESTION AUDIO...", "answer a question (with its answer options) about the audio",
         "Example: wavllm ask \"What will the man do next? A. Start to take exercise; B. Do as he\n"
         "always does; C. Change his working time.\" talk.wav",
         infer({}), run_inference_command},
        {"verify-speaker", "[OPTIONS] AUDIO...", "is there only one speaker in the audio?", files_note, infer({}),
         run_inference_command},
        {"emotion", "[OPTIONS] AUDIO...", "describe the speaker's emotion", files_note, infer({}), run_inference_command},
        {"run", "--prompt TEXT [OPTIONS] AUDIO...", "any instruction about the audio", files_note, infer({}),
         run_inference_command},
        {"batch", "--out RESULTS.jsonl [OPTIONS] MANIFEST.tsv", "run a reference TSV manifest, one JSON line per item",
         "The manifest has a header row; columns by name: id, audio (required), n_frames, prompt,\n"
         "tgt_text, with_speech. Each result line has id, audio, prompt, reference (the tgt_text), text,\n"
         "token_ids, timings, audio_seconds, real_time_factor. An item that fails gets a line with\n"
         "\"error\" and the batch goes on (exit status 1 at the end). Rerunning with the same --out\n"
         "resumes: ids already there are skipped, failed ones too unless --retry-failed. Audio paths:\n"
         "AUDIO_DIR/PATH, else AUDIO_DIR/FILENAME (the reference manifests name files under the\n"
         "authors' checkout).",
         batch_opts, run_batch},
        {"serve", "[OPTIONS]", "an OpenAI-compatible HTTP server with continuous batching (docs/server.md)",
         "Endpoints: POST /v1/audio/transcriptions, /v1/audio/translations (multipart), /v1/chat/completions\n"
         "(input_audio parts, stream), GET /v1/models, /health, /metrics. Binds 127.0.0.1 unless --host says\n"
         "otherwise; with --api-key (or $WAVLLM_API_KEY) every endpoint but /health needs\n"
         "`Authorization: Bearer KEY`. SIGTERM or SIGINT: new requests get 503, those in flight finish,\n"
         "then it exits 0.",
         serve_options(), run_serve},
        {"spec", "--config CONFIG.json", "print the tensors a model of this config has, as JSON",
         "{\"tensors\": [...], \"repeats\": [...], \"flags\": [...]}: each tensor's name, shape, the config\n"
         "field each axis measures, whether inference uses it and whether it may be quantized; the\n"
         "repeated blocks and the flags that decide a tensor. The layers declare this list; the loader,\n"
         "the random-model generator and the converter all read it.",
         {{"config", "FILE", "config.json (or a model directory)"}},
         run_spec},
        {"quantize", "IN_DIR OUT_DIR [--type q8_0|q4_0]", "store a float model's decoder projections quantized",
         "The decoder layers' projections (wq, wk, wv, wo, w1, w2, w3) become Q8_0 (blocks of 32 int8\n"
         "values with one float32 scale: 9 bits per weight) or Q4_0 (blocks of 32 4-bit values with one\n"
         "bfloat16 scale: 4.5 bits). Every other tensor (encoders, adapters, embeddings, output head,\n"
         "norms, LoRA, prompt adapter) keeps its dtype; config.json records the format. OUT_DIR must\n"
         "be new or empty.",
         {{"type", "TYPE", "q8_0 (default) or q4_0"}},
         run_quantize},
        {"make-random-model", "--config CONFIG.json --out DIR [OPTIONS]",
         "write a model directory with random weights (tests, benchmarks)", "",
         {{"config", "FILE", "config.json (or a model directory) giving every size"},
          {"out", "DIR", "new model directory"},
          {"seed", "N", "random seed (default 0)"},
          {"dtype", "DTYPE", "float32 (default), bfloat16 or float16"},
          {"tokenizer", "FILE", "tokenizer.model to copy in (needed to run the model)"}},
         run_make_random_model},
        {"info", "DIR [OPTIONS]", "what a model directory holds: parameters per stage, dtype, memory, context",
         "Stored dtype and quantization, parameters per stage, the memory the weights and a full KV\n"
         "cache take at the chosen dtype, the longest audio one request takes, the tokenizer.",
         model_options(), run_info},
        {"tasks", "", "each task command and the exact instruction it sends", "", {}, run_tasks},
        {"cache-prompts", "DIR [OPTIONS]", "store the task presets' LoRA scales beside the weights",
         "Runs the prompt adapter over every task preset's instruction (`wavllm tasks`) and writes the\n"
         "scales to DIR/prompt_scales.safetensors. A later run of this model with the same build,\n"
         "dtype, device and --threads takes them from there, bit for bit the same, instead of running\n"
         "the decoder over the instruction first; any other run ignores the file.",
         model_options(), run_cache_prompts},
    };
  }();
  return list;
}

std::string error_text(const std::exception& e) {
  std::string msg = e.what();
  // Ours may list details on further lines (and are printable() already); LibTorch's carry a
  // C++ backtrace there.
  if (!dynamic_cast<const Error*>(&e)) msg = printable(msg.substr(0, msg.find('\n')));
  return msg;
}

std::string command_help(const Command& c) {
  std::string s = "usage: wavllm " + c.name + " " + c.usage + "\n\n" + c.summary + "\n";
  if (!c.details.empty()) s += "\n" + c.details + "\n";
  std::vector<OptionSpec> all = c.options;
  all.push_back({"help", "", "this help"});
  return s + "\noptions:\n" + options_help(all);
}

int run_main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const ArgumentError& e) {
    std::fprintf(stderr, "wavllm: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wavllm: error: %s\n", error_text(e).c_str());
    return 1;
  }
}

}  // namespace wavllm::cli
