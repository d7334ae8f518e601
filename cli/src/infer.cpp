// The subcommands that run the model: transcribe, translate, ask, verify-speaker, emotion,
// run (one or many audio files) and batch (a reference TSV manifest to JSONL).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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
#include "wavllm/audio/audio.h"
#include "wavllm/core/files.h"
#include "wavllm/core/runtime.h"
#include "wavllm/pipeline/model.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace wavllm::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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
  return c;
}

std::shared_ptr<Model> load_model(const ModelChoice& c) {
  std::shared_ptr<Model> m = Model::load(c.dir, c.options);
  // Random-weight models print meaningless text by design; say so once, on stderr, so that
  // the output itself stays clean.
  if (m->random_weights())
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

std::string instruction_for(const Command& self, const Args& a, std::vector<std::string>* files) {
  *files = a.positional();
  const std::string& n = self.name;
  if (n == "transcribe") return transcribe_instruction();
  if (n == "verify-speaker") return speaker_verification_instruction();
  if (n == "emotion") return emotion_instruction();
  if (n == "translate") {
    const auto to = a.value("to");
    if (!to) throw ArgumentError("translate needs --to LANGUAGE");
    return translate_instruction(*to);
  }
  if (n == "run") {
    const auto p = a.value("prompt");
    if (!p || p->find_first_not_of(" \t\r\n") == std::string::npos) throw ArgumentError("run needs a non-empty --prompt");
    return *p;
  }
  // ask QUESTION FILE...
  if (files->empty()) throw ArgumentError("ask needs a question, then the audio files");
  std::error_code ec;
  if (files->size() >= 2 && fs::is_regular_file(files->front(), ec) && !fs::exists(files->back(), ec))
    throw ArgumentError("ask takes the question first, then the audio files: wavllm ask \"" +
                        printable(files->back()) + "\" " + printable(files->front()));
  const std::string q = question_instruction(files->front());
  files->erase(files->begin());
  return q;
}

// Every audio path is opened (not read) before the model loads: a typo fails in a second, with
// all the unreadable paths named, not after a load of minutes.
void check_audio_files(const std::vector<std::string>& files) {
  std::string problems;
  size_t bad = 0;
  for (const std::string& path : files) {
    try {
      RegularFile(path, "audio file");
    } catch (const Error& e) {
      problems += std::string("\n  ") + e.what();
      ++bad;
    }
  }
  if (bad)
    throw Error(std::to_string(bad) + " of " + std::to_string(files.size()) + " audio files cannot be read (nothing was run):" +
                problems);
}

}  // namespace

int run_inference_command(const Command& self, const Args& a) {
  std::vector<std::string> files;
  const std::string instruction = instruction_for(self, a, &files);
  if (files.empty()) throw ArgumentError(self.name + " needs at least one audio file");
  const bool as_json = a.flag("json");
  const GenerationFlags flags(a);
  const ModelChoice choice = model_choice(a);
  check_audio_files(files);
  const std::shared_ptr<Model> model = load_model(choice);
  const GenerationOptions opt = flags.apply(model->generation_options());

  int status = 0;
  for (const std::string& path : files) {
    try {
      if (as_json) {
        json j = json::parse(model->generate(DecodedAudio::load(path), instruction, opt).to_json());
        j["audio"] = path;
        j["prompt"] = instruction;
        std::cout << dump(j) << std::endl;
      } else {
        if (files.size() > 1) std::cout << "# " << path << "\n";
        // Streamed as decoded: a long answer shows up while it is being produced.
        model->generate(DecodedAudio::load(path), instruction, opt,
                        [](const std::string& piece) { std::cout << piece << std::flush; });
        std::cout << std::endl;
      }
    } catch (const std::exception& e) {
      std::cout << std::flush;
      std::fprintf(stderr, "wavllm: error: %s: %s\n", printable(path).c_str(), error_text(e).c_str());
      status = 1;
    }
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// batch

namespace {

void write_all(int fd, const std::string& bytes, const std::string& path) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(path + ": write failed (disk full?): " + std::strerror(n < 0 ? errno : ENOSPC));
    done += size_t(n);
  }
}

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
    std::string staging = out + ".retry-XXXXXX";  // a new file: never one of the user's
    const int fd = mkstemp(staging.data());
    if (fd < 0) throw Error(out + ": cannot create a file beside it to drop the failed items: " + std::strerror(errno));
    try {
      write_all(fd, kept, staging);
    } catch (const Error&) {
      ::close(fd);
      fs::remove(staging, ec);
      throw;
    }
    ::close(fd);
    fs::permissions(staging, fs::status(out).permissions(), ec);
    fs::rename(staging, out);
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

class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void update(size_t done, size_t errors) {
    const double elapsed = seconds_since(start_);
    const bool last = done == total_;
    // On a terminal, one line redrawn in place; in a log, a line every 10 s and at the end.
    if (!tty_ && !last && elapsed - last_print_ < 10) return;
    last_print_ = elapsed;
    const size_t width = 30, filled = total_ ? done * width / total_ : width;
    const double eta = done ? elapsed / double(done) * double(total_ - done) : 0;
    std::fprintf(stderr, "%s[%s%s] %zu/%zu items, %zu errors, %.1f s elapsed, ETA %.0f s%s", tty_ ? "\r" : "",
                 std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), done, total_, errors,
                 elapsed, eta, tty_ && !last ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  size_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double last_print_ = -1e9;
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
  }

  Progress progress(todo.size());
  size_t errors = 0;
  for (size_t i = 0; i < todo.size(); ++i) {
    const ManifestItem& item = *todo[i];
    const std::string instruction = prompt_override.value_or(item.prompt);
    json j;
    try {
      if (!problems[i].empty()) throw Error(problems[i]);
      j = json::parse(model->generate(DecodedAudio::load(paths[i]), instruction, opt).to_json());
    } catch (const std::exception& e) {
      j = {{"error", error_text(e)}};
      ++errors;
    }
    j["id"] = item.id;
    j["audio"] = paths[i];
    j["prompt"] = instruction;
    j["reference"] = item.tgt_text;
    os.write_line(dump(j));  // one whole line per item: an interruption loses at most one
    progress.update(i + 1, errors);
  }
  if (errors) {
    std::fprintf(stderr, "wavllm: error: %zu of %zu items failed (their lines in %s have an \"error\"; "
                 "--retry-failed runs them again)\n", errors, todo.size(), out->c_str());
    return 1;
  }
  return skipped_failed ? 1 : 0;
}

}  // namespace wavllm::cli
