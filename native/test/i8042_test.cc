#include "devices/i8042.h"

#include <unistd.h>

#include "unit_test.h"

namespace virga {
namespace {

TEST("i8042: command 0xfe pulses reset, which ends the VM as a guest reset") {
  int resets = 0;
  IrqLine irq(1);
  I8042 kbd([&](const ExitReason& r) { resets += r.kind == ExitKind::kGuestReset; }, &irq);
  uint8_t cmd = 0xfe;
  kbd.Write(4, &cmd, 1);
  EXPECT_EQ(resets, 1);
}

TEST("i8042: controller self-test and control byte round-trip, so Linux's probe finishes fast") {
  IrqLine irq(1);
  I8042 kbd([](const ExitReason&) {}, &irq);
  auto out = [&](uint64_t port, uint8_t v) { kbd.Write(port, &v, 1); };
  auto in = [&](uint64_t port) {
    uint8_t v;
    kbd.Read(port, &v, 1);
    return v;
  };
  out(4, 0xaa);
  EXPECT_EQ(in(4) & 0x01, 0x01);
  EXPECT_EQ(in(0), 0x55);
  EXPECT_EQ(in(4) & 0x01, 0x00);
  out(4, 0x60);
  out(0, 0x65);
  out(4, 0x20);
  EXPECT_EQ(in(0), 0x65);
}

TEST("i8042: keyboard commands are acknowledged with IRQ 1; the aux port stays silent") {
  IrqLine irq(1);
  I8042 kbd([](const ExitReason&) {}, &irq);
  auto out = [&](uint64_t port, uint8_t v) { kbd.Write(port, &v, 1); };
  auto in = [&](uint64_t port) {
    uint8_t v;
    kbd.Read(port, &v, 1);
    return v;
  };
  out(0, 0xf2);  // get id
  uint64_t count = 0;
  EXPECT_TRUE(::read(irq.fd(), &count, sizeof(count)) == sizeof(count));
  EXPECT_EQ(in(0), 0xfa);
  EXPECT_EQ(in(0), 0xab);
  EXPECT_EQ(in(0), 0x83);
  out(4, 0xd4);
  out(0, 0xff);
  EXPECT_EQ(in(4) & 0x01, 0);
}

}  // namespace
}  // namespace virga
