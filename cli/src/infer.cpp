// The subcommands that run the model: transcribe, translate, ask, verify-speaker, emotion,
// run (one or many audio files) and batch (a reference TSV manifest to JSONL).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "commands.h"
#include "manifest.h"
#include "transcript.h"
#include "wavllm/audio/audio.h"
#include "wavllm/core/files.h"
#include "wavllm/core/runtime.h"
#include "wavllm/pipeline/model.h"
#include "wavllm/pipeline/scheduler.h"
#include "wavllm/pipeline/segments.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace wavllm::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(path + ": write failed (disk full?): " + std::strerror(n < 0 ? errno : ENOSPC));
    done += size_t(n);
  }
}

// Progress on stderr: on a terminal, one line redrawn in place; in a log, a line every 10 s and
// at the end. `done` and `total` in any unit (items, seconds of audio); ETA by their ratio.
class Progress {
 public:
  explicit Progress(double total, bool quiet = false) : total_(total), tty_(isatty(STDERR_FILENO) != 0), quiet_(quiet) {}
  void update(double done, const std::string& what) {
    if (quiet_) return;
    const double elapsed = seconds_since(start_);
    const bool last = done >= total_;
    if (!tty_ && !last && elapsed - last_print_ < 10) return;
    last_print_ = elapsed;
    const size_t width = 30, filled = total_ > 0 ? size_t(std::min(1.0, done / total_) * width) : width;
    const double eta = done > 0 ? elapsed / done * std::max(0.0, total_ - done) : 0;
    std::fprintf(stderr, "%s[%s%s] %s, %.1f s elapsed, ETA %.0f s%s", tty_ ? "\r" : "", std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), what.c_str(), elapsed, eta, tty_ && !last ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  double total_;
  bool tty_, quiet_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double last_print_ = -1e9;
};

}  // namespace

ModelChoice model_choice(const Args& a, const std::string& model_dir) {
  ModelChoice c;
  c.dir = model_dir.empty() ? a.value_or("model", "") : model_dir;
  if (c.dir.empty()) {
    const char* env = std::getenv("WAVLLM_MODEL");
    if (env) c.dir = env;
  }
  if (c.dir.empty()) throw ArgumentError("no model: pass --model DIR or set WAVLLM_MODEL");
  a.parsed("device", "cpu", parse_device);  // a bad device is named as --device, not --dtype
  c.options = a.parsed("dtype", "auto",
                       [&](const std::string& dtype) { return ModelOptions::parse(a.value_or("device", "cpu"), dtype, 0); });
  c.options.threads = int(a.integer("threads", 0, std::numeric_limits<int>::max()).value_or(0));
  c.options.whisper_margin_seconds = a.number("whisper-margin", 0, 30);
  return c;
}

std::shared_ptr<Model> load_model(const ModelChoice& c, bool quiet) {
  std::shared_ptr<Model> m = Model::load(c.dir, c.options);
  // Random-weight models print meaningless text by design; say so once, on stderr, so that
  // the output itself stays clean.
  if (m->random_weights() && !quiet)
    std::fprintf(stderr, "wavllm: note: %s has random weights: its output text is meaningless\n", c.dir.c_str());
  return m;
}

namespace {

// Decoding options given on the command line; parsed (and a ArgumentError raised) before the
// model loads, then laid over the model's defaults.
struct GenerationFlags {
  std::optional<double> temperature, top_p;
  std::optional<int64_t> top_k, beams, max_new_tokens, seed;

  explicit GenerationFlags(const Args& a)
      // Ranges here only keep the numbers representable; GenerationOptions::validate() is the rule.
      : temperature(a.number("temperature", std::numeric_limits<double>::lowest(), std::numeric_limits<double>::max())),
        top_p(a.number("top-p", std::numeric_limits<double>::lowest(), std::numeric_limits<double>::max())),
        top_k(a.integer("top-k", 0, std::numeric_limits<int>::max())),
        beams(a.integer("num-beams", std::numeric_limits<int>::min(), std::numeric_limits<int>::max())),
        max_new_tokens(a.integer("max-new-tokens", 0, std::numeric_limits<int>::max())),
        seed(a.integer("seed", 0, std::numeric_limits<int64_t>::max())) {
    apply(GenerationOptions{});
  }

  // An invalid combination is a usage mistake too (e.g. beams with sampling).
  GenerationOptions apply(GenerationOptions o) const {
    o.temperature = temperature.value_or(o.temperature);
    o.top_p = top_p.value_or(o.top_p);
    o.top_k = int(top_k.value_or(o.top_k));
    o.num_beams = int(beams.value_or(o.num_beams));
    o.max_new_tokens = int(max_new_tokens.value_or(o.max_new_tokens));
    if (seed) o.seed = uint64_t(*seed);
    try {
      o.validate();
    } catch (const ArgumentError& e) {
      throw ArgumentError(as_flag_names(e.what()));
    }
    return o;
  }

  // "generation option top_p: ..." -> "option --top-p: ..." for the options given as flags.
  static std::string as_flag_names(std::string message) {
    static const std::pair<const char*, const char*> kFlags[] = {{"temperature", "temperature"}, {"top_p", "top-p"},
                                                                 {"top_k", "top-k"}, {"num_beams", "num-beams"},
                                                                 {"max_new_tokens", "max-new-tokens"}};
    const std::string prefix = "generation option ";
    for (const auto& [field, flag] : kFlags)
      if (message.rfind(prefix + field + ":", 0) == 0)
        return "option --" + std::string(flag) + message.substr(prefix.size() + std::strlen(field));
    return message;
  }
};

// JSON text that survives invalid UTF-8 in the generated text (random weights produce any bytes).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Tasks that answer about the whole recording: beyond the context they need --segment (an
// answer per piece) rather than a silent cut. Transcription and translation segment by themselves.
bool answers_per_piece(const Command& self) { return self.name == "transcribe" || self.name == "translate"; }

std::string instruction_for(const Command& self, const Args& a, std::vector<std::string>* inputs) {
  *inputs = a.positional();
  const std::string& n = self.name;
  if (const auto p = a.value("prompt"); p && n != "run")
    throw ArgumentError("--prompt is the instruction of `wavllm run`; " + n + " sends its own (see wavllm tasks)");
  if (const auto l = a.value("language"); l && n == "transcribe" && *l != "en" && *l != "English" && *l != "english" && *l != "auto")
    throw ArgumentError("option --language: transcribe takes English speech; --language names the target of "
                        "`wavllm translate`");
  if (n == "transcribe") return transcribe_instruction();
  if (n == "verify-speaker") return speaker_verification_instruction();
  if (n == "emotion") return emotion_instruction();
  if (n == "translate") {
    const auto to = a.value("to"), language = a.value("language");
    if (to && language && *to != *language) throw ArgumentError("translate takes one target: --to or --language, not both");
    if (!to && !language) throw ArgumentError("translate needs --to LANGUAGE (or -l, e.g. -l de)");
    return a.parsed(to ? "to" : "language", "", translate_instruction);
  }
  if (n == "run") {
    const auto p = a.value("prompt");
    if (!p || p->find_first_not_of(" \t\r\n") == std::string::npos) throw ArgumentError("run needs a non-empty --prompt");
    return *p;
  }
  // ask QUESTION FILE...
  if (inputs->empty()) throw ArgumentError("ask needs a question, then the audio files");
  std::error_code ec;
  if (inputs->size() >= 2 && fs::is_regular_file(inputs->front(), ec) && !fs::exists(inputs->back(), ec))
    throw ArgumentError("ask takes the question first, then the audio files: wavllm ask \"" +
                        printable(inputs->back()) + "\" " + printable(inputs->front()));
  const std::string q = question_instruction(inputs->front());
  inputs->erase(inputs->begin());
  return q;
}

constexpr const char* kStdin = "-";
constexpr uint64_t kMaxStdinBytes = uint64_t(2) << 30;  // a 2-h WAV at 44.1 kHz stereo is 1.3 GB

bool is_audio_name(const fs::path& p) {
  static const char* kExtensions[] = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"};
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return std::find(std::begin(kExtensions), std::end(kExtensions), ext) != std::end(kExtensions);
}

// The positional audio and every -f, a directory as the audio files in it (sorted by name), "-"
// as standard input (once). Every path is opened (not read) before the model loads: a typo
// fails in a second, with all the unreadable paths named, not after a load of minutes.
std::vector<std::string> audio_inputs(std::vector<std::string> given, const std::vector<std::string>& files) {
  given.insert(given.end(), files.begin(), files.end());
  std::vector<std::string> inputs;
  std::string problems;
  size_t bad = 0;
  for (const std::string& path : given) {
    std::error_code ec;
    if (path == kStdin) {
      if (std::count(inputs.begin(), inputs.end(), kStdin)) throw ArgumentError("standard input (-) can be read once");
      inputs.push_back(path);
    } else if (fs::is_directory(path, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(path, ec))
        if (e.is_regular_file(ec) && is_audio_name(e.path())) found.push_back(e.path().string());
      if (found.empty()) problems += "\n  " + printable(path) + ": a directory with no audio files (.wav, .flac, .ogg, .mp3...)";
      bad += found.empty();
      std::sort(found.begin(), found.end());
      inputs.insert(inputs.end(), found.begin(), found.end());
    } else {
      try {
        RegularFile(path, "audio file");
        inputs.push_back(path);
      } catch (const Error& e) {
        problems += std::string("\n  ") + e.what();
        ++bad;
      }
    }
  }
  if (bad)
    throw Error(std::to_string(bad) + " of " + std::to_string(given.size()) + " audio inputs cannot be read (nothing was run):" +
                problems);
  return inputs;
}

DecodedAudio read_standard_input() {
  if (isatty(STDIN_FILENO)) throw ArgumentError("audio - is standard input, which is a terminal: pipe a file in (wavllm transcribe - < a.wav)");
  const auto t0 = std::chrono::steady_clock::now();
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(std::string("standard input: ") + std::strerror(errno));
    if (n == 0) break;
    if (bytes.size() + size_t(n) > kMaxStdinBytes) throw ResourceError("standard input holds more than 2 GiB of audio");
    bytes.append(buf, size_t(n));
  }
  DecodedAudio audio;
  audio.samples = audio::decode_mono_16k(bytes.data(), bytes.size(), "standard input");
  audio.seconds = seconds_since(t0);
  return audio;
}

// -otxt -osrt -ovtt -ocsv -oj and -of: the files a recording's transcript is written to.
struct OutputFormat {
  const char* flag;
  const char* extension;
  bool timestamped;
};
constexpr OutputFormat kFormats[] = {{"output-txt", ".txt", false}, {"output-srt", ".srt", true}, {"output-vtt", ".vtt", true},
                                     {"output-csv", ".csv", true},  {"output-json", ".json", true}};

struct Outputs {
  std::vector<const OutputFormat*> formats;
  std::optional<std::string> name;  // -of; "-": standard output
  bool overwrite = false, logprobs = false;

  explicit Outputs(const Args& a) : name(a.value("output-file")), overwrite(a.flag("overwrite")), logprobs(a.flag("logprobs")) {
    for (const auto& f : kFormats)
      if (a.flag(f.flag)) formats.push_back(&f);
    if (name && formats.empty()) throw ArgumentError("option --output-file names the output of -otxt, -osrt, -ovtt, -ocsv or -oj: choose one");
    if (name && name->empty()) throw ArgumentError("option --output-file: the name is empty");
  }
  bool timestamped() const {
    return std::any_of(formats.begin(), formats.end(), [](const OutputFormat* f) { return f->timestamped; });
  }
  // (path or "-", format) of each output of `input`: NAME.EXT with -of, else INPUT.EXT beside it;
  // standard output for -of - and for audio read from standard input.
  std::vector<std::pair<std::string, const OutputFormat*>> paths(const std::string& input) const {
    std::vector<std::pair<std::string, const OutputFormat*>> out;
    const std::string base = name ? *name : input;
    for (const OutputFormat* f : formats) out.push_back({base == kStdin ? kStdin : base + f->extension, f});
    return out;
  }
};

// `content` as the file `path`, whole or not at all: written under a new name beside it, then
// renamed over it (`replace`) or linked to its name, which fails if that name is taken.
void write_beside_then_move(const std::string& path, const std::string& content, bool replace, mode_t mode) {
  const fs::path target(path);
  std::string staging = (target.parent_path() / ("." + target.filename().string() + ".partial-XXXXXX")).string();
  const int fd = mkstemp(staging.data());
  if (fd < 0) throw Error(path + ": cannot write beside it: " + std::strerror(errno));
  try {
    write_all(fd, content, staging);
  } catch (const Error&) {
    ::close(fd);
    ::unlink(staging.c_str());
    throw;
  }
  ::fchmod(fd, mode);  // mkstemp makes it 0600
  ::close(fd);
  const int rc = replace ? std::rename(staging.c_str(), path.c_str()) : ::link(staging.c_str(), path.c_str());
  const int err = errno;
  ::unlink(staging.c_str());
  if (rc != 0)
    throw Error(path + (err == EEXIST ? ": exists; choose another -of NAME or pass --overwrite" : ": cannot write: " + std::string(std::strerror(err))));
}

// An output file, never over one that exists unless `overwrite`; "-": standard output.
void write_output(const std::string& path, const std::string& content, bool overwrite) {
  if (path == kStdin) {
    std::cout << content << std::flush;
    return;
  }
  write_beside_then_move(path, content, overwrite, 0644);
}

std::string render(const OutputFormat& f, const Transcript& t, bool logprobs) {
  const std::string ext = f.extension;
  if (ext == ".txt") return to_txt(t);
  if (ext == ".srt") return to_srt(t);
  if (ext == ".vtt") return to_vtt(t);
  if (ext == ".csv") return to_csv(t);
  return to_json(t, logprobs);
}

audio::VadOptions vad_options(const Args& a) {
  audio::VadOptions v;
  v.max_piece_seconds = a.number("max-segment", 1, 3600).value_or(v.max_piece_seconds);
  v.aggressiveness = int(a.integer("vad-aggressiveness", 0, 3).value_or(v.aggressiveness));
  if (const std::string p = v.problem(); !p.empty()) throw ArgumentError("option --max-segment: " + p);
  return v;
}

std::string seconds_text(double s) {
  char t[32];
  std::snprintf(t, sizeof t, "%.1f s", s);
  return t;
}

}  // namespace

int run_inference_command(const Command& self, const Args& a) {
  std::vector<std::string> given;
  const std::string instruction = instruction_for(self, a, &given);
  if (given.empty() && a.values("file").empty()) throw ArgumentError(self.name + " needs at least one audio file");
  const bool as_json = a.flag("json"), quiet = a.flag("no-prints"), segment = a.flag("segment");
  const bool timestamps = !a.flag("no-timestamps");
  const GenerationFlags flags(a);
  const Outputs outputs(a);
  const audio::VadOptions vad = vad_options(a);
  const int encoder_batch = int(a.integer("encoder-batch", 1, SegmentedRun::kMaxEncoderBatch).value_or(1));
  const ModelChoice choice = model_choice(a);
  const std::vector<std::string> inputs = audio_inputs(given, a.values("file"));
  if (outputs.name && *outputs.name != kStdin && inputs.size() > 1)
    throw ArgumentError("option --output-file names one output; " + std::to_string(inputs.size()) +
                        " inputs need their own names (leave -of out: INPUT.srt beside each)");
  // Outputs that cannot be written fail now, not after a model load and a decode.
  for (const auto& input : inputs)
    for (const auto& [path, format] : outputs.paths(input)) {
      if (path == kStdin) continue;
      std::error_code ec;
      if (!outputs.overwrite && fs::exists(fs::symlink_status(path, ec)))
        throw Error(path + ": exists; choose another -of NAME or pass --overwrite (nothing was run)");
      const fs::path folder = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
      if (!fs::is_directory(folder, ec) || ::access(folder.c_str(), W_OK) != 0)
        throw Error(path + ": cannot be written: " + printable(folder.string()) + " is not a writable folder (nothing was run)");
    }
  const std::shared_ptr<Model> model = load_model(choice, quiet);
  const GenerationOptions opt = flags.apply(model->generation_options());
  const int64_t fits = model->longest_audio_samples(instruction);
  // The text goes to the terminal unless an output or --json takes standard output.
  bool outputs_to_stdout = false;
  for (const auto& input : inputs)
    for (const auto& [path, format] : outputs.paths(input)) outputs_to_stdout = outputs_to_stdout || path == kStdin;
  const bool print_text = !as_json && !outputs_to_stdout;
  auto stream = [](const std::string& piece) { std::cout << piece << std::flush; };

  int status = 0;
  for (const std::string& input : inputs) {
    const std::string label = input == kStdin ? "standard input" : input;
    try {
      DecodedAudio audio = input == kStdin ? read_standard_input() : DecodedAudio::load(input);
      const double duration = double(audio.samples.size()) / audio::kSampleRate;
      const bool too_long = int64_t(audio.samples.size()) > fits;
      if (too_long && !segment && !answers_per_piece(self))
        throw ResourceError("the audio is " + seconds_text(duration) + "; one request with this instruction takes at most " +
                            seconds_text(double(fits) / audio::kSampleRate) +
                            " (the model's context): pass --segment to answer per piece of speech of at most --max-segment seconds");
      if (print_text && inputs.size() > 1) std::cout << "# " << input << "\n";
      Transcript t;
      t.audio = label;
      t.prompt = instruction;
      t.duration = duration;
      t.segmented = segment || too_long || outputs.timestamped();
      json single;
      if (!t.segmented) {
        // The reference's single request, streamed as decoded.
        GenerationResult r = model->generate(audio, instruction, opt, print_text ? stream : decoder::TextCallback());
        if (print_text) std::cout << std::endl;
        single = json::parse(r.to_json());
        Segment s;
        s.end = duration;
        s.text = r.text;
        s.avg_logprob = r.avg_logprob();
        s.token_ids = r.token_ids;
        s.token_logprobs = r.token_logprobs;
        t.segments.push_back(std::move(s));
        t.speech_seconds = duration;
      } else {
        SegmentedRun run(model, std::move(audio.samples), instruction, opt, vad, encoder_batch);
        t.speech_seconds = run.speech_seconds();
        if (run.pieces().empty() && !quiet)
          std::fprintf(stderr, "wavllm: %s: no speech found in %s of audio: nothing to decode, no text\n",
                       printable(label).c_str(), seconds_text(duration).c_str());
        Progress progress(duration, quiet);
        while (auto s = run.next()) {
          if (print_text)
            std::cout << (timestamps ? "[" + timestamp(s->start, '.') + " --> " + timestamp(s->end, '.') + "]  " : "")
                      << cue_text(s->text) << std::endl;
          t.segments.push_back(std::move(*s));
          progress.update(run.done_seconds(), std::to_string(run.done()) + "/" + std::to_string(run.pieces().size()) +
                                                  " pieces, " + seconds_text(run.done_seconds()) + " of " +
                                                  seconds_text(duration));
        }
      }
      for (const auto& [path, format] : outputs.paths(input)) write_output(path, render(*format, t, outputs.logprobs), outputs.overwrite);
      if (as_json) {
        json j = t.segmented ? json::parse(to_json(t, outputs.logprobs)) : single;
        j["audio"] = label;
        j["prompt"] = instruction;
        std::cout << dump(j) << std::endl;
      }
    } catch (const std::exception& e) {
      std::cout << std::flush;
      std::fprintf(stderr, "wavllm: error: %s: %s\n", printable(label).c_str(), error_text(e).c_str());
      status = 1;
    }
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// batch

namespace {

// The items already answered in `out`, by whether they failed. `out` must be a results file of
// this command (every complete line a JSON object with a string "id"), and is checked whole
// before a byte of it changes: a file the user did not get from `batch` (a manifest, notes) is
// refused, never truncated. A last line cut short by an interruption is removed only when the
// lines before it prove the file is ours; with `drop_failed`, so are the lines of failed items
// (they are run again), by writing the file anew beside itself and renaming it over.
struct Answered {
  std::set<std::string> succeeded, failed;
};

Answered answered_items(const std::string& out, const std::string& manifest, bool drop_failed) {
  Answered answered;
  std::error_code ec;
  const auto status = fs::status(out, ec);
  // Nothing to resume from a path that is not there yet or a device (/dev/stdout, /dev/full).
  if (!fs::exists(status) || !fs::is_regular_file(status)) return answered;
  if (fs::equivalent(out, manifest, ec)) throw Error(out + ": is the manifest itself; choose another --out");
  const std::string text = read_regular_file(out, "batch output", kMaxManifestFileBytes);
  const size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  auto refuse = [&](const std::string& why) {
    return Error(out + ": " + why + "; it is not a wavllm batch result file (JSON lines with an \"id\"), "
                 "so it was left untouched: choose another --out");
  };
  std::istringstream lines(text.substr(0, complete));
  std::string line, kept;
  size_t n = 0, results = 0;
  bool dropped = false;
  while (std::getline(lines, line)) {
    ++n;
    if (line.empty()) continue;
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string())
      throw refuse("line " + std::to_string(n) + " is not a result");
    const bool failed = j.contains("error");
    (failed ? answered.failed : answered.succeeded).insert(j["id"].get<std::string>());
    ++results;
    if (failed && drop_failed) dropped = true;
    else kept += line + "\n";
  }
  // A retried id that succeeded after failing (a line of each) counts as succeeded.
  for (const auto& id : answered.succeeded) answered.failed.erase(id);
  const bool cut = complete < text.size();
  if (cut) {
    const std::string tail = text.substr(complete);
    // Ours when cut: a prefix of a JSON object (never valid whole) after at least one result.
    if (results == 0 || tail.rfind("{\"", 0) != 0 || json::accept(tail))
      throw refuse("its last line (" + std::to_string(tail.size()) + " bytes without a final newline) is not a result cut short");
  }
  if (dropped) {
    write_beside_then_move(out, kept, /*replace=*/true, mode_t(fs::status(out).permissions()));
  } else if (cut) {
    fs::resize_file(out, complete);
  }
  return answered;
}

// AUDIO_ROOT/PATH for a relative PATH that stays inside the root, else AUDIO_ROOT/FILENAME (the
// reference manifests name files under the authors' checkout: .../test_data/audio/asr.flac).
// An absolute path or one whose ".." climbs out of the root is never followed outside it.
std::string resolve_audio(const std::string& root, const std::string& audio) {
  const fs::path p(audio);
  int depth = 0;
  bool escapes = p.has_root_path();
  for (const auto& part : p.relative_path()) {
    if (part == "..") escapes = escapes || --depth < 0;
    else if (part != "." && !part.empty()) ++depth;
  }
  std::error_code ec;
  const fs::path joined = fs::path(root) / p.relative_path();
  if (!escapes && fs::exists(joined, ec)) return joined.string();
  const fs::path by_name = fs::path(root) / p.filename();
  if (!p.filename().empty() && p.filename() != ".." && fs::exists(by_name, ec)) return by_name.string();
  if (escapes)
    throw Error("audio path '" + audio + "' leads outside --audio-dir '" + root + "' (absolute or climbing with ..), "
                "and the root holds no file named '" + p.filename().string() + "'");
  return joined.string();  // the load error names the path that was expected
}

// The batch output, appended to. Opened without blocking: a FIFO nobody reads is an error,
// not a hang (a pipe that has a reader, /dev/stdout under `| jq`, works).
class AppendOutput {
 public:
  // "-": standard output.
  explicit AppendOutput(const std::string& path) : path_(path) {
    if (path == "-") {
      fd_ = ::dup(STDOUT_FILENO);
      if (fd_ < 0) throw Error(std::string("standard output: ") + std::strerror(errno));
      return;
    }
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
    if (fd_ < 0)
      throw Error(path + ": cannot open for writing: " +
                  (errno == ENXIO ? std::string("a FIFO with no reader") : std::strerror(errno)));
    const int flags = fcntl(fd_, F_GETFL);
    if (flags >= 0) fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
  }
  ~AppendOutput() { ::close(fd_); }
  AppendOutput(const AppendOutput&) = delete;
  AppendOutput& operator=(const AppendOutput&) = delete;

  void write_line(const std::string& text) { write_all(fd_, text + "\n", path_); }

 private:
  std::string path_;
  int fd_ = -1;
};


}  // namespace

int run_batch(const Command& self, const Args& a) {
  if (a.positional().size() != 1) throw ArgumentError("batch needs exactly one MANIFEST.tsv");
  const auto out = a.value("out");
  if (!out) throw ArgumentError("batch needs --out RESULTS.jsonl (- for standard output)");
  std::error_code ec;
  if (fs::is_directory(*out, ec))
    throw ArgumentError("option --out: " + printable(*out) + " is a directory; batch writes one JSON-lines file, e.g. --out " +
                        printable((fs::path(*out) / "results.jsonl").string()));
  Shard shard;
  if (auto s = a.value("shard")) shard = parse_shard(*s);
  const std::string manifest_path = a.positional()[0];
  const std::string root = a.value_or("audio-dir", ".");
  const auto prompt_override = a.value("prompt");
  const bool retry_failed = a.flag("retry-failed");
  const int parallel = int(a.integer("parallel", 1, SchedulerOptions::kMaxBatch).value_or(1));
  const GenerationFlags flags(a);
  const ModelChoice choice = model_choice(a);

  const std::string manifest = read_regular_file(manifest_path, "manifest", kMaxManifestFileBytes);
  const std::vector<ManifestItem> items = select_shard(parse_manifest(manifest, manifest_path), shard);
  const Answered answered = *out == "-" ? Answered{} : answered_items(*out, manifest_path, retry_failed);
  std::vector<const ManifestItem*> todo;
  size_t skipped_failed = 0;
  for (const auto& item : items) {
    if (answered.succeeded.count(item.id)) continue;
    if (answered.failed.count(item.id) && !retry_failed) {
      ++skipped_failed;
      continue;
    }
    todo.push_back(&item);
  }
  std::fprintf(stderr, "wavllm batch: %zu items in shard %lld/%lld; %zu done and %zu failed before in %s; %zu to run\n",
               items.size(), (long long)shard.index, (long long)shard.count, items.size() - todo.size() - skipped_failed,
               skipped_failed, out->c_str(), todo.size());
  if (skipped_failed)
    std::fprintf(stderr, "wavllm batch: --retry-failed runs the %zu failed items again\n", skipped_failed);
  if (todo.empty()) return skipped_failed ? 1 : 0;

  // Opened before the model loads, so an unwritable path fails in a second, not after the load.
  AppendOutput os(*out);
  // The audio is found before the model loads: a manifest whose audio is all missing fails at
  // once, and the model is loaded only when an item can run.
  std::vector<std::string> paths(todo.size()), problems(todo.size());
  for (size_t i = 0; i < todo.size(); ++i) {
    try {
      if (!todo[i]->with_speech) throw Error("with_speech False (text-only items) is not supported");
      paths[i] = resolve_audio(root, todo[i]->audio);
      RegularFile(paths[i], "audio file");
    } catch (const std::exception& e) {
      if (paths[i].empty()) paths[i] = todo[i]->audio;
      problems[i] = error_text(e);
    }
  }
  std::shared_ptr<Model> model;
  GenerationOptions opt;
  if (std::count(problems.begin(), problems.end(), std::string()) > 0) {
    model = load_model(choice);
    opt = flags.apply(model->generation_options());
    if (parallel > 1 && opt.num_beams != 1)
      throw ArgumentError("option --parallel decodes greedily or by sampling: it cannot run with --num-beams " +
                          std::to_string(opt.num_beams));
  }

  Progress progress(double(todo.size()));
  size_t errors = 0, written = 0;
  auto write = [&](size_t i, json j) {
    const ManifestItem& item = *todo[i];
    if (j.contains("error")) ++errors;
    j["id"] = item.id;
    j["audio"] = paths[i];
    j["prompt"] = prompt_override.value_or(item.prompt);
    j["reference"] = item.tgt_text;
    os.write_line(dump(j));  // one whole line per item: an interruption loses at most one
    ++written;
    progress.update(double(written), std::to_string(written) + "/" + std::to_string(todo.size()) + " items, " +
                                         std::to_string(errors) + " errors");
  };
  auto error_line = [](const std::exception& e) { return json{{"error", error_text(e)}}; };
  if (parallel == 1 || !model) {
    for (size_t i = 0; i < todo.size(); ++i) {
      json j;
      try {
        if (!problems[i].empty()) throw Error(problems[i]);
        j = json::parse(model->generate(DecodedAudio::load(paths[i]), prompt_override.value_or(todo[i]->prompt), opt).to_json());
      } catch (const std::exception& e) {
        j = error_line(e);
      }
      write(i, std::move(j));
    }
  } else {
    // Up to `parallel` items decoded together by the server's scheduler (same tokens as one at a
    // time), as many again decoded from their files and waiting; lines in manifest order.
    Scheduler scheduler(model, SchedulerOptions{parallel, parallel, 1});
    std::deque<std::pair<size_t, std::function<json()>>> window;
    auto write_oldest = [&] {
      write(window.front().first, window.front().second());
      window.pop_front();
    };
    for (size_t i = 0; i < todo.size(); ++i) {
      std::function<json()> answer;
      try {
        if (!problems[i].empty()) throw Error(problems[i]);
        DecodedAudio audio = DecodedAudio::load(paths[i]);
        const double decode_seconds = audio.seconds;
        Job job{std::move(audio.samples), prompt_override.value_or(todo[i]->prompt), opt};
        std::shared_ptr<Ticket> t;
        while (!(t = scheduler.submit(job))) {  // full: the oldest item's answer first
          if (window.empty()) throw Error("the batch scheduler refused an item with nothing in flight");
          write_oldest();
        }
        answer = [t, decode_seconds, error_line] {
          try {
            GenerationResult r = t->wait();
            r.timings.audio = decode_seconds;
            r.real_time_factor = r.timings.total() / r.audio_seconds;
            return json::parse(r.to_json());
          } catch (const std::exception& e) {
            return error_line(e);
          }
        };
      } catch (const std::exception& e) {
        answer = [j = error_line(e)] { return j; };
      }
      window.emplace_back(i, std::move(answer));
      if (window.size() >= 2 * size_t(parallel)) write_oldest();
    }
    while (!window.empty()) write_oldest();
  }
  if (errors) {
    std::fprintf(stderr, "wavllm: error: %zu of %zu items failed (their lines in %s have an \"error\"; "
                 "--retry-failed runs them again)\n", errors, todo.size(), out->c_str());
    return 1;
  }
  return skipped_failed ? 1 : 0;
}

}  // namespace wavllm::cli
