#include "wavllm/core/random_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>

#include "wavllm/core/error.h"
#include "wavllm/core/files.h"
#include "wavllm/core/safetensors.h"
#include "wavllm/core/tensor_spec.h"

namespace wavllm {
namespace fs = std::filesystem;

namespace {

uint64_t fnv1a(uint64_t seed, const std::string& s) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

st::DType st_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return st::DType::F32;
    case at::kHalf: return st::DType::F16;
    case at::kBFloat16: return st::DType::BF16;
    default: throw Error("random model: dtype must be float32, float16 or bfloat16");
  }
}

}  // namespace

at::Tensor random_tensor(const TensorDecl& t, const RandomModelOptions& opt) {
  switch (t.init) {
    case InitKind::Ones: return at::ones(t.shape);
    case InitKind::Zeros: return at::zeros(t.shape);
    case InitKind::Normal: break;
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(fnv1a(opt.seed, t.name));
  return at::normal(0.0, opt.stddev, t.shape, gen);
}

namespace {

void write_model_files(const ModelConfig& cfg, const ModelSpec& spec, const std::string& dir,
                       const ModelWriteOptions& opt, const TensorSource& source) {
  // Group tensors into shards by size, in declaration order.
  std::vector<std::vector<const TensorDecl*>> shards(1);
  uint64_t in_shard = 0;
  for (const auto& t : spec.tensors) {
    uint64_t n = st::dtype_size(source.dtype(t));
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    if (in_shard > 0 && in_shard + n > opt.shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(&t);
    in_shard += n;
  }
  auto shard_name = [&](size_t i) {
    if (shards.size() == 1) return std::string("model.safetensors");
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    return std::string(buf);
  };
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    std::vector<st::TensorSpec> specs;
    for (const auto* t : shards[i]) {
      specs.push_back({t->name, source.dtype(*t), t->shape});
      weight_map[t->name] = shard_name(i);
    }
    std::map<std::string, std::string> metadata;
    if (!opt.format_tag.empty()) metadata["format"] = opt.format_tag;
    st::Writer writer((fs::path(dir) / shard_name(i)).string(), specs, metadata);
    for (const auto* t : shards[i]) {
      const at::Tensor v = source.values(*t);
      writer.write(t->name, v.data_ptr(), v.nbytes());
    }
    writer.close();
  }
  if (shards.size() > 1) {
    std::ofstream idx(fs::path(dir) / "model.safetensors.index.json");
    idx << nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump(1);
    if (!idx) throw Error(dir + ": cannot write model.safetensors.index.json");
  }
  if (!opt.tokenizer.empty()) {
    const std::string bytes = read_regular_file(opt.tokenizer, "tokenizer", kMaxTokenizerFileBytes);
    std::ofstream out(fs::path(dir) / "tokenizer.model", std::ios::binary);
    out << bytes;
    if (!out.flush()) throw Error(dir + ": cannot write tokenizer.model (disk full?)");
  }
  cfg.save((fs::path(dir) / "config.json").string());
}

}  // namespace

void write_model(const ModelConfig& cfg, const ModelSpec& spec, const std::string& dir, const ModelWriteOptions& opt,
                 const TensorSource& source) {
  cfg.validate("model config");
  // Written into a new folder beside `dir`, renamed into place only once complete: a failure
  // (disk full, a bad tokenizer) leaves nothing behind, and nothing the user had is touched.
  std::error_code ec;
  const fs::path target = fs::path(dir).lexically_normal();
  const auto status = fs::symlink_status(target, ec);
  if (fs::exists(status) && !(fs::is_directory(status) && fs::is_empty(target, ec)))
    throw Error(dir + ": already exists and is not an empty directory; choose a new or empty one");
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) throw Error(parent.string() + ": cannot create directory: " + ec.message());
  const fs::path staging = parent / ("." + target.filename().string() + ".partial-" + std::to_string(::getpid()));
  if (!fs::create_directory(staging, ec))
    throw Error(staging.string() + ": cannot create the staging directory: " + (ec ? ec.message() : "it already exists"));
  try {
    write_model_files(cfg, spec, staging.string(), opt, source);
    fs::rename(staging, target, ec);  // replaces an empty directory
    if (ec) throw Error(dir + ": cannot move the finished model into place: " + ec.message());
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
}

void write_random_model(const ModelConfig& cfg, const ModelSpec& spec, const std::string& dir,
                        const RandomModelOptions& opt) {
  const st::DType dtype = st_dtype(opt.dtype);
  for (const auto& t : spec.tensors)
    if (t.storage != Storage::Float) throw Error("random model: quantized configs are made by quantizing a float model (wavllm quantize)");
  const ModelWriteOptions write{opt.shard_bytes, opt.tokenizer, "wavllm-random"};
  write_model(cfg, spec, dir, write,
              {[dtype](const TensorDecl&) { return dtype; },
               [&opt](const TensorDecl& t) { return random_tensor(t, opt).to(opt.dtype).contiguous(); }});
}

}  // namespace wavllm
