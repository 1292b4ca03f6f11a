// The root complex's host bridge at 00:00.0. It carries Intel's Q35 MCH
// ids (8086:29c0, class 0600) because that is what guests written for
// QEMU's q35 expect to find there; it decodes nothing itself: the ECAM
// window and the PCI holes are fixed by the board and described by ACPI.
#pragma once

#include "devices/pci/device.h"

namespace virga::pci {

constexpr PciId kQ35HostBridgeId{0x8086, 0x29c0, 0x060000, 0, 0x1af4, 0x1100};

class HostBridge : public PciDevice {
 public:
  HostBridge() : PciDevice(kQ35HostBridgeId) {}
};

}  // namespace virga::pci
