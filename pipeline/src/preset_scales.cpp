#include "preset_scales.h"

#include <ATen/Functions.h>
#include <torch/version.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "wavllm/core/error.h"
#include "wavllm/core/files.h"
#include "wavllm/core/safetensors.h"
#include "wavllm/kernels/bf16.h"
#include "wavllm/kernels/isa.h"
#include "wavllm/kernels/sgemm.h"

namespace wavllm::presets {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "wavllm-prompt-scales-1";

// FNV-1a, 64 bits: a digest to notice a changed file, not a security measure.
std::string digest(const std::string& bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char out[17];
  std::snprintf(out, sizeof out, "%016" PRIx64, h);
  return out;
}

std::string tensor_name(size_t i) { return "scale." + std::to_string(i); }

}  // namespace

std::string identity(const std::string& dir, at::ScalarType dtype, const at::Device& device, int threads) {
  std::string id = std::string("wavllm ") + WAVLLM_VERSION + "; LibTorch " + TORCH_VERSION + "; kernels " +
                   kernels::isa_name(kernels::active_isa()) + (kernels::has_avx512_bf16() ? "+bf16" : "") +
                   "; float32 products " + kernels::fp32_gemm_summary() + " (" + kernels::blas_core_name() + ")" +
                   "; bfloat16 products " + kernels::bf16_gemm_name(kernels::bf16_gemm()) +
                   "; " + c10::toString(dtype) + "; " + device.str() + "; threads " + std::to_string(threads);
  const fs::path d(dir);
  id += "; config.json " + digest(read_regular_file((d / "config.json").string(), "config.json", kMaxJsonFileBytes));
  id += "; tokenizer.model " +
        digest(read_regular_file((d / "tokenizer.model").string(), "tokenizer", kMaxTokenizerFileBytes));
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(d)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("model", 0) == 0 && (e.path().extension() == ".safetensors" || e.path().extension() == ".json"))
      weights.push_back(e.path());
  }
  std::sort(weights.begin(), weights.end());
  for (const fs::path& w : weights)
    id += "; " + w.filename().string() + " " + std::to_string(fs::file_size(w)) + " bytes, modified " +
          std::to_string(fs::last_write_time(w).time_since_epoch().count());
  return id;
}

std::map<std::string, at::Tensor> read(const std::string& dir, const std::string& identity, int64_t dim) {
  const std::string path = (fs::path(dir) / kFileName).string();
  if (!fs::exists(fs::symlink_status(path))) return {};
  const auto file = st::File::open(path);
  const auto& meta = file->metadata();
  auto field = [&](const char* key) {
    const auto it = meta.find(key);
    if (it == meta.end()) throw Error(path + ": not a prompt scale file (no \"" + key + "\" in its metadata)");
    return it->second;
  };
  if (field("format") != kFormat)
    throw Error(path + ": format \"" + field("format") + "\", this engine reads \"" + kFormat + "\"");
  if (field("identity") != identity) return {};  // another build, dtype or set of weights: recomputed
  nlohmann::json instructions;
  try {
    instructions = nlohmann::json::parse(field("instructions"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": its \"instructions\" metadata is not JSON (" + e.what() + ")");
  }
  if (!instructions.is_array() || instructions.size() != file->tensors().size())
    throw Error(path + ": \"instructions\" must list one string per tensor");
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < instructions.size(); ++i) {
    if (!instructions[i].is_string()) throw Error(path + ": instruction " + std::to_string(i) + " is not a string");
    const st::TensorInfo& t = file->info(tensor_name(i));
    if (t.dtype != st::DType::F32 || t.shape != std::vector<int64_t>{dim})
      throw Error(path + ": " + t.name + " must be F32 [" + std::to_string(dim) + "], the decoder's width");
    const std::vector<float> values = file->read_f32(t.name);
    at::Tensor s = at::from_blob(const_cast<float*>(values.data()), {dim}, at::kFloat).clone();
    if (!at::isfinite(s).all().item<bool>()) throw Error(path + ": " + t.name + " holds NaN or infinite values");
    out.emplace(instructions[i].get<std::string>(), s);
  }
  return out;
}

std::string write(const std::string& dir, const std::string& identity,
                  const std::vector<std::pair<std::string, at::Tensor>>& scales) {
  const fs::path path = fs::path(dir) / kFileName;
  const fs::path temporary = fs::path(dir) / (std::string(".") + kFileName + ".partial");
  std::vector<st::TensorSpec> specs;
  nlohmann::json instructions = nlohmann::json::array();
  std::vector<at::Tensor> values;
  for (size_t i = 0; i < scales.size(); ++i) {
    values.push_back(scales[i].second.to(at::kCPU).to(at::kFloat).contiguous());
    specs.push_back({tensor_name(i), st::DType::F32, {values.back().numel()}});
    instructions.push_back(scales[i].first);
  }
  {
    st::Writer w(temporary.string(), specs,
                 {{"format", kFormat}, {"identity", identity}, {"instructions", instructions.dump()}});
    for (size_t i = 0; i < values.size(); ++i)
      w.write(specs[i].name, values[i].data_ptr<float>(), size_t(values[i].numel()) * sizeof(float));
    w.close();
  }
  fs::rename(temporary, path);
  return path.string();
}

}  // namespace wavllm::presets
