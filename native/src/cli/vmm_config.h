// What virga-vmm's command line describes: one VM, as plain data. Its JSON
// form (config_json.h) is the TypeScript VmConfig that the control plane and
// the host daemon use, field for field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace virga::cli {

constexpr uint64_t kMiB = 1024ull * 1024;
constexpr uint64_t kMinMemoryBytes = 16 * kMiB;
constexpr uint64_t kMaxMemoryBytes = 256ull * 1024 * kMiB;
constexpr uint64_t kDefaultMemoryBytes = 256 * kMiB;
constexpr uint32_t kMaxVcpus = 254;
// The largest APIC id the microvm's MP table and an xAPIC guest can address (0xff is broadcast).
constexpr uint32_t kMaxApicId = 254;
constexpr uint32_t kBlockSlots = 6;
constexpr uint32_t kNetSlots = 2;
// pcie.0 on the q35 machine; slot 0 function 0 is the host bridge's.
constexpr uint32_t kPciSlots = 32;
constexpr uint32_t kPciFunctions = 8;
// Each root port gets a bus number and a 2 MiB memory window above the
// root bus's own functions' BARs, inside its 32-bit window (docs/q35.md).
constexpr uint32_t kMaxRootPorts = 248;
// Commands per second per QMP client; StratoVirt's figure. 0 = unlimited.
constexpr uint32_t kDefaultQmpRateLimit = 100;

struct Smp {
  uint32_t cpus = 1;
  uint32_t max_cpus = 1;
  uint32_t sockets = 1;
  uint32_t cores = 1;
  uint32_t threads = 1;
};

struct Drive {
  std::string id;
  std::string file;
  bool read_only = false;
  bool direct = false;
};

struct Netdev {
  std::string id;
  std::string ifname;       // a tap by name, or:
  std::optional<int> fd;    // a tap fd this process inherited
};

// A PCI function's place: addr=<slot>[.<function>].
struct PciAddress {
  uint32_t slot = 0;
  uint32_t function = 0;
};

// A -device: the microvm's virtio-mmio devices (virtio-*-device), or the
// q35 machine's PCI functions (virtio-*-pci, pcie-root-port) and host
// functions passed through (vfio-pci).
struct Device {
  enum class Kind { kBlock, kNet, kBalloon, kRootPort, kVfio } kind = Kind::kBlock;
  bool pci = false;
  std::string id;
  std::string backend;             // block: the -drive id; net: the -netdev id
  std::optional<std::string> mac;  // net, "52:54:00:12:34:56" form
  std::optional<uint32_t> slot;    // addr=: the slot within its kind (0 = vda / eth0)
  std::string bus;                 // pci: bus=
  PciAddress pci_addr;             // pci: addr=
  bool deflate_on_oom = false;     // balloon
  bool free_page_reporting = false;
  uint8_t port = 0;                // root port: port=
  std::optional<uint32_t> chassis;  // root port: chassis=
  bool multifunction = false;      // pci: multifunction=on
  std::string host;      // vfio-pci: host=DDDD:BB:SS.F (canonical), or
  std::string sysfsdev;  // sysfsdev=<the function's sysfs directory>
};

struct Serial {
  enum class Kind { kStdio, kPty, kNone, kFile, kSocket } kind = Kind::kStdio;
  std::string path;  // file and socket
};

struct Qmp {
  enum class Kind { kUnix, kTcp } kind = Kind::kUnix;
  std::string path;  // unix
  std::string host;  // tcp
  uint16_t port = 0;
  uint32_t rate_limit = kDefaultQmpRateLimit;
};

enum class BootEntryKind { kLinux64, kPvh };

struct VmmConfig {
  std::optional<std::string> name;
  std::string machine = "microvm";  // -machine: "microvm" or "q35"
  std::string kernel;
  std::optional<std::string> initrd;
  std::string append;
  BootEntryKind boot_entry = BootEntryKind::kLinux64;
  Smp smp;
  uint64_t memory_bytes = kDefaultMemoryBytes;
  // -mem-share: guest RAM another process can map (a memfd, or with
  // -mem-path a shared mapping of that file).
  bool mem_share = false;
  // -mem-path: guest RAM in a file, or in a new unlinked file in a
  // directory (a hugetlbfs mount, say): memory/mem_path.h.
  std::optional<std::string> mem_path;
  std::vector<Drive> drives;
  std::vector<Netdev> netdevs;
  // In command-line order. A disk or NIC with addr= takes that slot; the
  // others fill the free slots of their kind in order (without any addr=,
  // the first virtio-blk-device is vda, the first virtio-net-device eth0).
  std::vector<Device> devices;
  Serial serial;
  std::optional<Qmp> qmp;
  // -D: absent = no log; present and empty = stderr; else the log file.
  std::optional<std::string> log_file;
  bool daemonize = false;
  std::optional<std::string> pidfile;
  bool start_paused = false;  // -S
  // -incoming file:<dir>: continue a snapshot instead of booting.
  std::optional<std::string> incoming;
};

}  // namespace virga::cli
