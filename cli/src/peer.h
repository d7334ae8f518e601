#pragma once
// Whether the client of an HTTP request has gone, for requests answered in one piece (streams
// notice a closed connection at their next write). cpp-httplib 0.11 gives a handler no access to
// its connection, so the socket is found by its two addresses.
#include <string>

namespace wavllm::cli {

class Peer {
 public:
  // The connection from remote_addr:remote_port (numeric, as cpp-httplib names it) to our
  // local_port. If no socket of this process matches, gone() is always false.
  Peer(const std::string& remote_addr, int remote_port, int local_port);
  // True once the client closed or reset the connection: reading it gives end of file or an
  // error, without taking any byte. (A client that only shut its sending half reads as gone too:
  // HTTP clients that wait for an answer do not.)
  bool gone() const;

 private:
  int fd_ = -1;
};

}  // namespace wavllm::cli
