// What the state_file and migration_stream harnesses share: the devices a
// state file restores that need no KVM (UART, i8042, RTC, the virtio-mmio
// slots with their devices), and a state file laid out as
// Machine::SaveState writes it. The vCPU, irqchip, PIT and clock sections
// are kernel structs read whole and handed to KVM, which checks them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chardev/chardev.h"
#include "common/error.h"
#include "devices/i8042.h"
#include "devices/irq.h"
#include "devices/rtc_cmos.h"
#include "devices/serial_8250.h"
#include "fuzz_guest.h"
#include "state/state_file.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/mmio_transport.h"
#include "virtio/net.h"
#include "vm/machine_layout.h"

namespace virga::fuzz {

struct StateDevices {
  Chardev chardev{ChardevConfig{}};
  IrqLine irq{4};
  Serial8250 serial{&chardev, &irq};
  I8042 keyboard{[](const ExitReason&) {}, &irq};
  RtcCmos rtc;
  std::shared_ptr<EventLoop> loop = std::make_shared<EventLoop>();
};

inline StateDevices& Devices() {
  static StateDevices* devices = new StateDevices;
  return *devices;
}

inline std::shared_ptr<virtio::VirtioDevice> DeviceOfType(uint32_t type) {
  switch (type) {
    case virtio::kDeviceIdNet:
      return std::make_shared<virtio::Net>(std::array<uint8_t, 6>{0x52, 0x54, 0, 1, 2, 3}, nullptr, Devices().loop);
    case virtio::kDeviceIdBalloon:
      return std::make_shared<virtio::Balloon>(virtio::BalloonConfig{true, true}, [](uint32_t) {});
    default:
      return std::make_shared<virtio::Block>();
  }
}

// A slot as Machine::LoadState restores it, then its restored queues served
// from the guest image.
inline void RestoreSlot(state::ByteReader in) {
  in.U64();  // base
  state::ByteReader peek = in;
  auto device = DeviceOfType(peek.U32());
  virtio::MmioTransport transport(device, &Guest(), &Devices().irq);
  transport.RestoreState(in);
  in.ExpectEnd();
  for (uint16_t q = 0; q < device->queue_count(); ++q) transport.OnNotify(q);
}

// Every section a device reads, each on its own so one refused section
// does not hide the next from the fuzzer.
inline void RestoreSections(const state::StateFile& file) {
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
  each("UART", [](state::ByteReader in) { Devices().serial.RestoreState(in); });
  each("KBD", [](state::ByteReader in) { Devices().keyboard.RestoreState(in); });
  each("RTC", [](state::ByteReader in) { Devices().rtc.RestoreState(in); });
  each("SLOT", RestoreSlot);
}

// The machine the seeds describe: one vCPU, the fuzz guest's RAM, a disk,
// a NIC and a balloon.
inline MachineLayout SeedLayout() {
  MachineLayout layout;
  layout.memory_bytes = kGuestBytes;
  layout.cpus = layout.max_cpus = layout.sockets = layout.cores = layout.threads = 1;
  layout.disks[0] = {true, 1 << 20, false};
  layout.nics[0].present = true;
  layout.balloon = true;
  return layout;
}

// A state file as Machine::SaveState lays it out, from devices in their
// power-on state.
inline std::vector<uint8_t> SeedStateFile() {
  state::StateFileWriter file;
  state::ByteWriter machine;
  SeedLayout().Encode(machine);
  file.Section("MACH", machine);
  state::ByteWriter uart, keyboard, rtc;
  Devices().serial.SaveState(uart);
  file.Section("UART", uart);
  Devices().keyboard.SaveState(keyboard);
  file.Section("KBD", keyboard);
  Devices().rtc.SaveState(rtc);
  file.Section("RTC", rtc);
  for (uint32_t type : {virtio::kDeviceIdBlock, virtio::kDeviceIdNet, virtio::kDeviceIdBalloon}) {
    auto device = DeviceOfType(type);
    virtio::MmioTransport transport(device, &Guest(), &Devices().irq);
    state::ByteWriter slot;
    slot.U64(0xd0000000);
    transport.SaveState(slot);
    file.Section("SLOT", slot);
  }
  return file.Finish("0.1.0");
}

}  // namespace virga::fuzz
