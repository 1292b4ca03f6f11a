// A snapshot's state file as a reader meets it (docs/snapshots.md):
// the container (state/state_file.cc, byte_stream.h), the machine layout
// (vm/machine_layout.cc), and each device's RestoreState: UART, i8042,
// RTC, and the virtio-mmio slots with their queues and devices, whose
// restored queues are then served from a guest image. The CRC-32C is
// recomputed over the input so mutations reach past the checksum; the
// checksum check itself is a unit test's job.
#include <cstring>
#include <memory>
#include <string>

#include "chardev/chardev.h"
#include "common/error.h"
#include "devices/i8042.h"
#include "devices/irq.h"
#include "devices/rtc_cmos.h"
#include "devices/serial_8250.h"
#include "fuzz_guest.h"
#include "seeds.h"
#include "state/crc32c.h"
#include "state/state_file.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/mmio_transport.h"
#include "virtio/net.h"
#include "vm/machine_layout.h"

namespace {

using namespace virga;

struct Devices {
  Chardev chardev{ChardevConfig{}};
  IrqLine irq{4};
  Serial8250 serial{&chardev, &irq};
  I8042 keyboard{[](const ExitReason&) {}, &irq};
  RtcCmos rtc;
  std::shared_ptr<EventLoop> loop = std::make_shared<EventLoop>();
};

Devices& Shared() {
  static Devices* devices = new Devices;
  return *devices;
}

std::shared_ptr<virtio::VirtioDevice> DeviceOfType(uint32_t type) {
  switch (type) {
    case virtio::kDeviceIdNet:
      return std::make_shared<virtio::Net>(std::array<uint8_t, 6>{0x52, 0x54, 0, 1, 2, 3}, nullptr, Shared().loop);
    case virtio::kDeviceIdBalloon:
      return std::make_shared<virtio::Balloon>(virtio::BalloonConfig{true, true}, [](uint32_t) {});
    default:
      return std::make_shared<virtio::Block>();
  }
}

void RestoreSlot(state::ByteReader in) {
  in.U64();  // base
  state::ByteReader peek = in;
  auto device = DeviceOfType(peek.U32());
  virtio::MmioTransport transport(device, &fuzz::Guest(), &Shared().irq);
  transport.RestoreState(in);
  in.ExpectEnd();
  for (uint16_t q = 0; q < device->queue_count(); ++q) transport.OnNotify(q);
}

std::vector<uint8_t> Sealed(std::vector<uint8_t> bytes) {
  if (bytes.size() >= 4) {
    uint32_t crc = state::Crc32c(bytes.data(), bytes.size() - 4);
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  return bytes;
}

// A state file as Machine::SaveState lays it out, from devices in their
// power-on state (plus a disk slot with a queue set up).
fuzz::Seeds MakeSeeds() {
  state::StateFileWriter file;
  state::ByteWriter machine;
  MachineLayout layout;
  layout.memory_bytes = 256 << 20;
  layout.cpus = layout.max_cpus = layout.sockets = layout.cores = layout.threads = 1;
  layout.disks[0] = {true, 1 << 20, false};
  layout.nics[0].present = true;
  layout.balloon = true;
  layout.Encode(machine);
  file.Section("MACH", machine);
  state::ByteWriter uart, keyboard, rtc;
  Shared().serial.SaveState(uart);
  file.Section("UART", uart);
  Shared().keyboard.SaveState(keyboard);
  file.Section("KBD", keyboard);
  Shared().rtc.SaveState(rtc);
  file.Section("RTC", rtc);
  for (uint32_t type : {virtio::kDeviceIdBlock, virtio::kDeviceIdNet, virtio::kDeviceIdBalloon}) {
    auto device = DeviceOfType(type);
    virtio::MmioTransport transport(device, &fuzz::Guest(), &Shared().irq);
    state::ByteWriter slot;
    slot.U64(0xd0000000);
    transport.SaveState(slot);
    file.Section("SLOT", slot);
  }
  return {{"machine", file.Finish("0.1.0")}};
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes = Sealed(std::vector<uint8_t>(data, data + size));
  fuzz::LoadImage(bytes);  // what restored queues point at
  state::StateFile file;
  try {
    file = state::StateFile::Parse(bytes, "fuzz");
  } catch (const state::StateError&) {
    return 0;
  }
  auto each = [&](const char* tag, auto restore) {
    for (size_t i = 0; i < file.Count(tag); ++i) {
      try {
        restore(file.Section(tag, i));
      } catch (const state::StateError&) {
      } catch (const VmmError&) {
      }
    }
  };
  each("MACH", [](state::ByteReader in) { LayoutDifferences(MachineLayout::Decode(in), MachineLayout{}); });
  each("UART", [](state::ByteReader in) { Shared().serial.RestoreState(in); });
  each("KBD", [](state::ByteReader in) { Shared().keyboard.RestoreState(in); });
  each("RTC", [](state::ByteReader in) { Shared().rtc.RestoreState(in); });
  each("SLOT", RestoreSlot);
  return 0;
}
