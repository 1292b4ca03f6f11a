// The PC devices a guest reaches with port I/O from a vCPU: the 8250 UART
// (devices/serial_8250.cc, with input arriving from its backend in
// between), the i8042 (devices/i8042.cc) and the CMOS RTC
// (devices/rtc_cmos.cc), through the buses as vCPU exits reach them.
//
// Input: operations of 4 bytes: kind (bit 0: write, bit 1: serial input
// arrives instead, bits 2-3: width 1/2/4), port (an index into the ports
// below), value (2 bytes).
#include <cstring>
#include <memory>

#include "chardev/chardev.h"
#include "devices/bus.h"
#include "devices/i8042.h"
#include "devices/irq.h"
#include "devices/rtc_cmos.h"
#include "devices/serial_8250.h"
#include "seeds.h"

namespace {

using namespace virga;

// COM1's eight registers, the i8042's data and command ports, the RTC's index and data.
constexpr uint16_t kPorts[] = {0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x60, 0x64, 0x70, 0x71};

struct Board {
  Chardev chardev{ChardevConfig{}};
  IrqLine com1{4}, keyboard{1}, rtc_irq{8};
  std::shared_ptr<Serial8250> serial = std::make_shared<Serial8250>(&chardev, &com1);
  Bus pio;
  Board() {
    pio.Insert(0x3f8, 8, serial);
    pio.Insert(0x60, 5, std::make_shared<I8042>([](const ExitReason&) {}, &keyboard));
    pio.Insert(0x70, 2, std::make_shared<RtcCmos>());
  }
};

std::vector<uint8_t> Op(uint8_t kind, uint16_t port, uint16_t value) {
  size_t index = 0;
  while (kPorts[index] != port) ++index;
  return {kind, static_cast<uint8_t>(index), static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
}

// What Linux's 8250 probe, its i8042 driver and an RTC read do first.
fuzz::Seeds MakeSeeds() {
  std::vector<std::vector<uint8_t>> serial = {
      Op(1, 0x3fb, 0x80), Op(1, 0x3f8, 0x01), Op(1, 0x3f9, 0x00), Op(1, 0x3fb, 0x03), Op(1, 0x3fa, 0xc7),
      Op(1, 0x3fc, 0x0b), Op(1, 0x3f9, 0x03), Op(0, 0x3fa, 0), Op(0, 0x3fd, 0), Op(1, 0x3f8, 'h'),
      Op(2, 0x3f8, 'k'), Op(0, 0x3fd, 0), Op(0, 0x3f8, 0), Op(1, 0x3ff, 0x5a), Op(0, 0x3ff, 0)};
  std::vector<std::vector<uint8_t>> keyboard = {Op(0, 0x64, 0), Op(1, 0x64, 0xaa), Op(0, 0x60, 0),
                                                Op(1, 0x64, 0x20), Op(0, 0x60, 0), Op(1, 0x64, 0x60),
                                                Op(1, 0x60, 0x45), Op(1, 0x60, 0xff), Op(0, 0x60, 0)};
  std::vector<std::vector<uint8_t>> rtc = {Op(1, 0x70, 0x0a), Op(0, 0x71, 0), Op(1, 0x70, 0x0b), Op(1, 0x71, 0x02),
                                           Op(1, 0x70, 0x00), Op(0, 0x71, 0), Op(1, 0x70, 0x8c), Op(0, 0x71, 0),
                                           Op(1, 0x70, 0x32), Op(0, 0x71, 0)};
  fuzz::Seeds seeds;
  for (const auto& [name, ops] : {std::pair{"serial", serial}, std::pair{"keyboard", keyboard}, std::pair{"rtc", rtc}}) {
    std::vector<uint8_t> bytes;
    for (const auto& op : ops) bytes.insert(bytes.end(), op.begin(), op.end());
    seeds.push_back({name, bytes});
  }
  return seeds;
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Board b;
  for (size_t at = 0; at + 4 <= size; at += 4) {
    uint8_t kind = data[at];
    uint16_t port = kPorts[data[at + 1] % (sizeof(kPorts) / sizeof(kPorts[0]))];
    uint8_t bytes[4] = {data[at + 2], data[at + 3], 0, 0};
    uint32_t width = 1u << ((kind >> 2) % 3);
    if (kind & 2) {
      b.serial->ReceiveInput(bytes, 1 + data[at + 3] % 2);
    } else if (kind & 1) {
      b.pio.Write(port, bytes, width);
    } else {
      b.pio.Read(port, bytes, width);
    }
  }
  return 0;
}
