#include "wavllm/core/weights.h"

#include <sstream>

#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/core/safetensors.h"

namespace wavllm {

namespace {

at::ScalarType to_scalar(st::DType d) {
  switch (d) {
    case st::DType::F64: return at::kDouble;
    case st::DType::F32: return at::kFloat;
    case st::DType::F16: return at::kHalf;
    case st::DType::BF16: return at::kBFloat16;
    case st::DType::I64: return at::kLong;
    case st::DType::I32: return at::kInt;
    case st::DType::I16: return at::kShort;
    case st::DType::I8: return at::kChar;
    case st::DType::U8: return at::kByte;
    case st::DType::BOOL: return at::kBool;
  }
  throw Error("unsupported dtype");
}

}  // namespace

std::string stored_dtype_name(at::ScalarType t) {
  for (st::DType d : {st::DType::F64, st::DType::F32, st::DType::F16, st::DType::BF16, st::DType::I64, st::DType::I32,
                      st::DType::I16, st::DType::I8, st::DType::U8, st::DType::BOOL})
    if (to_scalar(d) == t) return st::dtype_name(d);
  return c10::toString(t);
}

namespace {

// One Error listing every problem, so a user fixes a converted model in one round.
void check_against_spec(const std::map<std::string, std::vector<int64_t>>& shapes,
                          const std::map<std::string, std::string>& stored, const ModelSpec& spec,
                          const std::string& label) {
  std::vector<std::string> missing, misshaped, unexpected, not_float;
  std::map<std::string, const TensorDecl*> declared;
  for (const auto& t : spec.tensors) declared[t.name] = &t;
  for (const auto& t : spec.tensors) {
    auto it = shapes.find(t.name);
    if (it == shapes.end()) {
      if (t.used) missing.push_back(t.name + " " + shape_str(t.shape));
    } else if (it->second != t.shape) {
      misshaped.push_back(t.name + " is " + shape_str(it->second) + ", config says " + shape_str(t.shape));
    } else if (const std::string wrong = storage_problem(t.storage, stored.at(t.name)); !wrong.empty()) {
      not_float.push_back(t.name + " " + wrong);
    }
  }
  for (const auto& [name, shape] : shapes)
    if (!declared.count(name)) unexpected.push_back(name + " " + shape_str(shape));
  if (missing.empty() && misshaped.empty() && unexpected.empty() && not_float.empty()) return;
  std::ostringstream os;
  os << label << ": the weights do not match config.json";
  auto section = [&](const char* title, const std::vector<std::string>& items) {
    if (items.empty()) return;
    os << "\n  " << title << " (" << items.size() << "):";
    size_t shown = 0;
    for (const auto& s : items) {
      if (shown++ == 20) { os << "\n    ... and " << items.size() - 20 << " more"; break; }
      os << "\n    " << s;
    }
  };
  section("missing", missing);
  section("wrong shape", misshaped);
  section("wrong dtype", not_float);
  section("unexpected", unexpected);
  throw Error(os.str());
}

}  // namespace

Weights Weights::load(const std::string& path, const ModelSpec& spec, at::Device device,
                      at::ScalarType dtype) {
  st::ShardSet set = st::ShardSet::open(path);
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::string> stored;
  for (const auto& [name, entry] : set.tensors()) {
    shapes[name] = entry.second->shape;
    stored[name] = st::dtype_name(entry.second->dtype);
  }
  check_against_spec(shapes, stored, spec, path);

  // Tensors kept as views of the mapping cost no anonymous memory; every other one is a copy.
  uint64_t needed = 0;
  for (const auto& t : spec.tensors) {
    if (!t.used || t.storage != Storage::Float) continue;  // Q8_0 tensors are used as stored
    if (device.is_cpu() && to_scalar(set.tensors().at(t.name).second->dtype) == dtype) continue;
    uint64_t n = c10::elementSize(dtype);
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    needed += n;
  }
  if (device.is_cpu()) check_memory_budget(needed, available_memory_bytes(), "loading " + path);

  Weights w;
  w.device_ = device;
  w.dtype_ = dtype;
  for (const auto& file : set.files())
    if (auto it = file->metadata().find("format"); it != file->metadata().end()) w.formats_.insert(it->second);
  std::map<std::string, const TensorDecl*> declared;
  for (const auto& t : spec.tensors) declared[t.name] = &t;
  for (const auto& [name, entry] : set.tensors()) {
    const TensorDecl& decl = *declared.at(name);
    if (!decl.used) continue;
    const auto& [file, info] = entry;
    const at::ScalarType stored = to_scalar(info->dtype);
    const uint8_t* ptr = file->data(*info);
    // The mapping stays alive as long as any tensor viewing it.
    std::shared_ptr<st::File> keep = file;
    at::Tensor view;
    const bool aligned = reinterpret_cast<uintptr_t>(ptr) % st::dtype_size(info->dtype) == 0;
    if (aligned && info->nbytes > 0) {
      view = at::from_blob(const_cast<uint8_t*>(ptr), info->shape, [keep](void*) {},
                           at::TensorOptions().dtype(stored));
    } else {
      view = at::empty(info->shape, at::TensorOptions().dtype(stored));
      if (info->nbytes) std::memcpy(view.data_ptr(), ptr, info->nbytes);
    }
    // The mapping is read-only: a tensor that stays a view of it must never be written.
    // Q8_0 values and scales keep their dtype.
    if ((stored == dtype || decl.storage != Storage::Float) && device.is_cpu())
      w.tensors_[name] = view;
    else
      w.tensors_[name] = view.to(device, dtype).contiguous();
  }
  return w;
}

Weights Weights::from_map(std::map<std::string, at::Tensor> tensors, const ModelSpec& spec) {
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::string> stored;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  for (const auto& [name, t] : tensors) {
    shapes[name] = t.sizes().vec();
    stored[name] = stored_dtype_name(t.scalar_type());
    device = t.device();
    if (at::isFloatingType(t.scalar_type())) dtype = t.scalar_type();
  }
  check_against_spec(shapes, stored, spec, "weights");
  Weights w;
  w.tensors_ = std::move(tensors);
  w.device_ = device;
  w.dtype_ = dtype;
  return w;
}

const at::Tensor& Weights::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("model has no tensor '" + name + "'");
  return it->second;
}

}  // namespace wavllm
