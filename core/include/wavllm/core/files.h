#pragma once
// Every file the engine reads comes through here: it must be a regular file (a FIFO, a device
// such as /dev/zero, a socket or a directory is refused before a byte is read, and opening never
// blocks), and whole-file reads are capped on the bytes actually read, not on what stat says.
// Torch-free (the fuzzers and the audio front end use it).
#include <cstdint>
#include <string>

#include "wavllm/core/error.h"

namespace wavllm {

// Why a file could not be opened or read; what() is "<what> <path>: <reason>".
class FileError : public Error {
 public:
  FileError(const std::string& what, const std::string& path, const std::string& reason)
      : Error(what + " " + path + ": " + reason), reason_(reason) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

// An open read-only descriptor of a regular file, closed on destruction.
class RegularFile {
 public:
  // `what` names the file's role in errors ("config.json", "tokenizer"); the Error says which
  // path, and why (no such file, a directory, a FIFO, a device, permission...).
  RegularFile(const std::string& path, const std::string& what);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // from fstat, at open
  const std::string& path() const { return path_; }
  // The whole file; an Error when it holds more than max_bytes (counted while reading).
  std::string read_all(uint64_t max_bytes) const;

 private:
  std::string path_, what_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// RegularFile(path, what).read_all(max_bytes).
std::string read_regular_file(const std::string& path, const std::string& what, uint64_t max_bytes);

// Caps on what one file of each kind may hold: far above any real file, far below memory.
constexpr uint64_t kMaxJsonFileBytes = 16ull << 20;       // config.json, shard index, hparams
constexpr uint64_t kMaxTokenizerFileBytes = 64ull << 20;  // LLaMA-2's is 0.5 MB
constexpr uint64_t kMaxManifestFileBytes = 1ull << 30;    // TSV manifests, batch results

}  // namespace wavllm
