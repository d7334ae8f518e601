#include "peer.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>

namespace wavllm::cli {

namespace {

int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

// The numeric host as cpp-httplib writes it (getnameinfo, NI_NUMERICHOST).
std::string host_of(const sockaddr_storage& a, socklen_t size) {
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), size, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return {};
  return host;
}

int find_socket(const std::string& remote_addr, int remote_port, int local_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end || fd == dirfd(dir)) continue;
    sockaddr_storage peer{}, self{};
    socklen_t peer_size = sizeof peer, self_size = sizeof self;
    if (getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0 ||
        getsockname(int(fd), reinterpret_cast<sockaddr*>(&self), &self_size) != 0)
      continue;
    if (port_of(self) == local_port && port_of(peer) == remote_port && host_of(peer, peer_size) == remote_addr) {
      found = int(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

Peer::Peer(const std::string& remote_addr, int remote_port, int local_port)
    : fd_(find_socket(remote_addr, remote_port, local_port)) {}

bool Peer::gone() const {
  if (fd_ < 0) return false;
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace wavllm::cli
