// Step 1 of booting: put the kernel image in guest memory and say where it
// went and how to enter it. ELF vmlinux (64-bit entry and PVH note) and
// bzImage are recognised by their magic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "memory/guest_memory.h"

namespace virga::x86 {

struct LoadedKernel {
  uint64_t entry64 = 0;      // 64-bit Linux entry (boot_params in RSI); 0 if none
  uint64_t pvh_entry = 0;    // PVH 32-bit entry from the Xen ELF note; 0 if none
  uint64_t end = 0;          // first byte after the loaded image
  bool is_bzimage = false;
  std::vector<uint8_t> setup_header;  // bzImage setup header bytes from offset 0x1f1
};

LoadedKernel LoadKernel(const GuestMemory& memory, const std::string& path);

// Puts the initrd as high as allowed; returns its guest address.
uint64_t LoadInitrd(const GuestMemory& memory, const std::string& path, uint64_t kernel_end,
                    uint64_t max_address, uint64_t* size_out);

}  // namespace virga::x86
