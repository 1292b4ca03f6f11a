#include "migration/channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "state/byte_stream.h"

namespace virga::migration {

namespace {

struct Address {
  int family;
  sockaddr_storage storage{};
  socklen_t len = 0;
};

Address Resolve(const std::string& uri) {
  Address a;
  if (uri.rfind("unix:", 0) == 0) {
    std::string path = uri.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof(un.sun_path)) throw VmmError("'" + uri + "': bad unix socket path");
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    a.family = AF_UNIX;
    std::memcpy(&a.storage, &un, sizeof(un));
    a.len = sizeof(un);
    return a;
  }
  if (uri.rfind("tcp:", 0) != 0) throw VmmError("'" + uri + "' is neither tcp:<host>:<port> nor unix:<path>");
  std::string rest = uri.substr(4);
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos) throw VmmError("'" + uri + "': expected tcp:<host>:<port>");
  std::string host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  int err = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &result);
  if (err != 0 || result == nullptr) throw VmmError("'" + uri + "': " + ::gai_strerror(err));
  a.family = result->ai_family;
  std::memcpy(&a.storage, result->ai_addr, result->ai_addrlen);
  a.len = result->ai_addrlen;
  ::freeaddrinfo(result);
  return a;
}

void TuneTcp(int fd, int family) {
  if (family == AF_UNIX) return;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

UniqueFd Connect(const std::string& uri, int timeout_ms) {
  Address a = Resolve(uri);
  UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) throw ErrnoError("socket for " + uri);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a.storage), a.len) != 0) {
    if (errno != EINPROGRESS) throw ErrnoError("cannot connect to " + uri);
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) throw VmmError("cannot connect to " + uri + ": timed out");
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) throw ErrnoError("cannot connect to " + uri, err);
  }
  TuneTcp(fd.get(), a.family);
  return fd;
}

UniqueFd Listen(const std::string& uri) {
  Address a = Resolve(uri);
  UniqueFd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw ErrnoError("socket for " + uri);
  int one = 1;
  if (a.family != AF_UNIX) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (a.family == AF_UNIX) ::unlink(reinterpret_cast<sockaddr_un*>(&a.storage)->sun_path);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a.storage), a.len) != 0) throw ErrnoError("cannot listen on " + uri);
  if (::listen(fd.get(), 1) != 0) throw ErrnoError("cannot listen on " + uri);
  return fd;
}

UniqueFd Accept(int listener) {
  for (;;) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return UniqueFd(fd);
    }
    if (errno == EINTR) continue;
    throw ErrnoError("accepting the migration connection");
  }
}

std::vector<uint8_t> EncodeHello(const std::string& vmm_version, const MachineLayout& layout) {
  state::ByteWriter hello;
  hello.Bytes(kMagic, sizeof(kMagic));
  hello.U32(kProtocolVersion);
  hello.String(vmm_version);
  layout.Encode(hello);
  return std::move(hello.data());
}

void Channel::Abort() {
  aborted_.store(true);
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
}

void Channel::WriteAll(const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    if (aborted_.load()) throw VmmError("the migration was cancelled");
    ssize_t n = ::send(fd_.get(), p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd pf{fd_.get(), POLLOUT, 0};
      // A peer that stops reading for this long is gone.
      if (::poll(&pf, 1, 30000) == 0) throw VmmError("the peer stopped reading for 30 s");
      continue;
    }
    if (n < 0) throw ErrnoError(aborted_.load() ? "the migration was cancelled" : "the connection to the peer broke");
    p += n;
    len -= static_cast<size_t>(n);
    sent_.fetch_add(static_cast<uint64_t>(n));
  }
}

void Channel::ReadAll(void* data, size_t len, int timeout_ms) {
  uint8_t* p = static_cast<uint8_t*>(data);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  while (len > 0) {
    if (aborted_.load()) throw VmmError("the migration was cancelled");
    ssize_t n = ::recv(fd_.get(), p, len, 0);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) throw VmmError("the peer closed the connection");
    if (errno == EINTR) continue;
    if (errno != EAGAIN) throw ErrnoError("the connection to the peer broke");
    int wait = -1;
    if (timeout_ms >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) throw VmmError("the peer did not answer in time");
      wait = static_cast<int>(left.count());
    }
    pollfd pf{fd_.get(), POLLIN, 0};
    ::poll(&pf, 1, wait);
  }
}

void Channel::Send(MessageType type, const void* payload, size_t len) {
  uint8_t header[12];
  uint32_t t = static_cast<uint32_t>(type);
  uint64_t l = len;
  std::memcpy(header, &t, 4);
  std::memcpy(header + 4, &l, 8);
  WriteAll(header, sizeof(header));
  if (len) WriteAll(payload, len);
}

Message Channel::Receive(int timeout_ms, size_t max_bytes) {
  uint8_t header[12];
  ReadAll(header, sizeof(header), timeout_ms);
  uint32_t t;
  uint64_t len;
  std::memcpy(&t, header, 4);
  std::memcpy(&len, header + 4, 8);
  if (t < 1 || t > 8) throw VmmError("the peer sent an unknown message type " + std::to_string(t));
  if (len > max_bytes) throw VmmError("the peer sent a message of " + std::to_string(len) + " bytes");
  // The buffer grows with what arrives, not with what the header claims:
  // any peer that reaches the address can send a header.
  Message m{static_cast<MessageType>(t), {}};
  constexpr size_t kStep = 1 << 20;
  while (m.payload.size() < len) {
    size_t got = m.payload.size();
    size_t step = len - got < kStep ? len - got : kStep;
    m.payload.resize(got + step);
    ReadAll(m.payload.data() + got, step, timeout_ms);
  }
  return m;
}

}  // namespace virga::migration
