#pragma once
// safetensors files: https://github.com/huggingface/safetensors (format only).
// Reading maps the file and bounds-checks the whole header before any tensor is touched,
// so a malformed file is an Error, never an out-of-bounds read. Torch-free on purpose:
// the fuzzer and the audio tests use it without LibTorch.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace wavllm::st {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType d);
DType parse_dtype(const std::string& name);  // throws Error on an unknown name
size_t dtype_size(DType d);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t offset = 0;  // from the start of the data section
  size_t nbytes = 0;
  int64_t numel() const;
};

// An mmap of one file. Tensors point into the mapping, which lives while any
// shared_ptr to the File does.
class File {
 public:
  static std::shared_ptr<File> open(const std::string& path);
  // Parses an in-memory image (used by the fuzzer); the bytes are copied.
  static std::shared_ptr<File> from_bytes(const void* data, size_t size, const std::string& label);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws Error naming the tensor
  const uint8_t* data(const TensorInfo& t) const { return data_begin_ + t.offset; }

  // Copies of the values as float32 / int64, whatever the stored dtype (tests, small tensors).
  std::vector<float> read_f32(const std::string& name) const;
  std::vector<int64_t> read_i64(const std::string& name) const;

 private:
  File() = default;
  void parse();

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<uint8_t> owned_;  // from_bytes
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_begin_ = nullptr;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Streaming writer: the header (all names, dtypes, shapes) is written first, then each
// tensor's bytes in the declared order, so a model larger than memory can be written one
// tensor at a time.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

class Writer {
 public:
  Writer(const std::string& path, std::vector<TensorSpec> specs,
         const std::map<std::string, std::string>& metadata = {});
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  // Next tensor in declaration order; nbytes must equal dtype size x numel.
  void write(const std::string& name, const void* data, size_t nbytes);
  void close();  // checks every declared tensor was written

 private:
  std::string path_;
  std::vector<TensorSpec> specs_;
  size_t next_ = 0;
  std::FILE* fp_ = nullptr;
};

// An HF-style sharded checkpoint (model.safetensors.index.json) or a single file, seen as one
// name -> (file, info) table. Opening a directory picks the index if present, else every
// model*.safetensors in it; the same name in two files is an error.
class ShardSet {
 public:
  static ShardSet open(const std::string& path);
  const std::map<std::string, std::pair<std::shared_ptr<File>, const TensorInfo*>>& tensors() const {
    return tensors_;
  }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const std::vector<std::shared_ptr<File>>& files() const { return files_; }

 private:
  void add(const std::shared_ptr<File>& f);
  std::vector<std::shared_ptr<File>> files_;
  std::map<std::string, std::pair<std::shared_ptr<File>, const TensorInfo*>> tensors_;
};

}  // namespace wavllm::st
