#include "wavllm/core/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "wavllm/core/error.h"
#include "wavllm/core/files.h"
#include "wavllm/core/huge_pages.h"
#include "wavllm/core/json_strict.h"

namespace wavllm::st {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

// A header bigger than this is not a model header but an attack or a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

const char* dtype_name(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.name;
  return "?";
}

DType parse_dtype(const std::string& name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  throw Error("unknown safetensors dtype '" + name + "'");
}

size_t dtype_size(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.size;
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

std::shared_ptr<File> File::open(const std::string& path) {
  const RegularFile file(path, "weights");
  std::shared_ptr<File> f(new File());
  f->path_ = path;
  f->size_ = static_cast<size_t>(file.size());
  if (f->size_ > 0) {
    // At a huge-page boundary: a decoding step then streams its weights without a TLB miss
    // and a stopped hardware prefetch every 4 KiB (docs/kernels.md, "Weights in huge pages").
    void* m = map_at_huge_boundary(f->size_, file.fd());
    if (!m) throw Error(path + ": cannot map: " + std::strerror(errno));
    f->map_ = m;
    f->map_size_ = f->size_;
    f->bytes_ = static_cast<const uint8_t*>(m);
  }
  f->parse();
  return f;
}

std::shared_ptr<File> File::from_bytes(const void* data, size_t size, const std::string& label) {
  std::shared_ptr<File> f(new File());
  f->path_ = label;
  f->owned_.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  f->bytes_ = f->owned_.data();
  f->size_ = size;
  f->parse();
  return f;
}

File::~File() {
  if (map_) munmap(map_, map_size_);
}

namespace {

// The header as one flat object: {"__metadata__": {str: str}, name: {"dtype": str, "shape":
// [uint...], "data_offsets": [uint, uint]}, ...}, read by a SAX handler in one linear pass
// that refuses any other structure as soon as it sees it (no DOM, no rescans).
class HeaderReader : public json::json_sax_t {
 public:
  HeaderReader(uint64_t data_size, std::map<std::string, TensorInfo>& tensors,
               std::map<std::string, std::string>& metadata)
      : data_size_(data_size), tensors_(tensors), metadata_(metadata) {}

  const std::string& problem() const { return problem_; }
  std::vector<std::pair<uint64_t, uint64_t>>& ranges() { return ranges_; }

  bool null() override { return scalar("null"); }
  bool boolean(bool) override { return scalar("a boolean"); }
  bool number_integer(number_integer_t) override { return scalar("a negative number"); }
  bool number_float(number_float_t, const string_t&) override { return scalar("a fraction"); }
  bool binary(binary_t&) override { return scalar("binary"); }
  bool number_unsigned(number_unsigned_t v) override {
    if (at_ == At::Shape) {
      if (v > (uint64_t(1) << 48) || (v != 0 && numel_ > std::numeric_limits<uint64_t>::max() / v / 8))
        return fail(where() + "shape is absurdly large");
      numel_ *= v;
      entry_.shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (at_ == At::Offsets) {
      if (offsets_.size() == 2) return fail(where() + "data_offsets must be two non-negative integers");
      offsets_.push_back(v);
      return true;
    }
    return scalar("a number");
  }
  bool string(string_t& s) override {
    if (at_ == At::Meta) {
      metadata_[key_] = s;
      return true;
    }
    if (at_ == At::Entry && field_ == "dtype") {
      try {
        entry_.dtype = parse_dtype(s);
      } catch (const Error& e) {
        return fail(where() + e.what());
      }
      return true;
    }
    return scalar("a string");
  }
  bool start_object(std::size_t) override {
    switch (at_) {
      case At::Start: at_ = At::Top; return true;
      case At::Top:
        if (key_ == "__metadata__") {
          at_ = At::Meta;
        } else {
          at_ = At::Entry;
          entry_ = TensorInfo{};
          entry_.name = key_;
          fields_.clear();
          numel_ = 1;
          offsets_.clear();
        }
        return true;
      default: return scalar("an object");
    }
  }
  bool end_object() override {
    if (at_ == At::Meta) {
      at_ = At::Top;
      return true;
    }
    if (at_ == At::Entry) {
      at_ = At::Top;
      return finish_entry();
    }
    at_ = At::Done;
    return true;
  }
  bool start_array(std::size_t) override {
    if (at_ == At::Entry && field_ == "shape") {
      at_ = At::Shape;
      return true;
    }
    if (at_ == At::Entry && field_ == "data_offsets") {
      at_ = At::Offsets;
      return true;
    }
    if (at_ == At::Start) return fail(path_ + ": header is not a JSON object");
    return scalar("an array");
  }
  bool end_array() override {
    at_ = At::Entry;
    return true;
  }
  bool key(string_t& k) override {
    if (at_ == At::Top) {
      key_ = k;
      if (k == "__metadata__" ? seen_metadata_ : tensors_.count(k) != 0)
        return fail(path_ + ": tensor '" + k + "': duplicate name");
      seen_metadata_ = seen_metadata_ || k == "__metadata__";
      return true;
    }
    if (at_ == At::Meta) {
      if (metadata_.count(k)) return fail(path_ + ": __metadata__ key '" + k + "' appears twice");
      key_ = k;
      return true;
    }
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      return fail(where() + "unknown field '" + k + "' (an entry has dtype, shape and data_offsets)");
    if (!fields_.insert(k).second) return fail(where() + "field '" + k + "' appears twice");
    field_ = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return fail(path_ + ": header is not valid JSON: " + e.what());
  }
  void set_path(const std::string& p) { path_ = p; }

 private:
  enum class At { Start, Top, Meta, Entry, Shape, Offsets, Done };

  std::string where() const { return path_ + ": tensor '" + entry_.name + "': "; }
  bool fail(const std::string& why) {
    problem_ = why;
    return false;
  }
  // A value where the flat layout has none of its kind.
  bool scalar(const char* kind) {
    switch (at_) {
      case At::Start: return fail(path_ + ": header is not a JSON object");
      case At::Top:
        return fail(key_ == "__metadata__" ? path_ + ": __metadata__ is not an object"
                                           : path_ + ": tensor '" + key_ + "': entry needs dtype, shape and data_offsets");
      case At::Meta: return fail(path_ + ": __metadata__ value '" + key_ + "' is not a string");
      case At::Shape: return fail(where() + "shape has a non-integer or negative dimension");
      case At::Offsets: return fail(where() + "data_offsets must be two non-negative integers");
      case At::Entry:
        if (field_ == "dtype") return fail(where() + "dtype is not a string");
        if (field_ == "shape") return fail(where() + "shape is not an array");
        return fail(where() + "data_offsets must be two non-negative integers");
      case At::Done: break;
    }
    return fail(path_ + ": header has " + kind + " after its object");
  }
  bool finish_entry() {
    if (fields_.size() != 3) return fail(where() + "entry needs dtype, shape and data_offsets");
    if (offsets_.size() != 2) return fail(where() + "data_offsets must be two non-negative integers");
    const uint64_t b = offsets_[0], en = offsets_[1];
    if (b > en) return fail(where() + "data_offsets are reversed");
    if (en > data_size_)
      return fail(where() + "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                  ") run past the end of the data (" + std::to_string(data_size_) + " bytes): truncated file?");
    const uint64_t expect = numel_ * dtype_size(entry_.dtype);
    if (en - b != expect)
      return fail(where() + "byte length " + std::to_string(en - b) + " does not match " + dtype_name(entry_.dtype) +
                  " x shape (" + std::to_string(expect) + " bytes)");
    entry_.offset = b;
    entry_.nbytes = en - b;
    if (en > b) ranges_.emplace_back(b, en);
    const std::string name = entry_.name;
    tensors_.emplace(name, std::move(entry_));
    return true;
  }

  uint64_t data_size_;
  std::map<std::string, TensorInfo>& tensors_;
  std::map<std::string, std::string>& metadata_;
  std::string path_, problem_, key_, field_;
  At at_ = At::Start;
  bool seen_metadata_ = false;
  TensorInfo entry_;
  std::set<std::string> fields_;
  uint64_t numel_ = 1;
  std::vector<uint64_t> offsets_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

}  // namespace

void File::parse() {
  const std::string& p = path_;
  if (size_ < 8) throw Error(p + ": not a safetensors file (" + std::to_string(size_) + " bytes, shorter than the 8-byte header length)");
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes_, 8);  // little-endian hosts only (x86-64, aarch64)
  if (hlen > kMaxHeaderBytes) throw Error(p + ": header length " + std::to_string(hlen) + " is absurd (limit 100 MiB): not a safetensors file");
  if (hlen > size_ - 8) throw Error(p + ": header length " + std::to_string(hlen) + " is larger than the file (" + std::to_string(size_) + " bytes): truncated or not safetensors");
  data_begin_ = bytes_ + 8 + hlen;
  HeaderReader reader(size_ - 8 - hlen, tensors_, metadata_);
  reader.set_path(p);
  const char* text = reinterpret_cast<const char*>(bytes_ + 8);
  if (!json::sax_parse(text, text + hlen, &reader)) throw Error(reader.problem());

  auto& ranges = reader.ranges();
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw Error(p + ": tensors overlap in the data section (offset " + std::to_string(ranges[i].first) + ")");
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(path_ + ": no tensor named '" + name + "'");
  return it->second;
}

std::vector<float> File::read_f32(const std::string& name) const {
  const TensorInfo& t = info(name);
  const uint8_t* d = data(t);
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::F32: std::memcpy(&out[i], d + 4 * i, 4); break;
      case DType::F64: { double v; std::memcpy(&v, d + 8 * i, 8); out[i] = static_cast<float>(v); break; }
      case DType::F16: { uint16_t v; std::memcpy(&v, d + 2 * i, 2); out[i] = half_to_float(v); break; }
      case DType::BF16: { uint16_t v; std::memcpy(&v, d + 2 * i, 2); uint32_t b = uint32_t(v) << 16; std::memcpy(&out[i], &b, 4); break; }
      case DType::I64: { int64_t v; std::memcpy(&v, d + 8 * i, 8); out[i] = static_cast<float>(v); break; }
      case DType::I32: { int32_t v; std::memcpy(&v, d + 4 * i, 4); out[i] = static_cast<float>(v); break; }
      case DType::I16: { int16_t v; std::memcpy(&v, d + 2 * i, 2); out[i] = v; break; }
      case DType::I8: out[i] = static_cast<int8_t>(d[i]); break;
      case DType::U8: case DType::BOOL: out[i] = d[i]; break;
    }
  }
  return out;
}

std::vector<int64_t> File::read_i64(const std::string& name) const {
  const TensorInfo& t = info(name);
  const uint8_t* d = data(t);
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case DType::I64: std::memcpy(&out[i], d + 8 * i, 8); break;
      case DType::I32: { int32_t v; std::memcpy(&v, d + 4 * i, 4); out[i] = v; break; }
      case DType::I16: { int16_t v; std::memcpy(&v, d + 2 * i, 2); out[i] = v; break; }
      case DType::I8: out[i] = static_cast<int8_t>(d[i]); break;
      case DType::U8: case DType::BOOL: out[i] = d[i]; break;
      default: throw Error(path_ + ": tensor '" + name + "' is " + dtype_name(t.dtype) + ", not an integer type");
    }
  }
  return out;
}

Writer::Writer(const std::string& path, std::vector<TensorSpec> specs,
               const std::map<std::string, std::string>& metadata)
    : path_(path), specs_(std::move(specs)) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& s : specs_) {
    if (!names.insert(s.name).second) throw Error(path + ": duplicate tensor name '" + s.name + "'");
    uint64_t n = dtype_size(s.dtype);
    for (auto d : s.shape) {
      if (d < 0) throw Error(path + ": tensor '" + s.name + "' has a negative dimension");
      n *= static_cast<uint64_t>(d);
    }
    header[s.name] = {{"dtype", dtype_name(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  // "x": never truncate a file that is already there (the writer makes new files only).
  fp_ = std::fopen(path.c_str(), "wbx");
  if (!fp_)
    throw Error(path + (errno == EEXIST ? std::string(": already exists; refusing to overwrite it")
                                        : ": cannot open for writing: " + std::string(std::strerror(errno))));
  uint64_t hlen = text.size();
  if (std::fwrite(&hlen, 8, 1, fp_) != 1 || std::fwrite(text.data(), 1, text.size(), fp_) != text.size()) {
    std::fclose(fp_);
    fp_ = nullptr;
    throw Error(path + ": write failed: " + std::strerror(errno));
  }
}

Writer::~Writer() {
  if (fp_) std::fclose(fp_);
}

void Writer::write(const std::string& name, const void* data, size_t nbytes) {
  if (!fp_) throw Error(path_ + ": writer is closed");
  if (next_ >= specs_.size()) throw Error(path_ + ": more tensors written than declared ('" + name + "')");
  const TensorSpec& s = specs_[next_];
  if (s.name != name) throw Error(path_ + ": expected tensor '" + s.name + "' next, got '" + name + "'");
  size_t expect = dtype_size(s.dtype);
  for (auto d : s.shape) expect *= static_cast<size_t>(d);
  if (nbytes != expect) throw Error(path_ + ": tensor '" + name + "': " + std::to_string(nbytes) + " bytes, declared " + std::to_string(expect));
  if (nbytes && std::fwrite(data, 1, nbytes, fp_) != nbytes) throw Error(path_ + ": write failed (disk full?): " + std::strerror(errno));
  ++next_;
}

void Writer::close() {
  if (!fp_) return;
  if (next_ != specs_.size()) throw Error(path_ + ": closed after " + std::to_string(next_) + " of " + std::to_string(specs_.size()) + " tensors");
  int rc = std::fclose(fp_);
  fp_ = nullptr;
  if (rc != 0) throw Error(path_ + ": write failed (disk full?): " + std::strerror(errno));
}

ShardSet ShardSet::open(const std::string& path) {
  ShardSet set;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw Error(path + ": cannot access: " + ec.message());
  if (!fs::exists(status)) throw Error(path + ": no such file or directory");
  if (!fs::is_directory(status)) {
    set.add(File::open(path));
    return set;
  }
  const fs::path dir(path);
  const fs::path index = dir / "model.safetensors.index.json";
  std::vector<std::string> shard_files;
  if (fs::exists(fs::symlink_status(index, ec))) {
    const json j = parse_json_strict(read_regular_file(index.string(), "shard index", kMaxJsonFileBytes), index.string());
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": needs a \"weight_map\" object");
    std::set<std::string> uniq;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw Error(index.string() + ": weight_map['" + it.key() + "'] is not a file name");
      std::string f = it->get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        throw Error(index.string() + ": shard name '" + f + "' must be a plain file name");
      uniq.insert(f);
    }
    shard_files.assign(uniq.begin(), uniq.end());
    for (const auto& f : shard_files) set.add(File::open((dir / f).string()));
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      auto t = set.tensors_.find(it.key());
      if (t == set.tensors_.end())
        throw Error(index.string() + ": tensor '" + it.key() + "' is listed but not in " + it->get<std::string>());
      if (fs::path(t->second.first->path()).filename() != it->get<std::string>())
        throw Error(index.string() + ": tensor '" + it.key() + "' is in " + t->second.first->path() + ", index says " + it->get<std::string>());
    }
    return set;
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("model", 0) == 0 && e.path().extension() == ".safetensors") shard_files.push_back(e.path().string());
  }
  if (ec) throw Error(path + ": cannot list the directory: " + ec.message());
  if (shard_files.empty()) throw Error(path + ": no model*.safetensors files in this directory");
  std::sort(shard_files.begin(), shard_files.end());
  for (const auto& f : shard_files) set.add(File::open(f));
  return set;
}

void ShardSet::add(const std::shared_ptr<File>& f) {
  files_.push_back(f);
  for (const auto& [name, info] : f->tensors()) {
    auto [it, fresh] = tensors_.emplace(name, std::make_pair(f, &info));
    if (!fresh) throw Error("tensor '" + name + "' is in both " + it->second.first->path() + " and " + f->path());
  }
}

}  // namespace wavllm::st
