#include "devices/serial_8250.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "unit_test.h"

namespace virga {
namespace {

uint64_t Drain(const IrqLine& irq) {
  uint64_t count = 0;
  if (::read(irq.fd(), &count, sizeof(count)) != sizeof(count)) return 0;
  return count;
}

struct SerialFixture {
  std::string path = "/tmp/virga-serial-test-" + std::to_string(::getpid());
  Chardev chardev{ChardevConfig{ChardevConfig::Kind::kFile, path}};
  IrqLine irq{4};
  Serial8250 serial{&chardev, &irq};
  ~SerialFixture() { ::unlink(path.c_str()); }

  uint8_t In(uint64_t reg) {
    uint8_t v = 0;
    serial.Read(reg, &v, 1);
    return v;
  }
  void Out(uint64_t reg, uint8_t v) { serial.Write(reg, &v, 1); }
  std::string Output() {
    char buf[256];
    int fd = ::open(path.c_str(), O_RDONLY);
    ssize_t n = ::read(fd, buf, sizeof(buf));
    ::close(fd);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  }
};

TEST("serial_8250: bytes written to THR reach the backend unchanged") {
  SerialFixture f;
  for (char c : std::string("ok\n")) f.Out(0, static_cast<uint8_t>(c));
  EXPECT_TRUE(f.Output() == "ok\n");
  // Transmitter always idle: LSR THRE and TEMT set.
  EXPECT_EQ(f.In(5) & 0x60, 0x60);
}

TEST("serial_8250: loopback mirrors modem control into modem status, as Linux's probe checks") {
  SerialFixture f;
  f.Out(4, 0x10 | 0x0a);  // LOOP | OUT2 | RTS
  EXPECT_EQ(f.In(6) & 0xf0, 0x90);
  f.Out(0, 'x');  // looped back into the receiver, not the backend
  EXPECT_EQ(f.In(5) & 0x01, 0x01);
  EXPECT_EQ(f.In(0), 'x');
  EXPECT_TRUE(f.Output().empty());
}

TEST("serial_8250: divisor latch is separate from data and IER") {
  SerialFixture f;
  f.Out(3, 0x83);  // DLAB
  f.Out(0, 0x01);
  f.Out(1, 0x00);
  EXPECT_EQ(f.In(0), 0x01);
  f.Out(3, 0x03);
  f.Out(1, 0x00);
  EXPECT_EQ(f.In(1), 0x00);
  EXPECT_TRUE(f.Output().empty());
}

TEST("serial_8250: received bytes raise the RX interrupt and read back in order") {
  SerialFixture f;
  f.Out(2, 0x01);  // FIFO on
  f.Out(1, 0x01);  // RDI
  Drain(f.irq);
  const uint8_t input[] = {'h', 'i'};
  EXPECT_EQ(f.serial.ReceiveInput(input, 2), 2u);
  EXPECT_TRUE(Drain(f.irq) >= 1);
  EXPECT_EQ(f.In(2) & 0x0f, 0x04);
  EXPECT_EQ(f.In(0), 'h');
  EXPECT_EQ(f.In(0), 'i');
  EXPECT_EQ(f.In(5) & 0x01, 0);
  EXPECT_EQ(f.In(2) & 0x01, 0x01);  // no interrupt pending
}

TEST("serial_8250: enabling THRI interrupts at once and reading IIR acknowledges it") {
  SerialFixture f;
  Drain(f.irq);
  f.Out(1, 0x02);
  EXPECT_TRUE(Drain(f.irq) >= 1);
  EXPECT_EQ(f.In(2) & 0x0f, 0x02);
  EXPECT_EQ(f.In(2) & 0x0f, 0x01);
}

TEST("serial_8250: input waits in the backend until the driver listens, then fills the 16-byte FIFO") {
  SerialFixture f;
  std::string big(100, 'a');
  const auto* bytes = reinterpret_cast<const uint8_t*>(big.data());
  // Before the driver enables the receive interrupt nothing is taken, so the
  // FIFO clear of its initialisation cannot drop typed-ahead input.
  EXPECT_EQ(f.serial.ReceiveInput(nullptr, 0), 0u);
  f.Out(2, 0x07);  // FIFO on, both cleared
  f.Out(1, 0x01);
  EXPECT_EQ(f.serial.ReceiveInput(nullptr, 0), 16u);
  EXPECT_EQ(f.serial.ReceiveInput(bytes, big.size()), 16u);
  EXPECT_EQ(f.serial.ReceiveInput(nullptr, 0), 0u);
  for (int i = 0; i < 16; ++i) f.In(0);
  EXPECT_EQ(f.serial.ReceiveInput(nullptr, 0), 16u);
}

}  // namespace
}  // namespace virga
