// Step 2 of booting: what the kernel is told about the machine. The same
// e820 map goes into Linux's zero page or PVH's hvm_start_info.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/x86_64/kernel_loader.h"
#include "memory/guest_memory.h"

namespace virga::x86 {

struct E820Entry {
  uint64_t address;
  uint64_t size;
  uint32_t type;
};

constexpr uint32_t kE820Ram = 1;
constexpr uint32_t kE820Reserved = 2;

std::vector<E820Entry> BuildE820(const GuestMemory& memory);

// Writes the command line at kCmdlineAddr; the error names the limit.
void WriteCmdline(const GuestMemory& memory, const std::string& cmdline);

struct InitrdPlacement {
  uint64_t address = 0;
  uint64_t size = 0;
};

// Linux zero page at kZeroPageAddr (for the 64-bit entry).
void WriteBootParams(const GuestMemory& memory, const LoadedKernel& kernel, const std::string& cmdline,
                     const InitrdPlacement& initrd, const std::vector<E820Entry>& e820, uint64_t rsdp);

// hvm_start_info at kZeroPageAddr and its memory map (for the PVH entry).
void WritePvhStartInfo(const GuestMemory& memory, const InitrdPlacement& initrd,
                       const std::vector<E820Entry>& e820, uint64_t rsdp);

}  // namespace virga::x86
