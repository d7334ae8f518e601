#include "wavllm/pipeline/quantize.h"

#include <filesystem>

#include "wavllm/core/error.h"
#include "wavllm/core/random_model.h"
#include "wavllm/core/runtime.h"
#include "wavllm/pipeline/stages.h"

namespace wavllm {

namespace fs = std::filesystem;

namespace {

// The dtype the input's tensors are stored in (the first floating-point one): loaded as such,
// they are views of the files and no float32 copy of the model is made.
at::ScalarType stored_dtype(const std::string& dir) {
  const st::ShardSet set = st::ShardSet::open(dir);
  for (const auto& [name, entry] : set.tensors()) {
    switch (entry.second->dtype) {
      case st::DType::BF16: return at::kBFloat16;
      case st::DType::F16: return at::kHalf;
      case st::DType::F32: return at::kFloat;
      default: break;
    }
  }
  return at::kFloat;
}

}  // namespace

void quantize_model(const std::string& in_dir, const std::string& out_dir, const std::string& format) {
  if (format != QuantizationConfig::kQ8_0 && format != QuantizationConfig::kQ4_0)
    throw ArgumentError("unknown quantization type '" + format + "' (this build has q8_0 and q4_0)");
  const ModelConfig cfg = ModelConfig::load(in_dir);
  if (!cfg.quantization.format.empty())
    throw Error(in_dir + ": already quantized (" + cfg.quantization.format + "); quantize a float model");
  const Weights weights = Weights::load(in_dir, model_spec(cfg), at::kCPU, stored_dtype(in_dir));

  ModelConfig out_cfg = cfg;
  out_cfg.quantization.format = format;
  ModelSpec out_spec;
  for (const TensorDecl& t : model_spec(out_cfg).tensors)
    if (t.used) out_spec.tensors.push_back(t);  // tensors inference ignores are left out

  InferenceGuard guard;
  nn::Matrix pending;  // a matrix being written: its values, then its scales (declared right after)
  const TensorSource source{
      [&](const TensorDecl& t) {
        switch (t.storage) {
          case Storage::Q8Values: return st::DType::I8;
          case Storage::Q8Scales: return st::DType::F32;
          case Storage::Q4Values: return st::DType::U8;
          case Storage::Q4Scales: return st::DType::BF16;
          case Storage::Float: break;
        }
        return st::parse_dtype(stored_dtype_name(weights.get(t.name).scalar_type()));  // a float model: F32/F16/BF16
      },
      [&](const TensorDecl& t) {
        switch (t.storage) {
          case Storage::Float: return weights.get(t.name).contiguous();
          case Storage::Q8Scales:
          case Storage::Q4Scales: return pending.scales;
          case Storage::Q8Values:
          case Storage::Q4Values: break;
        }
        const at::Tensor& w = weights.get(t.name);
        pending = nn::Matrix{};
        pending.values_storage = t.storage;
        pending.rows = w.size(0);
        pending.cols = w.size(1);
        nn::quantize_matrix(w, pending);
        return pending.values;
      }};
  ModelWriteOptions write;
  std::error_code ec;
  if (fs::exists(fs::path(in_dir) / "tokenizer.model", ec)) write.tokenizer = in_dir + "/tokenizer.model";
  // A random-weight model stays one (its output text is still meaningless).
  if (weights.formats().count("wavllm-random")) write.format_tag = "wavllm-random";
  write_model(out_cfg, out_spec, out_dir, write, source);
  // The model's card travels with it.
  if (fs::is_regular_file(fs::path(in_dir) / "README.md", ec))
    fs::copy_file(fs::path(in_dir) / "README.md", fs::path(out_dir) / "README.md", ec);
}

}  // namespace wavllm
