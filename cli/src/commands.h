#pragma once
// Subcommands of the `wavllm` executable. Each returns the process exit status (0 ok, 1 failure);
// usage mistakes throw ArgumentError (status 2), other failures throw Error (status 1).
#include <exception>
#include <string>
#include <vector>

#include "args.h"
#include "wavllm/pipeline/model.h"

namespace wavllm::cli {

struct Command {
  std::string name;
  std::string usage;    // after "wavllm NAME "
  std::string summary;  // one line for `wavllm --help`
  std::string details;  // extra paragraph of `wavllm NAME --help` (may be empty)
  std::vector<OptionSpec> options;
  int (*run)(const Command& self, const Args& args);
};

// The whole command line (argv[0] = program): runs one subcommand and returns the exit status,
// 0 success, 2 usage mistake, 1 failure (one line `wavllm: error: ...` on stderr).
int run_main(int argc, char** argv);

// Every subcommand, in the order `wavllm --help` lists them.
const std::vector<Command>& commands();

std::string command_help(const Command& c);

// Helpers shared by the subcommands.
std::vector<OptionSpec> model_options();       // --model --threads --device --dtype
std::vector<OptionSpec> generation_options();  // --temperature ... --max-new-tokens
std::vector<OptionSpec> recording_options();   // -f, --json, pieces, outputs (the task commands)

// What to print after "wavllm: error: " for a failure.
std::string error_text(const std::exception& e);

int run_inference_command(const Command& self, const Args& args);
int run_batch(const Command& self, const Args& args);
int run_serve(const Command& self, const Args& args);
std::vector<OptionSpec> serve_options();
int run_info(const Command& self, const Args& args);
int run_tasks(const Command& self, const Args& args);
int run_cache_prompts(const Command& self, const Args& args);
std::string version_text();  // "wavllm 0.1.0 (LibTorch 1.13.1, CPU kernels: avx512_vnni)"

// The model of --model DIR (or model_dir when given, else $WAVLLM_MODEL) with --device,
// --dtype and --threads, parsed (usage errors) before anything is read.
struct ModelChoice {
  std::string dir;
  ModelOptions options;
};
ModelChoice model_choice(const Args& args, const std::string& model_dir = "");
// Loads it, with a note on stderr when its weights are random.
std::shared_ptr<Model> load_model(const ModelChoice& choice, bool quiet = false);

}  // namespace wavllm::cli
