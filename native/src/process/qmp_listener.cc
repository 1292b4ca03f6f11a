#include "process/qmp_listener.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace virga {

namespace {

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    throw VmmError("QMP socket path " + path + " is longer than " + std::to_string(sizeof(addr.sun_path) - 1) +
                   " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// A leftover socket file is replaced, unless a live server still answers on it.
void ClearStaleSocket(const std::string& path, const sockaddr_un& addr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw VmmError("QMP socket " + path + " exists and is not a socket");
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    throw VmmError("QMP socket " + path + " is in use by another process");
  }
  ::unlink(path.c_str());
}

UniqueFd ListenUnix(const std::string& path) {
  sockaddr_un addr = UnixAddress(path);
  ClearStaleSocket(path, addr);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw ErrnoError("QMP socket");
  // Created 0600: there is no moment when others could connect.
  mode_t mask = ::umask(0177);
  int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(mask);
  if (bound != 0) throw ErrnoError("QMP socket: bind " + path, err);
  if (::listen(fd.get(), 64) != 0) throw ErrnoError("QMP socket: listen on " + path);
  return fd;
}

UniqueFd ListenTcp(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) throw VmmError("QMP address " + host + ": " + ::gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) continue;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), 64) == 0) {
      ::freeaddrinfo(found);
      return fd;
    }
    last_error = std::strerror(errno);
  }
  ::freeaddrinfo(found);
  throw VmmError("QMP socket: cannot listen on " + host + ":" + service + ": " + last_error);
}

}  // namespace

UniqueFd ListenForQmp(const cli::Qmp& qmp) {
  return qmp.kind == cli::Qmp::Kind::kUnix ? ListenUnix(qmp.path) : ListenTcp(qmp.host, qmp.port);
}

}  // namespace virga
