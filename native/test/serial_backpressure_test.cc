#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "chardev/chardev.h"
#include "devices/serial_8250.h"
#include "unit_test.h"

namespace virga {
namespace {

using test::WaitUntil;

TEST("serial over a socket: a slow reader holds the guest back and loses nothing") {
  std::string path = "/tmp/virga-bp-test-" + std::to_string(::getpid()) + ".sock";
  EventLoop loop;
  Chardev chardev({ChardevConfig::Kind::kSocket, path});
  IrqLine irq(4);
  Serial8250 serial(&chardev, &irq);
  chardev.SetWritableHandler([&serial] { serial.FlushTransmitter(); });
  chardev.Attach(&loop, [&serial](const uint8_t* d, size_t n) { return serial.ReceiveInput(d, n); });
  loop.Start();

  int client = ::socket(AF_UNIX, SOCK_STREAM, 0);
  int small = 4096;
  ::setsockopt(client, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);

  auto lsr = [&serial] {
    uint8_t v = 0;
    serial.Read(5, &v, 1);
    return v;
  };
  // The guest writes as a polling driver does: a byte whenever THRE is set.
  // Wait for the accept first: output with no client is discarded.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string sent;
  for (int i = 0; i < 2000000 && (lsr() & 0x20); ++i) {
    uint8_t byte = static_cast<uint8_t>('a' + i % 26);
    serial.Write(0, &byte, 1);
    sent.push_back(static_cast<char>(byte));
  }
  EXPECT_TRUE((lsr() & 0x20) == 0);  // the transmitter is held busy
  EXPECT_TRUE(sent.size() < 2000000u);

  // Reading on the other side frees the transmitter again, byte for byte.
  std::string received;
  char buf[65536];
  EXPECT_TRUE(WaitUntil([&] {
    ssize_t n = ::recv(client, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) received.append(buf, static_cast<size_t>(n));
    return received.size() >= sent.size() && (lsr() & 0x20);
  }));
  EXPECT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent);

  ::close(client);
  chardev.Detach();
  loop.Stop();
}

}  // namespace
}  // namespace virga
