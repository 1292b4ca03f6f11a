#include "chardev/chardev.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace virga {

namespace {

UniqueFd OpenPty(std::string* slave_path, UniqueFd* slave_out) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  if (!master.valid()) throw ErrnoError("posix_openpt");
  if (::grantpt(master.get()) < 0 || ::unlockpt(master.get()) < 0) throw ErrnoError("grantpt/unlockpt");
  char name[128];
  if (::ptsname_r(master.get(), name, sizeof(name)) != 0) throw ErrnoError("ptsname_r");
  // Raw mode on the slave side so the guest sees bytes exactly as typed
  // and its output is not rewritten (no \n -> \r\n).
  // Keeping our own slave fd open means the master never reads EIO while
  // no terminal is attached, so a user can attach and detach at will.
  int slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) throw ErrnoError(std::string("open ") + name);
  termios tio{};
  if (::tcgetattr(slave, &tio) == 0) {
    ::cfmakeraw(&tio);
    ::tcsetattr(slave, TCSANOW, &tio);
  }
  slave_out->Reset(slave);
  *slave_path = name;
  return master;
}

// The terminal as it was before stdio went raw; restored at exit even if the
// process ends without tearing the VM down.
bool g_terminal_saved = false;
termios g_terminal_state{};

void RestoreTerminal() {
  if (g_terminal_saved) ::tcsetattr(STDIN_FILENO, TCSANOW, &g_terminal_state);
}

// Keys go to the guest as typed, without the terminal echoing them a second
// time or holding them until Enter; Ctrl-C still signals the VMM (ISIG), and
// output keeps \n -> \r\n so guest text lines up.
void MakeStdinRaw() {
  if (!::isatty(STDIN_FILENO)) return;
  termios tio{};
  if (::tcgetattr(STDIN_FILENO, &tio) != 0) return;
  if (!g_terminal_saved) {
    g_terminal_state = tio;
    g_terminal_saved = true;
    std::atexit(RestoreTerminal);
  }
  tio.c_lflag &= ~static_cast<tcflag_t>(ECHO | ICANON | IEXTEN);
  tio.c_iflag &= ~static_cast<tcflag_t>(ICRNL | IXON);
  tio.c_cc[VMIN] = 1;
  tio.c_cc[VTIME] = 0;
  ::tcsetattr(STDIN_FILENO, TCSANOW, &tio);
}

UniqueFd ListenUnix(const std::string& path) {
  // Bound and listening under a temporary name, then renamed into place, so
  // the socket file never exists without a listener behind it (a client
  // that sees the file can always connect).
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0 && !S_ISSOCK(existing.st_mode)) {
    throw VmmError(path + " exists and is not a socket; refusing to replace it");
  }
  std::string staging = path + ".tmp-" + std::to_string(::getpid());
  sockaddr_un addr{};
  if (staging.size() >= sizeof(addr.sun_path)) throw VmmError("socket path too long: " + path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) throw ErrnoError("socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, staging.c_str(), staging.size() + 1);
  ::unlink(staging.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) throw ErrnoError("bind " + path);
  ::chmod(staging.c_str(), 0600);
  if (::listen(fd.get(), 4) < 0 || ::rename(staging.c_str(), path.c_str()) < 0) {
    int err = errno;
    ::unlink(staging.c_str());
    throw ErrnoError("listen " + path, err);
  }
  return fd;
}

}  // namespace

Chardev::Chardev(const ChardevConfig& config) : kind_(config.kind) {
  try {
    switch (kind_) {
      case ChardevConfig::Kind::kStdio:
        in_fd_ = STDIN_FILENO;
        out_fd_ = STDOUT_FILENO;
        break;
      case ChardevConfig::Kind::kPty:
        owned_out_ = OpenPty(&pty_path_, &pty_slave_);
        in_fd_ = out_fd_ = owned_out_.get();
        nonblocking_drop_ = true;
        break;
      case ChardevConfig::Kind::kFile:
        owned_out_.Reset(::open(config.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!owned_out_.valid()) throw ErrnoError("cannot open " + config.path);
        out_fd_ = owned_out_.get();
        break;
      case ChardevConfig::Kind::kSocket:
        listener_ = ListenUnix(config.path);
        socket_path_ = config.path;
        nonblocking_drop_ = true;
        break;
      case ChardevConfig::Kind::kNone:
        break;
    }
  } catch (const VmmError& e) {
    throw VmmError("serial backend", e);
  }
}

Chardev::~Chardev() {
  Detach();
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

void Chardev::WaitWritable(int fd) {
  pollfd p{fd, POLLOUT, 0};
  ::poll(&p, 1, 1000);
}

size_t Chardev::Write(const uint8_t* data, size_t len) {
  std::lock_guard guard(lock_);
  int fd = kind_ == ChardevConfig::Kind::kSocket ? LiveClientFd() : out_fd_;
  if (fd < 0) {
    // Nobody to read it: a socket keeps the newest bytes for its next
    // client; anything else discards them, as a cable with nothing attached.
    if (kind_ == ChardevConfig::Kind::kSocket) HoldLocked(data, len);
    return len;
  }
  size_t done = 0;
  int stalls = 0;
  while (done < len) {
    ssize_t n = kind_ == ChardevConfig::Kind::kSocket
                    ? ::send(fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                    : ::write(fd, data + done, len - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // The socket's reader is behind: push back on the guest.
      if (kind_ == ChardevConfig::Kind::kSocket) return done;
      // A pty nobody has open fills up and stays full: drop, never stall.
      if (nonblocking_drop_) return len;
      // stdio may have been made non-blocking by whoever shares it: wait a
      // little, but never hang the vCPU forever on a reader that is gone.
      if (++stalls > 5) return len;
      WaitWritable(fd);
      continue;
    }
    if (kind_ == ChardevConfig::Kind::kSocket) {
      // The client went away mid-write: the rest is the next client's.
      AbandonClient();
      HoldLocked(data + done, len - done);
    }
    return len;
  }
  return len;
}

void Chardev::HoldLocked(const uint8_t* data, size_t len) {
  if (held_.empty()) held_.resize(kHeldBytes);
  for (size_t i = 0; i < len; ++i) {
    held_[(held_start_ + held_size_) % kHeldBytes] = data[i];
    if (held_size_ < kHeldBytes) {
      ++held_size_;
    } else {
      held_start_ = (held_start_ + 1) % kHeldBytes;
    }
  }
}

void Chardev::SendHeldLocked(int fd) {
  // Both pieces of the ring, oldest first; a new socket's buffer takes
  // 64 KiB, and what it does not take is dropped like any unread output.
  while (held_size_ > 0) {
    size_t piece = std::min(held_size_, kHeldBytes - held_start_);
    ssize_t n = ::send(fd, held_.data() + held_start_, piece, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    held_start_ = (held_start_ + static_cast<size_t>(n)) % kHeldBytes;
    held_size_ -= static_cast<size_t>(n);
  }
  held_start_ = 0;
  held_size_ = 0;
}

int Chardev::LiveClientFd() const { return client_abandoned_ ? -1 : client_.get(); }

void Chardev::AbandonClient() {
  if (loop_ == nullptr) {
    DropClient();
    return;
  }
  // Called on a vCPU thread, while the I/O thread may be about to read the
  // client's fd outside lock_: closing it here would free the number for
  // the next open() in the process, and that read would take another
  // file's bytes as guest input. Shut it down instead: the number stays
  // ours, the I/O thread reads end-of-file (or is woken by the hang-up)
  // and closes it on its own thread.
  ::shutdown(client_.get(), SHUT_RDWR);
  client_abandoned_ = true;
}

void Chardev::SetWritableHandler(WritableHandler handler) {
  std::lock_guard guard(lock_);
  on_writable_ = std::move(handler);
}

void Chardev::RequestWritable() {
  std::lock_guard guard(lock_);
  if (loop_ == nullptr) return;
  if (kind_ == ChardevConfig::Kind::kSocket && LiveClientFd() >= 0) {
    want_writable_ = true;
    UpdateClientInterest();
    return;
  }
  // The client left in between: Write discards now, so the device may
  // flush at once, but not from here (the caller holds the device's lock).
  if (on_writable_) loop_->Defer(on_writable_);
}

void Chardev::UpdateClientInterest() {
  if (!client_.valid() || loop_ == nullptr) return;
  uint32_t events = (input_paused_ ? 0u : static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP)) |
                    (want_writable_ ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  loop_->Modify(client_.get(), events);
}

void Chardev::OnClientEvents(uint32_t events) {
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    WritableHandler handler;
    {
      std::lock_guard guard(lock_);
      if (want_writable_) {
        want_writable_ = false;
        UpdateClientInterest();
        handler = on_writable_;
      }
    }
    // Outside lock_: the handler takes the device's lock, then Write takes ours.
    if (handler) handler();
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) OnInputReadable(events);
}

void Chardev::Attach(EventLoop* loop, InputSink sink) {
  std::lock_guard guard(lock_);
  loop_ = loop;
  sink_ = std::move(sink);
  if (kind_ == ChardevConfig::Kind::kSocket) {
    loop_->Add(listener_.get(), EPOLLIN, [this](uint32_t) { OnAccept(); });
  } else if (in_fd_ >= 0) {
    if (kind_ == ChardevConfig::Kind::kStdio) MakeStdinRaw();
    // A closed or unreadable stdin (e.g. </dev/null in tests) is not an error.
    struct stat st {};
    if (::fstat(in_fd_, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
      try {
        loop_->Add(in_fd_, EPOLLIN, [this](uint32_t events) { OnInputReadable(events); });
      } catch (const VmmError&) {
        in_fd_ = -1;
      }
    }
  }
}

void Chardev::Detach() {
  std::lock_guard guard(lock_);
  if (loop_ == nullptr) return;
  if (listener_.valid()) loop_->Remove(listener_.get());
  if (client_.valid()) loop_->Remove(client_.get());
  if (in_fd_ >= 0 && kind_ != ChardevConfig::Kind::kSocket) loop_->Remove(in_fd_);
  if (kind_ == ChardevConfig::Kind::kStdio) RestoreTerminal();
  loop_ = nullptr;
}

void Chardev::OnAccept() {
  std::lock_guard guard(lock_);
  int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  if (client_abandoned_) DropClient();
  if (client_.valid()) {
    // One console client at a time, as QEMU's socket chardev: the host
    // daemon fans it out to many.
    ::close(fd);
    return;
  }
  client_.Reset(fd);
  in_fd_ = fd;
  input_paused_ = false;
  want_writable_ = false;
  SendHeldLocked(fd);
  loop_->Add(fd, EPOLLIN | EPOLLRDHUP, [this](uint32_t events) { OnClientEvents(events); });
}

void Chardev::DropClient() {
  if (!client_.valid()) return;
  if (loop_ != nullptr) loop_->Remove(client_.get());
  client_.Reset();
  client_abandoned_ = false;
  in_fd_ = -1;
  // Output held for this client can go (nowhere) now; let the device flush.
  if (want_writable_ && loop_ != nullptr && on_writable_) {
    want_writable_ = false;
    WritableHandler handler = on_writable_;
    loop_->Defer([handler] { handler(); });
  }
}

void Chardev::OnInputReadable(uint32_t events) {
  // The sink takes the device's lock, and the device calls Write/ResumeInput
  // under that lock: never hold lock_ while calling the sink.
  int fd;
  InputSink sink;
  {
    std::lock_guard guard(lock_);
    fd = in_fd_;
    sink = sink_;
    resume_requested_ = false;
  }
  if (fd < 0 || !sink) return;
  uint8_t buffer[256];
  // Read only what the device has room for, so unread input stays in the kernel.
  size_t room = sink(nullptr, 0);
  // A hang-up is reported even while input is paused (events = 0): a socket
  // client that is gone is dropped here, or the loop spins on it.
  bool hung_up = (events & (EPOLLHUP | EPOLLERR)) != 0 && (events & EPOLLIN) == 0;
  if (room == 0 && hung_up && kind_ == ChardevConfig::Kind::kSocket) {
    std::lock_guard guard(lock_);
    if (in_fd_ == fd && loop_ != nullptr) DropClient();
    return;
  }
  if (room == 0) {
    std::lock_guard guard(lock_);
    // The device may have made room between answering and now: then stay armed.
    if (in_fd_ == fd && loop_ != nullptr && !resume_requested_) {
      input_paused_ = true;
      if (kind_ == ChardevConfig::Kind::kSocket) {
        UpdateClientInterest();
      } else {
        // A pipe whose writer is done still holds what it wrote (`echo
        // poweroff | virga-vmm ...` before the guest listens): keep it for
        // the resume, which reads to the end. One-shot, so the hang-up it
        // keeps reporting wakes this loop once, not in a spin.
        loop_->Modify(fd, EPOLLONESHOT);
      }
    }
    return;
  }
  ssize_t n = ::read(fd, buffer, room < sizeof(buffer) ? room : sizeof(buffer));
  if (n > 0) {
    sink(buffer, static_cast<size_t>(n));
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  std::lock_guard guard(lock_);
  if (in_fd_ != fd || loop_ == nullptr) return;
  if (kind_ == ChardevConfig::Kind::kSocket) {
    DropClient();
  } else {
    loop_->Remove(in_fd_);
    in_fd_ = -1;
  }
}

void Chardev::ResumeInput() {
  std::lock_guard guard(lock_);
  if (!input_paused_) {
    resume_requested_ = true;
    return;
  }
  if (loop_ == nullptr || in_fd_ < 0) return;
  input_paused_ = false;
  if (kind_ == ChardevConfig::Kind::kSocket) {
    UpdateClientInterest();
  } else {
    loop_->Modify(in_fd_, EPOLLIN);
  }
}

}  // namespace virga
