#include "chardev/chardev.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "unit_test.h"

namespace virga {
namespace {

using test::WaitUntil;

int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The race: the I/O thread takes the client's fd number, lets go of the
// chardev's lock to ask the device for room, and reads. A vCPU write that
// fails in between used to close the client there and then, so the read
// went to whatever file took the number next. Here the "vCPU write" runs
// inside that window (in the room query) and a pipe is put on the number
// if it was freed, as another thread's open() would.
TEST("serial over a socket: a client dropped by a vCPU write keeps its fd number until the I/O thread lets go") {
  std::string path = "/tmp/virga-chardev-test-" + std::to_string(::getpid()) + ".sock";
  EventLoop loop;
  Chardev chardev({ChardevConfig::Kind::kSocket, path});

  std::mutex lock;
  std::string received;
  int client_fd_number = -1;
  std::atomic<bool> raced{false};
  std::atomic<bool> number_held{true};
  int stand_in[2] = {-1, -1};
  chardev.Attach(&loop, [&](const uint8_t* data, size_t len) -> size_t {
    if (data != nullptr) {
      std::lock_guard guard(lock);
      received.append(reinterpret_cast<const char*>(data), len);
      return len;
    }
    if (!raced.exchange(true)) {
      const uint8_t byte = 'o';
      chardev.Write(&byte, 1);  // the peer is gone: EPIPE
      if (::fcntl(client_fd_number, F_GETFD) < 0) {
        number_held = false;
        if (::pipe(stand_in) == 0) {
          [[maybe_unused]] ssize_t n = ::write(stand_in[1], "WRONG", 5);
          ::dup2(stand_in[0], client_fd_number);
        }
      }
    }
    return 256;
  });
  loop.Start();

  // The accepted socket takes the lowest free number after the client's own.
  int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int probe = ::dup(client);
  client_fd_number = probe;
  ::close(probe);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_TRUE(WaitUntil([&] { return ::fcntl(client_fd_number, F_GETFD) >= 0; }));  // accepted
  ::close(client);  // a hang-up: the I/O thread wakes, the vCPU write fails

  EXPECT_TRUE(WaitUntil([&] { return raced.load(); }));
  // Once the I/O thread has dropped the client, a new one is accepted and gets output.
  int second = -1;
  EXPECT_TRUE(WaitUntil([&] {
    if (second < 0) second = Connect(path);
    if (second < 0) return false;
    const uint8_t byte = 'k';
    chardev.Write(&byte, 1);
    char got = 0;
    return ::recv(second, &got, 1, MSG_DONTWAIT) == 1 && got == 'k';
  }));
  chardev.Detach();
  loop.Stop();
  ::close(second);
  if (stand_in[0] >= 0) {
    ::close(stand_in[0]);
    ::close(stand_in[1]);
  }
  ::unlink(path.c_str());
  EXPECT_TRUE(number_held.load());
  std::lock_guard guard(lock);
  EXPECT_TRUE(received.find("WRONG") == std::string::npos);
}

// Between two clients (virgad restarting, a VM moving to a new process) the
// guest keeps printing: the next client gets those bytes first, and only the
// newest 64 KiB of a long gap.
TEST("serial over a socket: output written with no client reaches the next one, newest 64 KiB") {
  std::string path = "/tmp/virga-chardev-held-" + std::to_string(::getpid()) + ".sock";
  EventLoop loop;
  Chardev chardev({ChardevConfig::Kind::kSocket, path});
  chardev.Attach(&loop, [](const uint8_t*, size_t len) -> size_t { return len; });
  loop.Start();
  std::string gap;
  for (int i = 0; i < 10000; ++i) gap += "line " + std::to_string(i) + "\n";  // ~88 KiB
  EXPECT_EQ(chardev.Write(reinterpret_cast<const uint8_t*>(gap.data()), gap.size()), gap.size());
  int client = Connect(path);
  EXPECT_TRUE(client >= 0);
  std::string received;
  char buf[65536];
  EXPECT_TRUE(WaitUntil([&] {
    ssize_t n = ::recv(client, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) received.append(buf, static_cast<size_t>(n));
    return received.size() >= 64 * 1024;
  }));
  EXPECT_EQ(received.size(), static_cast<size_t>(64 * 1024));
  EXPECT_TRUE(received == gap.substr(gap.size() - 64 * 1024));
  // Once connected, output goes straight through again.
  const uint8_t live[] = "live\n";
  chardev.Write(live, 5);
  std::string after;
  EXPECT_TRUE(WaitUntil([&] {
    ssize_t n = ::recv(client, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) after.append(buf, static_cast<size_t>(n));
    return after.size() >= 5;
  }));
  EXPECT_TRUE(after == "live\n");
  chardev.Detach();
  loop.Stop();
  ::close(client);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace virga
