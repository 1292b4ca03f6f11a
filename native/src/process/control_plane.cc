#include "process/control_plane.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <vector>

#include "common/error.h"
#include "io/fd_passing_writer.h"

extern char** environ;

namespace virga {

namespace {

std::string ScriptPath() {
  if (const char* path = std::getenv("VIRGA_CONTROL_PLANE"); path != nullptr && *path != '\0') return path;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) throw ErrnoError("cannot find the control plane: readlink /proc/self/exe");
  std::string dir(exe, static_cast<size_t>(n));
  // native/build/Release/virga-vmm → the repository root is three levels up.
  for (int i = 0; i < 4; ++i) dir = dir.substr(0, dir.rfind('/'));
  return dir + "/apps/host/dist/vmm-control.cjs";
}

// A send to the host that cannot finish in this time means the host is
// stuck: the channel is dropped and the VM looks for a control plane again.
constexpr int kHostSendTimeoutMs = 2000;

}  // namespace

ControlPlane ControlPlane::Spawn(const std::string& hello_json, int qmp_listener) {
  std::string script = ScriptPath();
  if (::access(script.c_str(), R_OK) != 0) {
    throw ErrnoError("control plane " + script + " is missing (run `npm install` or `npm run build`)");
  }
  const char* node_env = std::getenv("VIRGA_NODE");
  std::string node = node_env != nullptr && *node_env != '\0' ? node_env : "node";

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw ErrnoError("control plane socketpair");
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // stdin/stdout may be the guest's serial console: the control plane gets
  // neither; it logs to stderr or the -D file.
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), 3);
  posix_spawn_file_actions_adddup2(&actions, qmp_listener, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // Its own process group: a terminal's Ctrl-C is the VMM's to handle, and
  // the VMM tells the control plane to finish.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv = {const_cast<char*>(node.c_str()), const_cast<char*>(script.c_str()), nullptr};
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, node.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) throw ErrnoError("cannot start the control plane (" + node + ")", err);

  ControlPlane plane;
  plane.pid_ = pid;
  plane.channel_ = std::move(ours);
  plane.Send(std::string("{\"hello\":") + hello_json + "}");
  return plane;
}

UniqueFd ControlPlane::ConnectToHost(const std::string& socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path)) throw VmmError("control-plane host socket path too long: " + socket_path);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  // Non-blocking, so a host whose backlog is full fails at once (EAGAIN)
  // instead of stalling the VM's main loop.
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) throw ErrnoError("control-plane host: socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    throw ErrnoError("connecting to " + socket_path);
  }
  // From here on the channel behaves like the companion's socketpair:
  // blocking sends, bounded so a stuck host cannot hold the VM's main loop.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  timeval limit{kHostSendTimeoutMs / 1000, (kHostSendTimeoutMs % 1000) * 1000};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
  return fd;
}

ControlPlane ControlPlane::Hosted(UniqueFd connection, const std::string& hello_json, int qmp_listener) {
  // The listening socket travels with the hello's first byte; the host
  // serves QMP on its own copy of it.
  SendWithFds(connection.get(), std::string("{\"hello\":") + hello_json + "}\n", {qmp_listener}, kHostSendTimeoutMs);
  ControlPlane plane;
  plane.hosted_ = true;
  plane.channel_ = std::move(connection);
  return plane;
}

void ControlPlane::Send(const std::string& line) {
  if (!channel_.valid()) return;
  std::string text = line + "\n";
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::send(channel_.get(), text.data() + off, text.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A companion's exit is noticed through the channel's EOF; a host that
      // cannot take a line is given up on the same way.
      if (hosted_) ::shutdown(channel_.get(), SHUT_RDWR);
      return;
    }
    off += static_cast<size_t>(n);
  }
}

bool ControlPlane::ReadLines(const std::function<void(const std::string&)>& on_line) {
  char buf[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(channel_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds_.emplace_back(fd);
    }
  }
  if (n == 0) return false;
  pending_.append(buf, static_cast<size_t>(n));
  size_t newline;
  while ((newline = pending_.find('\n')) != std::string::npos) {
    std::string line = pending_.substr(0, newline);
    pending_.erase(0, newline + 1);
    on_line(line);
  }
  return true;
}

UniqueFd ControlPlane::TakeFd() {
  if (fds_.empty()) return UniqueFd();
  UniqueFd fd = std::move(fds_.front());
  fds_.pop_front();
  return fd;
}

bool ControlPlane::Reap(int* status) {
  if (pid_ <= 0) return false;
  pid_t done = ::waitpid(pid_, status, WNOHANG);
  if (done != pid_) return false;
  pid_ = -1;
  return true;
}

int ControlPlane::WaitForEnd(int timeout_ms) {
  int status = -1;
  if (hosted_ && channel_.valid()) {
    // The host closes the channel once it has told this VM's clients.
    timespec start{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    char sink[4096];
    for (;;) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      long left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
      pollfd ready{channel_.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&ready, 1, static_cast<int>(left)) == 0) break;
      ssize_t n = ::recv(channel_.get(), sink, sizeof(sink), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
    }
  }
  for (int waited = 0; pid_ > 0; waited += 10) {
    if (Reap(&status)) break;
    if (waited >= timeout_ms) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      break;
    }
    timespec pause{0, 10 * 1000 * 1000};
    ::nanosleep(&pause, nullptr);
  }
  channel_.Reset();
  hosted_ = false;
  pending_.clear();
  fds_.clear();
  return status;
}

}  // namespace virga
