// What a snapshot's machine looks like from outside (the MACH section):
// the machine type, vCPUs, memory, and what fills each device slot (the
// microvm's) or PCI address (q35's). A restore compares it
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
    // What the guest's driver read when it probed (a saved layout), or the
    // command line's mac= (its own layout).
    std::array<uint8_t, 6> mac{};
    // What the network sees (docs/devices.md, "MAC addresses"); saved only
    // when it differs from `mac` for some NIC, so snapshots without
    // translation read as before.
    std::array<uint8_t, 6> wire_mac{};
    // On a command line: mac= was given (a derived MAC yields to the
    // snapshot's). Not saved.
    bool mac_given = true;
  };
  // A q35 function (docs/q35.md): on pcie.0 at slot.function, root ports
  // included, or in the slot of the root port at pcie.0
  // port_slot.port_function (slot and function are then 0). The host
  // bridge is not listed.
  struct PciFunction {
    uint32_t slot = 0, function = 0;
    std::string driver;  // "virtio-blk-pci", "virtio-net-pci", "virtio-balloon-pci", "pcie-root-port"
    std::string id;      // the -device id, for messages only
    Disk disk;           // virtio-blk-pci
    Nic nic;             // virtio-net-pci
    bool deflate_on_oom = false, free_page_reporting = false;  // virtio-balloon-pci
    uint32_t port = 0;                                         // pcie-root-port: port=, the guest's slot number
    bool behind_port = false;
    uint32_t port_slot = 0, port_function = 0;
    std::string bus = "pcie.0";  // the root port's id, for messages only

    // Where the guest finds it: pcie.0's functions first, by address, then those behind root ports.
    std::array<uint32_t, 5> place() const {
      return {behind_port ? 1u : 0u, port_slot, port_function, slot, function};
    }
    // Written after the rest, so a layout without root ports reads as before they existed.
    bool extended() const { return behind_port || driver == "pcie-root-port"; }
  };
  std::string machine = "microvm";
  std::array<Disk, x86::kBlockSlots> disks{};
  std::array<Nic, x86::kNetSlots> nics{};
  bool balloon = false;
  bool balloon_deflate_on_oom = false;
  bool balloon_free_page_reporting = false;
  std::vector<PciFunction> pci;  // in address order

  void Encode(state::ByteWriter& out) const;
  static MachineLayout Decode(state::ByteReader& in);
};

// What a NIC's mac= on the command line may name: a restored clone its own
// wire MAC (its guest keeps the saved one); a migration's destination is
// the same VM, on the wire too.
enum class WireMac { kMayChange, kKept };

// Each difference as a sentence naming the flag or slot ("-m: the snapshot
// has 256 MiB, the command line 128 MiB"); empty when they match. `saved`
// names the other side: "the snapshot", "the source".
std::vector<std::string> LayoutDifferences(const MachineLayout& saved, const MachineLayout& command_line,
                                           const std::string& other = "the snapshot",
                                           WireMac wire_mac = WireMac::kMayChange);

}  // namespace virga
