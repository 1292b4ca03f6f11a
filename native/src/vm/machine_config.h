// What a machine is built from: one plain config the command line fills.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "arch/x86_64/boot_cpu.h"
#include "arch/x86_64/cpuid.h"
#include "chardev/chardev.h"
#include "vm/microvm_devices.h"

namespace virga {

enum class MachineType { kMicrovm, kQ35 };

// A function on the q35 machine (docs/q35.md): virtio, or a host function
// passed through (vfio-pci); on pcie.0 at slot.function, or in the slot of
// the root port `bus` names.
struct PciDeviceConfig {
  enum class Kind { kBlock, kNet, kBalloon, kVfio } kind = Kind::kBlock;
  std::string id;  // the -device id
  std::string bus = "pcie.0";
  uint32_t slot = 0;
  uint32_t function = 0;
  bool multifunction = false;
  std::string backend;  // block: the -drive id; net: the -netdev id
  BlockFileConfig file;
  std::string ifname;  // net: a tap by name, or
  int fd = -1;         // an inherited tap fd (-netdev fd=)
  std::optional<MacAddress> mac;
  virtio::BalloonConfig balloon;
  // vfio-pci: the host function by address (DDDD:BB:SS.F) or sysfs directory.
  std::string host;
  std::string sysfsdev;
};

// A pcie-root-port on pcie.0; its id names the bus behind it.
struct PciRootPortConfig {
  std::string id;
  uint32_t slot = 0;
  uint32_t function = 0;
  uint8_t port = 0;
  bool multifunction = false;
};

struct MachineConfig {
  MachineType type = MachineType::kMicrovm;
  uint64_t memory_bytes;
  // Guest RAM's backing (docs/architecture.md, "Guest memory"): anonymous
  // unless shared (a memfd, -mem-share) or in a file (-mem-path).
  bool mem_share = false;
  std::string mem_path;
  uint32_t cpus;
  uint32_t max_cpus;
  x86::CpuTopology topology;
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  x86::BootEntry boot_entry;
  ChardevConfig serial;
  std::vector<DiskConfig> disks;
  std::vector<NicConfig> nics;
  std::optional<BalloonDeviceConfig> balloon;
  // q35 only.
  std::vector<PciRootPortConfig> root_ports;
  std::vector<PciDeviceConfig> pci_devices;
  // What the NIC slots' default MACs derive from (docs/devices.md).
  std::string identity;
};

}  // namespace virga
