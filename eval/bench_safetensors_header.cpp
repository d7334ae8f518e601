// Times the safetensors header parse (wavllm::st::File) on a synthetic header of N entries, in
// one run beside two baselines over the same bytes: nlohmann's plain DOM parse (a generic JSON
// parse with no checks: the floor for any JSON-based reader) and nlohmann's callback parser, the
// way the engine parsed headers before (it rescans the parent object at every object's end:
// quadratic, so it runs on --callback-entries only). Reports seconds and entries per second.
//
//   bench_safetensors_header [--entries N] [--callback-entries M] [--repeat R]
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "bench_util.h"
#include "wavllm/core/error.h"
#include "wavllm/core/safetensors.h"

namespace {

using json = nlohmann::json;

struct Options {
  int64_t entries = 1000000, callback_entries = 50000;
  int repeat = 3;
};

Options parse(int argc, char** argv) {
  Options o;
  wavllm::bench::parse_options(argc, argv, [&](const std::string& a, const auto& value) {
    if (a == "--entries") o.entries = std::stoll(value());
    else if (a == "--callback-entries") o.callback_entries = std::stoll(value());
    else if (a == "--repeat") o.repeat = std::stoi(value());
    else return false;
    return true;
  });
  if (o.entries < 1 || o.callback_entries < 0 || o.repeat < 1) throw wavllm::Error("counts must be positive");
  return o;
}

// A header of n one-byte U8 tensors (names like a checkpoint's), as its text.
std::string header_text(int64_t n) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
  for (int64_t i = 0; i < n; ++i)
    h += ",\"model.layers." + std::to_string(i) + ".weight\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[" +
         std::to_string(i) + "," + std::to_string(i + 1) + "]}";
  return h + "}";
}

std::string file_bytes(const std::string& header, int64_t data) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + std::string(size_t(data), '\x01');
}

void report(const char* impl, int64_t entries, double seconds) {
  std::printf("%-24s %10lld %10.3f %14.0f\n", impl, static_cast<long long>(entries), seconds, entries / seconds);
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::string header = header_text(o.entries);
  const std::string bytes = file_bytes(header, o.entries);
  std::printf("safetensors header of %lld entries (%.1f MB), best of %d\n", static_cast<long long>(o.entries),
              header.size() / 1e6, o.repeat);
  std::printf("%-24s %10s %10s %14s\n", "parser", "entries", "seconds", "entries/s");
  size_t parsed = 0;
  report("wavllm st::File", o.entries, wavllm::bench::best_seconds(o.repeat, [&] {
           parsed = wavllm::st::File::from_bytes(bytes.data(), bytes.size(), "bench")->tensors().size();
         }));
  if (parsed != size_t(o.entries)) throw wavllm::Error("parsed " + std::to_string(parsed) + " entries");
  size_t keys = 0;
  report("nlohmann DOM (floor)", o.entries, wavllm::bench::best_seconds(o.repeat, [&] { keys = json::parse(header).size(); }));
  if (keys != size_t(o.entries) + 1) throw wavllm::Error("the DOM parse found " + std::to_string(keys) + " keys");
  if (o.callback_entries > 0) {
    const std::string small = header_text(o.callback_entries);
    const auto keep = [](int, json::parse_event_t, json&) { return true; };
    report("nlohmann callback (old)", o.callback_entries,
           wavllm::bench::best_seconds(1, [&] { keys = json::parse(small, keep).size(); }));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return wavllm::bench::guarded_main("bench_safetensors_header", run, argc, argv); }
