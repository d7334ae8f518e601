#include "wavllm/core/tensor_spec.h"

#include <nlohmann/json.hpp>

#include "wavllm/core/error.h"

namespace wavllm {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const char* storage_name(Storage storage) {
  switch (storage) {
    case Storage::Float: return "float";
    case Storage::Q8Values: return "q8_0 values";
    case Storage::Q8Scales: return "q8_0 scales";
    case Storage::Q4Values: return "q4_0 values";
    case Storage::Q4Scales: return "q4_0 scales";
  }
  return "?";
}

std::string storage_problem(Storage storage, const std::string& dtype_name) {
  const bool is_float = dtype_name == "F64" || dtype_name == "F32" || dtype_name == "F16" || dtype_name == "BF16";
  switch (storage) {
    case Storage::Float:
      return is_float ? "" : "is " + dtype_name + ", expected a floating-point dtype";
    case Storage::Q8Values:
      return dtype_name == "I8" ? "" : "is " + dtype_name + ", expected I8 (Q8_0 values)";
    case Storage::Q8Scales:
      return dtype_name == "F32" ? "" : "is " + dtype_name + ", expected F32 (Q8_0 scales)";
    case Storage::Q4Values:
      return dtype_name == "U8" ? "" : "is " + dtype_name + ", expected U8 (Q4_0 packed values)";
    case Storage::Q4Scales:
      return dtype_name == "BF16" ? "" : "is " + dtype_name + ", expected BF16 (Q4_0 scales)";
  }
  return "has an unknown storage";
}

Dim Dim::times(int64_t f) const {
  Dim d = *this;
  d.size *= f;
  d.factor *= f;
  return d;
}

Dim Dim::over(const Dim& divisor) const {
  if (divisor.size <= 0 || size % divisor.size != 0)
    throw Error("a size of " + std::to_string(size) + " does not divide into " + std::to_string(divisor.size));
  Dim d = *this;
  d.size /= divisor.size;
  // Only a plain field over a plain field is a source the converter can invert.
  const bool plain = per.empty() && factor == 1 && divisor.factor == 1 && divisor.per.empty();
  if (plain && !key.empty() && !divisor.key.empty()) {
    d.per = divisor.key;
  } else {
    d.key.clear();
    d.per.clear();
    d.factor = 1;
  }
  return d;
}

std::string ModelSpec::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const TensorDecl& t : tensors) {
    nlohmann::json dims = nlohmann::json::array();
    for (const Dim& d : t.dims) {
      if (d.key.empty()) {
        dims.push_back(nullptr);
        continue;
      }
      nlohmann::json src = {{"key", d.key}};
      if (d.factor != 1) src["factor"] = d.factor;
      if (!d.per.empty()) src["per"] = d.per;
      dims.push_back(src);
    }
    list.push_back({{"name", t.name}, {"shape", t.shape}, {"dims", dims}, {"used", t.used},
                    {"quantizable", t.quantizable}, {"stored", storage_name(t.storage)}});
  }
  nlohmann::json reps = nlohmann::json::array(), flgs = nlohmann::json::array();
  for (const RepeatDecl& r : repeats) reps.push_back({{"key", r.key}, {"prefix", r.prefix}});
  for (const FlagDecl& f : flags) flgs.push_back({{"key", f.key}, {"tensor", f.tensor}});
  return nlohmann::json{{"tensors", list}, {"repeats", reps}, {"flags", flgs}}.dump(1) + "\n";
}

}  // namespace wavllm
