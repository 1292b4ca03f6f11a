#include "cli/command_line.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "cli/flags.h"
#include "cli/usage_error.h"
#include "memory/mem_path.h"

namespace virga::cli {

namespace {

void CheckDevices(const VmmConfig& config) {
  std::map<std::string, const Drive*> drives;
  for (const Drive& drive : config.drives) {
    if (drives.count(drive.id)) {
      throw UsageError::Expected("-drive", kDriveSyntax, FormatDrive(drive), "duplicate id '" + drive.id + "'");
    }
    drives[drive.id] = &drive;
  }
  std::set<std::string> netdevs;
  for (const Netdev& netdev : config.netdevs) {
    if (!netdevs.insert(netdev.id).second) {
      throw UsageError::Expected("-netdev", kNetdevSyntax, FormatNetdev(netdev), "duplicate id '" + netdev.id + "'");
    }
  }
  std::set<std::string> used, ids;
  std::set<uint32_t> block_slots, net_slots;
  std::map<uint32_t, const Device*> pci_functions;  // on pcie.0, by slot * 8 + function
  // Root ports first: a device may name one that comes later on the line.
  std::map<std::string, const Device*> root_ports, behind_port;
  for (const Device& device : config.devices) {
    if (device.kind == Device::Kind::kRootPort) root_ports.emplace(device.id, &device);
  }
  uint32_t disks = 0, nics = 0, balloons = 0;
  for (const Device& device : config.devices) {
    std::string got = FormatDevice(device);
    auto bad = [&](const std::string& problem) { return UsageError::Expected("-device", kDeviceSyntax, got, problem); };
    switch (device.kind) {
      case Device::Kind::kBlock:
        if (!device.pci && ++disks > kBlockSlots) throw bad("at most 6 virtio-blk devices (microvm block slots)");
        if (!drives.count(device.backend)) throw bad("unknown drive '" + device.backend + "'");
        if (!used.insert("drive:" + device.backend).second) throw bad("drive '" + device.backend + "' already used");
        break;
      case Device::Kind::kNet:
        if (!device.pci && ++nics > kNetSlots) throw bad("at most 2 virtio-net devices (microvm NIC slots)");
        if (!netdevs.count(device.backend)) throw bad("unknown netdev '" + device.backend + "'");
        if (!used.insert("netdev:" + device.backend).second) throw bad("netdev '" + device.backend + "' already used");
        break;
      case Device::Kind::kBalloon:
        if (++balloons > 1) throw bad(device.pci ? "at most one virtio-balloon-pci" : "at most one virtio-balloon-device");
        break;
      case Device::Kind::kRootPort:
        if (root_ports.size() > kMaxRootPorts) {
          throw bad("at most " + std::to_string(kMaxRootPorts) + " pcie-root-port devices (their memory windows)");
        }
        if (device.bus != "pcie.0") throw bad("a pcie-root-port goes on bus=pcie.0, not '" + device.bus + "'");
        break;
      case Device::Kind::kVfio: {
        std::string function = device.host.empty() ? "sysfsdev:" + device.sysfsdev : "host:" + device.host;
        if (!used.insert(function).second) throw bad(function.substr(function.find(':') + 1) + " is passed through twice");
        break;
      }
    }
    if (!ids.insert(device.id).second) throw bad("duplicate id '" + device.id + "'");
    if (device.pci && device.bus != "pcie.0") {
      if (!root_ports.count(device.bus)) {
        std::string names;
        for (const auto& [name, port] : root_ports) names += ", '" + name + "'";
        throw bad("unknown bus '" + device.bus + "'; the q35 machine has pcie.0 and its pcie-root-ports' buses" +
                  (names.empty() ? " (no root ports)" : " (" + names.substr(2) + ")"));
      }
      if (device.pci_addr.slot != 0 || device.pci_addr.function != 0) {
        throw bad("addr " + FormatPciAddress(device.pci_addr) + " on root port '" + device.bus +
                  "': a root port has one slot, addr=0x0");
      }
      auto [taken, added] = behind_port.emplace(device.bus, &device);
      if (!added) throw bad("root port '" + device.bus + "' already has device '" + taken->second->id + "'");
    } else if (device.pci) {
      if (device.pci_addr.slot == 0 && device.pci_addr.function == 0) throw bad("addr 0x0.0 is the host bridge's");
      uint32_t devfn = device.pci_addr.slot * kPciFunctions + device.pci_addr.function;
      if (!pci_functions.emplace(devfn, &device).second) {
        throw bad("addr " + FormatPciAddress(device.pci_addr) + " is taken by device '" + pci_functions[devfn]->id + "'");
      }
    }
    if (device.slot) {
      bool block = device.kind == Device::Kind::kBlock;
      uint32_t count = block ? kBlockSlots : kNetSlots;
      if (*device.slot >= count) {
        throw bad("addr " + std::to_string(*device.slot) + " is out of range; the microvm has " + std::to_string(count) +
                  (block ? " block" : " NIC") + " slots (0.." + std::to_string(count - 1) + ")");
      }
      if (!(block ? block_slots : net_slots).insert(*device.slot).second) {
        throw bad("addr " + std::to_string(*device.slot) + " is given to two devices");
      }
    }
  }
  for (const auto& [devfn, device] : pci_functions) {
    PciAddress addr = device->pci_addr;
    // Slot 0's function 0 is the host bridge.
    if (addr.function == 0 || addr.slot == 0 || pci_functions.count(devfn - addr.function)) continue;
    throw UsageError::Expected("-device", kDeviceSyntax, FormatDevice(*device),
                               "addr " + FormatPciAddress(addr) + ": function 0 of slot " +
                                   FormatPciAddress({addr.slot, 0}) +
                                   " is empty, and a guest looks at functions 1-7 only behind function 0");
  }
  for (const Drive& drive : config.drives) {
    if (!used.count("drive:" + drive.id)) {
      throw UsageError::Expected("-drive", kDriveSyntax, FormatDrive(drive),
                                 "drive '" + drive.id + "' is not attached by any -device virtio-blk-" +
                                     (config.machine == "q35" ? "pci" : "device") + ",drive=" + drive.id);
    }
  }
  for (const Netdev& netdev : config.netdevs) {
    if (!used.count("netdev:" + netdev.id)) {
      throw UsageError::Expected("-netdev", kNetdevSyntax, FormatNetdev(netdev),
                                 "netdev '" + netdev.id + "' is not attached by any -device virtio-net-" +
                                     (config.machine == "q35" ? "pci" : "device") + ",netdev=" + netdev.id);
    }
  }
}

// Each machine's own devices; what q35 does not have yet is refused here
// rather than half-working.
void CheckMachine(const VmmConfig& config) {
  bool q35 = config.machine == "q35";
  for (const Device& device : config.devices) {
    if (device.pci == q35) continue;
    std::string got = FormatDevice(device);
    if (device.kind == Device::Kind::kVfio) {
      throw UsageError::Expected("-device", kDeviceSyntax, got,
                                 "vfio-pci needs -machine q35; the microvm has no PCI bus to pass a host device through to");
    }
    std::string driver = got.substr(0, got.find(','));
    if (device.kind == Device::Kind::kRootPort) {
      throw UsageError::Expected("-device", kDeviceSyntax, got, "pcie-root-port needs -machine q35 (the microvm has no PCI)");
    }
    std::string kind = driver.substr(0, driver.rfind('-'));
    throw UsageError::Expected("-device", kDeviceSyntax, got,
                               q35 ? driver + " is a microvm (virtio-mmio) device; the q35 machine takes " + kind +
                                         "-pci,bus=pcie.0,addr=<slot>"
                                   : driver + " needs -machine q35; the microvm takes " + kind + "-device");
  }
  if (!q35) return;
  for (const Device& device : config.devices) {
    // Checked first so it stands when q35 learns snapshots and migration:
    // the device's state is in the host's hardware, out of the VMM's reach.
    if (config.incoming && device.kind == Device::Kind::kVfio) {
      throw UsageError::Expected("-incoming", "no -incoming with vfio-pci", *config.incoming,
                                 "a VM with vfio-pci device '" + device.id +
                                     "' cannot be restored or migrated in (a passed-through device's state cannot be saved)");
    }
  }
}

// A snapshot's RAM comes back as a private mapping of its memory file.
void CheckIncoming(const VmmConfig& config) {
  if (!config.incoming || config.incoming->rfind("file:", 0) != 0) return;
  std::string flag = config.mem_path ? "-mem-path" : config.mem_share ? "-mem-share" : "";
  if (flag.empty()) return;
  throw UsageError::Expected("-incoming", "no -mem-share or -mem-path with -incoming file:", *config.incoming,
                             "a snapshot restores into anonymous guest RAM (its memory file mapped copy-on-write), "
                             "not the shared or file-backed RAM " + flag + " asks for");
}

void CheckReadableFile(const std::string& flag, const std::string& syntax, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    throw UsageError::Expected(flag, syntax, path,
                               err == ENOENT ? "no such file" : std::string("cannot access (") + std::strerror(err) + ")");
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    throw UsageError::Expected(flag, syntax, path, "not a regular file or block device");
  }
}

}  // namespace

Invocation ParseCommandLine(const std::vector<std::string>& argv) {
  Invocation invocation;
  VmmConfig& config = invocation.config;
  std::set<std::string> given;
  bool serial_given = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& token = argv[i];
    if (token.empty() || token[0] != '-' || token == "-") {
      throw UsageError(token, "unexpected argument '" + token + "'; expected a flag such as -kernel <path>");
    }
    // --flag means -flag, as in QEMU.
    std::string name = token.rfind("--", 0) == 0 ? token.substr(1) : token;
    if (name == "-help" || name == "-h") return Invocation{Invocation::Action::kHelp, {}};
    if (name == "-version") return Invocation{Invocation::Action::kVersion, {}};
    if (name == "-print-config") {
      invocation.action = Invocation::Action::kPrintConfig;
      continue;
    }
    const FlagSpec* spec = FindFlag(name);
    if (spec == nullptr) {
      std::string all;
      for (const FlagSpec& f : AllFlags()) all += (all.empty() ? "" : " ") + f.flag;
      throw UsageError(name, "unknown flag; expected one of " + all);
    }
    std::optional<std::string> value;
    if (spec->arity == FlagSpec::Arity::kValue) {
      if (i + 1 >= argv.size()) throw UsageError::Expected(name, spec->syntax, "", "missing value");
      value = argv[++i];
    } else if (spec->arity == FlagSpec::Arity::kOptional) {
      if (i + 1 < argv.size() && (argv[i + 1].empty() || argv[i + 1][0] != '-')) value = argv[++i];
    }
    if (!spec->repeatable && !given.insert(name).second) {
      throw UsageError(name, "given more than once; expected it at most once");
    }
    if (name == "-serial") serial_given = true;
    spec->apply(value, config);
  }

  if (config.kernel.empty()) throw UsageError::Expected("-kernel", kKernelSyntax, "", "required");
  CheckMachine(config);
  CheckDevices(config);
  CheckIncoming(config);
  if (config.daemonize && serial_given && config.serial.kind == Serial::Kind::kStdio) {
    throw UsageError::Expected("-daemonize", "-serial pty|none|file,path=<path>|socket,path=<path>,server,nowait",
                               "-serial stdio", "cannot be used with -serial stdio");
  }
  if (config.daemonize && config.log_file && config.log_file->empty()) {
    throw UsageError::Expected("-D", "-D <log file> with -daemonize", "-D", "a daemon has no stderr");
  }
  if (config.daemonize && !serial_given) config.serial.kind = Serial::Kind::kNone;
  return invocation;
}

void ValidateFiles(const VmmConfig& config) {
  CheckReadableFile("-kernel", kKernelSyntax, config.kernel);
  if (config.initrd) CheckReadableFile("-initrd", kInitrdSyntax, *config.initrd);
  for (const Drive& drive : config.drives) CheckReadableFile("-drive", kDriveSyntax, drive.file);
  if (config.mem_path) {
    try {
      CheckMemPath(*config.mem_path, config.memory_bytes, config.mem_share);
    } catch (const std::runtime_error& e) {
      throw UsageError::Expected("-mem-path", kMemPathSyntax, *config.mem_path, e.what());
    }
  }
  for (const Netdev& netdev : config.netdevs) {
    if (netdev.fd && ::fcntl(*netdev.fd, F_GETFD) < 0) {
      throw UsageError::Expected("-netdev", kNetdevSyntax, FormatNetdev(netdev),
                                 "fd " + std::to_string(*netdev.fd) + " is not open in this process");
    }
  }
}

std::string Usage() {
  std::string out = "usage: virga-vmm -kernel <path> [flags]\n\n";
  for (const FlagSpec& f : AllFlags()) {
    out += "  " + (f.arity == FlagSpec::Arity::kNone ? f.flag : f.flag + " " + f.syntax) + "\n      " + f.help + "\n";
  }
  out += "  -print-config\n      print the parsed configuration as JSON and exit\n";
  out += "\nserial defaults to stdio; exit codes: 0 guest/QMP/signal shutdown, 1 VMM error, 2 usage error";
  return out;
}

}  // namespace virga::cli
