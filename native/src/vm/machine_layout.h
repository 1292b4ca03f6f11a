// What a snapshot's machine looks like from outside (the MACH section):
// vCPUs, memory, and what fills each device slot. A restore compares it
// with its own command line and names every difference, since state from
// one machine loaded into another would run the guest into garbage.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "arch/x86_64/layout.h"
#include "state/byte_stream.h"

namespace virga {

struct MachineLayout {
  uint64_t memory_bytes = 0;
  uint32_t cpus = 0, max_cpus = 0, sockets = 0, cores = 0, threads = 0;
  struct Disk {
    bool present = false;
    uint64_t bytes = 0;
    bool read_only = false;
  };
  struct Nic {
    bool present = false;
    std::array<uint8_t, 6> mac{};
    // On a command line: mac= was given (a derived MAC yields to the
    // snapshot's, which the guest has already read). Not saved.
    bool mac_given = true;
  };
  std::array<Disk, x86::kBlockSlots> disks{};
  std::array<Nic, x86::kNetSlots> nics{};
  bool balloon = false;
  bool balloon_deflate_on_oom = false;
  bool balloon_free_page_reporting = false;

  void Encode(state::ByteWriter& out) const;
  static MachineLayout Decode(state::ByteReader& in);
};

// Each difference as a sentence naming the flag or slot ("-m: the snapshot
// has 256 MiB, the command line 128 MiB"); empty when they match. `saved`
// names the other side: "the snapshot", "the source".
std::vector<std::string> LayoutDifferences(const MachineLayout& saved, const MachineLayout& command_line,
                                           const std::string& other = "the snapshot");

}  // namespace virga
