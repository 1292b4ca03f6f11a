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
  // What the NIC slots' default MACs derive from (docs/devices.md).
  std::string identity;
};

}  // namespace virga
