#include "wavllm/core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "wavllm/core/error.h"

namespace wavllm {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

RegularFile::RegularFile(const std::string& path, const std::string& what) : path_(path), what_(what) {
  // The system would open the path only up to its first NUL: another file than the one named.
  if (path.find('\0') != std::string::npos) throw FileError(what, path, "the path contains a NUL byte");
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) {
    const int err = errno;
    throw FileError(what, path, err == ENOENT ? std::string("no such file") : std::strerror(err));
  }
  struct stat sb {};
  if (fstat(fd_, &sb) != 0) {
    const int err = errno;
    ::close(fd_);
    throw FileError(what, path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(sb.st_mode)) {
    ::close(fd_);
    throw FileError(what, path, std::string("is ") + kind_of(sb.st_mode) + ", expected a regular file");
  }
  size_ = static_cast<uint64_t>(sb.st_size);
  const int flags = fcntl(fd_, F_GETFL);
  if (flags >= 0) fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string RegularFile::read_all(uint64_t max_bytes) const {
  auto too_large = [&] {
    return FileError(what_, path_, "larger than the " + std::to_string(max_bytes) + "-byte limit for such a file");
  };
  if (size_ > max_bytes) throw too_large();
  std::string out;
  out.reserve(static_cast<size_t>(size_));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FileError(what_, path_, std::string("read failed: ") + std::strerror(errno));
    }
    // The file may grow while it is read (or lie in stat): the cap counts bytes read.
    if (out.size() + static_cast<uint64_t>(n) > max_bytes) throw too_large();
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string read_regular_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  return RegularFile(path, what).read_all(max_bytes);
}

}  // namespace wavllm
