#include "io/fd_passing_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace virga {

namespace {
// One read's worth is what a client's bytes cost the JS thread at once
// (splitting and parsing ~600 commands of a flood) and the buffer every
// connection keeps: small, since one Node process serves many VMs' clients.
constexpr size_t kChunk = 16 * 1024;
constexpr size_t kMaxFdsPerMessage = 16;
}  // namespace

FdPassingReader::FdPassingReader(int fd, OnData on_data, OnClose on_close)
    : fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)), on_data_(std::move(on_data)), on_close_(std::move(on_close)) {
  if (!fd_.valid()) throw ErrnoError("dup socket");
}

FdPassingReader::~FdPassingReader() { Stop(); }

void FdPassingReader::Start() { thread_ = std::thread([this] { Main(); }); }

void FdPassingReader::SetPaused(bool paused) {
  std::lock_guard guard(lock_);
  paused_ = paused;
  changed_.notify_all();
}

void FdPassingReader::Stop() {
  {
    std::lock_guard guard(lock_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    changed_.notify_all();
  }
  // Wakes a thread blocked in recvmsg without closing the fd under it.
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RD);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void FdPassingReader::Main() {
  std::vector<uint8_t> buffer(kChunk);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  for (;;) {
    {
      std::unique_lock guard(lock_);
      changed_.wait(guard, [this] { return !paused_ || stopping_; });
      if (stopping_) return;
    }
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    // The socket is shared with Node, which keeps it non-blocking: wait here.
    pollfd ready{fd_.get(), POLLIN, 0};
    if (::poll(&ready, 1, -1) < 0 && errno == EINTR) continue;
    ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    std::vector<int> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.push_back(received);
      }
    }
    if (n <= 0) {
      for (int fd : fds) ::close(fd);
      bool stopping;
      {
        std::lock_guard guard(lock_);
        stopping = stopping_;
      }
      if (!stopping) on_close_(n < 0 ? errno : 0);
      return;
    }
    on_data_(std::vector<uint8_t>(buffer.begin(), buffer.begin() + n), std::move(fds));
  }
}

}  // namespace virga
