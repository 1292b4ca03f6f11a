#include "cli/flags.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>

#include "arch/x86_64/cpuid.h"
#include "backends/tap.h"
#include "cli/option_items.h"
#include "cli/usage_error.h"
#include "devices/pci/vfio_container.h"

namespace virga::cli {

const char kDriveSyntax[] = "file=<path>,id=<id>[,readonly=on|off][,direct=on|off][,if=none][,format=raw]";
const char kDeviceSyntax[] =
    "virtio-blk-device,drive=<drive id>[,id=<id>][,addr=<slot>] | "
    "virtio-net-device,netdev=<netdev id>[,id=<id>][,mac=<mac>][,addr=<slot>] | "
    "virtio-balloon-device[,id=<id>][,deflate-on-oom=on|off][,free-page-reporting=on|off] | "
    "virtio-blk-pci,drive=<drive id>,bus=pcie.0,addr=<slot>[.<fn>][,id=<id>] | "
    "virtio-net-pci,netdev=<netdev id>,bus=pcie.0,addr=<slot>[.<fn>][,id=<id>][,mac=<mac>] | "
    "virtio-balloon-pci,bus=pcie.0,addr=<slot>[.<fn>][,id=<id>][,deflate-on-oom=on|off][,free-page-reporting=on|off] | "
    "pcie-root-port,id=<bus>,port=<n>,bus=pcie.0,addr=<slot>[.<fn>][,multifunction=on|off][,chassis=<n>] "
    "vfio-pci,host=<DDDD:BB:SS.F>|sysfsdev=<sysfs path>,id=<id>,bus=pcie.0,addr=<slot>[.<fn>] "
    "(the -pci devices and root ports on -machine q35; virtio-blk-pci, virtio-net-pci and vfio-pci also take "
    "bus=<root port id>,addr=0x0)";
const char kNetdevSyntax[] = "tap,id=<id>,ifname=<tap name>|fd=<n>[,vhost=off]";
const char kKernelSyntax[] = "<path to an ELF vmlinux or bzImage>";
const char kInitrdSyntax[] = "<path to an initramfs>";
const char kMemPathSyntax[] = "<absolute path of a directory (a hugetlbfs mount, say) or file>";

namespace {

constexpr char kSmpSyntax[] = "[cpus=]n[,maxcpus=n][,sockets=n][,cores=n][,threads=n]";
constexpr char kMemorySyntax[] = "[size=]n[K|M|G|T] (MiB when no suffix, 16M..256G, whole MiB)";
constexpr char kSerialSyntax[] = "stdio|pty|none|file,path=<path>|socket,path=<path>,server,nowait";
constexpr char kQmpSyntax[] = "unix:<path>,server,nowait|tcp:<host>:<port>,server,nowait[,rate-limit=n]";
constexpr char kMachineSyntax[] = "[type=]microvm|q35[,mem-share=on|off]";
constexpr char kBootEntrySyntax[] = "linux64|pvh";
constexpr char kNameSyntax[] = "[guest=]<name>";
constexpr char kIncomingSyntax[] =
    "file:<absolute path of a snapshot directory>|tcp:<host>:<port>|unix:<path>";
// The Linux boot protocol caps the command line (2048 bytes on x86 by default).
constexpr size_t kMaxCmdline = 2048;

bool IsUnicastMac(const std::string& text) {
  if (text.size() != 17) return false;
  for (size_t i = 0; i < 17; ++i) {
    if (i % 3 == 2 ? text[i] != ':' : !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  // Bit 0 of the first octet set means multicast: not a NIC's address.
  return (std::stoi(text.substr(0, 2), nullptr, 16) & 1) == 0;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string Label(const OptionItem& item) { return item.key ? *item.key : item.value; }

const std::string& Require(const std::string& flag, const std::string& syntax, const std::optional<std::string>& value) {
  if (!value) throw UsageError::Expected(flag, syntax, "", "missing value");
  return *value;
}

std::function<void(const std::optional<std::string>&, VmmConfig&)> PathInto(
    std::string flag, std::string syntax, std::function<void(VmmConfig&, const std::string&)> set) {
  return [flag, syntax, set](const std::optional<std::string>& value, VmmConfig& config) {
    const std::string& text = Require(flag, syntax, value);
    if (text.empty()) throw UsageError::Expected(flag, syntax, text, "empty path");
    set(config, text);
  };
}

std::function<void(const std::optional<std::string>&, VmmConfig&)> Switch(std::string flag,
                                                                         std::function<void(VmmConfig&)> set) {
  return [flag, set](const std::optional<std::string>& value, VmmConfig& config) {
    if (value) throw UsageError::Expected(flag, flag + " (no value)", *value, "takes no value");
    set(config);
  };
}

void ParseMachine(const std::string& text, VmmConfig& config) {
  std::optional<std::string> type;
  for (const OptionItem& item : ParseItems(text)) {
    if (!type && (!item.key || *item.key == "type")) {
      type = item.value;
    } else if (item.key && *item.key == "mem-share") {
      // StratoVirt's spelling of -mem-share.
      std::optional<bool> on = ParseSwitch(item.value);
      if (!on) throw UsageError::Expected("-machine", kMachineSyntax, text, "mem-share must be on or off");
      if (*on) config.mem_share = true;
    } else {
      throw UsageError::Expected("-machine", kMachineSyntax, text, "unknown option '" + Label(item) + "'");
    }
  }
  if (type && (*type == "microvm" || *type == "q35")) {
    config.machine = *type;
    return;
  }
  static const std::set<std::string> kNotYet = {"standard", "pc", "virt", "pc-q35"};
  if (type && kNotYet.count(*type)) {
    throw UsageError::Expected("-machine", kMachineSyntax, text, "machine '" + *type + "' is not supported yet");
  }
  throw UsageError::Expected("-machine", kMachineSyntax, text, "unknown machine type");
}

}  // namespace

Smp ParseSmp(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-smp", kSmpSyntax, text, problem); };
  static const std::vector<std::string> kKeys = {"cpus", "maxcpus", "sockets", "cores", "threads"};
  std::map<std::string, uint64_t> given;
  std::vector<OptionItem> items = ParseItems(text);
  for (size_t i = 0; i < items.size(); ++i) {
    const OptionItem& item = items[i];
    std::string key = item.key ? *item.key : (i == 0 ? "cpus" : "");
    if (key.empty()) throw bad("'" + item.value + "' needs a key");
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) throw bad("unknown option '" + key + "'");
    if (given.count(key)) throw bad("'" + key + "' given twice");
    if (!AllDigits(item.value)) throw bad(key + " is not a number");
    given[key] = std::stoull(item.value);
  }
  auto get = [&](const char* key) -> std::optional<uint64_t> {
    auto it = given.find(key);
    return it == given.end() ? std::nullopt : std::optional<uint64_t>(it->second);
  };
  std::optional<uint64_t> cpus = get("cpus") ? get("cpus") : get("maxcpus");
  if (!cpus) throw bad("no cpu count");
  // Missing topology values are derived as QEMU does: threads and cores
  // default to 1 and the rest goes to sockets; maxcpus defaults to cpus.
  uint64_t max_cpus = get("maxcpus").value_or(*cpus);
  uint64_t threads = get("threads").value_or(1);
  std::optional<uint64_t> cores = get("cores");
  std::optional<uint64_t> sockets = get("sockets");
  if (!sockets) {
    if (!cores) cores = 1;
    uint64_t per = *cores * threads;
    sockets = std::max<uint64_t>(1, per == 0 ? 1 : max_cpus / per);
  } else if (!cores) {
    uint64_t per = *sockets * threads;
    cores = std::max<uint64_t>(1, per == 0 ? 1 : max_cpus / per);
  }
  const std::string range = "must be 1..254";
  for (auto [key, value] : {std::pair<const char*, uint64_t>{"cpus", *cpus}, {"maxcpus", max_cpus},
                            {"sockets", *sockets}, {"cores", *cores}, {"threads", threads}}) {
    if (value < 1 || value > kMaxVcpus) throw bad(std::string(key) + ": " + range);
  }
  if (*cpus > max_cpus) {
    throw bad("cpus (" + std::to_string(*cpus) + ") exceeds maxcpus (" + std::to_string(max_cpus) + ")");
  }
  uint64_t product = *sockets * *cores * threads;
  if (product != max_cpus) {
    throw bad("sockets*cores*threads (" + std::to_string(*sockets) + "*" + std::to_string(*cores) + "*" +
              std::to_string(threads) + "=" + std::to_string(product) + ") must equal maxcpus (" +
              std::to_string(max_cpus) + ")");
  }
  // APIC ids pack thread, core and socket into power-of-two fields, so a
  // topology of few CPUs can still need ids past what the MP table and the
  // guest's xAPIC mode hold.
  x86::CpuTopology topology{static_cast<uint32_t>(*sockets), static_cast<uint32_t>(*cores),
                            static_cast<uint32_t>(threads)};
  uint32_t top_apic_id = x86::ApicIdFor(topology, static_cast<uint32_t>(max_cpus - 1));
  if (top_apic_id > kMaxApicId) {
    throw bad("sockets=" + std::to_string(*sockets) + ",cores=" + std::to_string(*cores) + ",threads=" +
              std::to_string(threads) + " needs APIC ids up to " + std::to_string(top_apic_id) + ", beyond " +
              std::to_string(kMaxApicId) + " (8-bit ids)");
  }
  return Smp{static_cast<uint32_t>(*cpus), static_cast<uint32_t>(max_cpus), static_cast<uint32_t>(*sockets),
             static_cast<uint32_t>(*cores), static_cast<uint32_t>(threads)};
}

uint64_t ParseMemory(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-m", kMemorySyntax, text, problem); };
  std::string rest = text.rfind("size=", 0) == 0 ? text.substr(5) : text;
  size_t digits = 0;
  while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
  if (digits == 0 || digits > 15) throw bad("not a size");
  std::string suffix = rest.substr(digits);
  uint64_t unit = kMiB;
  if (!suffix.empty()) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
      case 'K': unit = 1024; break;
      case 'M': unit = kMiB; break;
      case 'G': unit = 1024 * kMiB; break;
      case 'T': unit = 1024ull * 1024 * kMiB; break;
      default: throw bad("not a size");
    }
    std::string tail = suffix.substr(1);
    if (!tail.empty() && tail != "B" && tail != "iB") throw bad("not a size");
  }
  long double bytes = static_cast<long double>(std::stoull(rest.substr(0, digits))) * unit;
  if (bytes < kMinMemoryBytes) throw bad("less than 16 MiB");
  if (bytes > kMaxMemoryBytes) throw bad("more than 256 GiB");
  uint64_t value = static_cast<uint64_t>(bytes);
  if (value % kMiB != 0) throw bad("not a whole number of MiB");
  return value;
}

Drive ParseDrive(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-drive", kDriveSyntax, text, problem); };
  std::set<std::string> seen;
  Drive drive;
  bool has_file = false, has_id = false;
  for (const OptionItem& item : ParseItems(text)) {
    if (!item.key) throw bad("'" + item.value + "' needs a key");
    const std::string& key = *item.key;
    if (!seen.insert(key).second) throw bad("'" + key + "' given twice");
    if (key == "file") {
      drive.file = item.value;
      has_file = true;
    } else if (key == "id") {
      drive.id = item.value;
      has_id = true;
    } else if (key == "readonly" || key == "direct") {
      std::optional<bool> on = ParseSwitch(item.value);
      if (!on) throw bad(key + " must be on or off");
      (key == "readonly" ? drive.read_only : drive.direct) = *on;
    } else if (key == "if") {
      if (item.value != "none") throw bad("if=" + item.value + " is not supported (only if=none)");
    } else if (key == "format") {
      if (item.value != "raw") throw bad("format=" + item.value + " is not supported (only raw)");
    } else {
      throw bad("unknown option '" + key + "'");
    }
  }
  if (!has_file) throw bad("missing file=");
  if (!has_id) throw bad("missing id=");
  if (drive.file.empty()) throw bad("file= is empty");
  if (drive.id.empty()) throw bad("id= is empty");
  return drive;
}

namespace {

// 0-255, decimal or hex with 0x, as QEMU and StratoVirt write slot and port numbers.
std::optional<uint32_t> ParseSmallNumber(const std::string& text) {
  std::string digits = text.rfind("0x", 0) == 0 ? text.substr(2) : text;
  bool hex = digits.size() != text.size();
  if (digits.empty() || digits.size() > (hex ? 2 : 3) ||
      !std::all_of(digits.begin(), digits.end(), [hex](unsigned char c) { return hex ? std::isxdigit(c) : std::isdigit(c); })) {
    return std::nullopt;
  }
  unsigned long n = std::stoul(digits, nullptr, hex ? 16 : 10);
  if (n > 0xff) return std::nullopt;
  return static_cast<uint32_t>(n);
}

}  // namespace

Device ParseDevice(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-device", kDeviceSyntax, text, problem); };
  std::vector<OptionItem> items = ParseItems(text);
  // The driver first: an unsupported device gets its own message, whatever its options.
  size_t driver_index = items.size();
  for (size_t i = 0; i < items.size(); ++i) {
    if ((items[i].key && *items[i].key == "driver") || (i == 0 && !items[i].key)) {
      driver_index = i;
      break;
    }
  }
  if (driver_index == items.size()) throw bad("missing driver");
  const std::string& driver = items[driver_index].value;
  Device device;
  std::set<std::string> allowed = {"id"};
  device.pci = (driver.size() > 4 && driver.compare(driver.size() - 4, 4, "-pci") == 0) || driver == "pcie-root-port";
  if (device.pci) allowed.insert({"bus", "addr", "multifunction"});
  if (driver == "virtio-blk-device" || driver == "virtio-blk-pci") {
    device.kind = Device::Kind::kBlock;
    allowed.insert({"drive", "addr"});
  } else if (driver == "virtio-net-device" || driver == "virtio-net-pci") {
    device.kind = Device::Kind::kNet;
    allowed.insert({"netdev", "mac", "addr"});
  } else if (driver == "virtio-balloon-device" || driver == "virtio-balloon-pci") {
    device.kind = Device::Kind::kBalloon;
    allowed.insert({"deflate-on-oom", "free-page-reporting"});
  } else if (driver == "pcie-root-port") {
    device.kind = Device::Kind::kRootPort;
    allowed.insert({"port", "chassis"});
  } else if (driver == "vfio-pci") {
    device.kind = Device::Kind::kVfio;
    allowed.insert({"host", "sysfsdev"});
  } else {
    throw bad("unknown device '" + driver + "'");
  }
  std::optional<std::string> id;
  std::set<std::string> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i == driver_index) continue;
    const OptionItem& item = items[i];
    if (!item.key) throw bad("'" + item.value + "' needs a key");
    const std::string& key = *item.key;
    if (!allowed.count(key)) throw bad("unknown option '" + key + "'");
    if (!seen.insert(key).second) throw bad("'" + key + "' given twice");
    if (key == "id") {
      id = item.value;
    } else if (key == "drive" || key == "netdev") {
      if (item.value.empty()) throw bad(key + "= is empty");
      device.backend = item.value;
    } else if (key == "bus") {
      device.bus = item.value;
    } else if (key == "addr" && device.pci) {
      std::optional<PciAddress> addr = ParsePciAddress(item.value);
      if (!addr) throw bad("addr must be <slot>[.<function>] in hex, such as 0x3 or 0x3.0x1");
      if (addr->slot >= kPciSlots || addr->function >= kPciFunctions) {
        throw bad("addr " + FormatPciAddress(*addr) + " is out of range (slots 0x0-0x1f, functions 0-7)");
      }
      device.pci_addr = *addr;
    } else if (key == "addr") {
      // The seed's hot-plug slot numbers: "0x1" or "1".
      std::optional<uint32_t> slot = ParseSmallNumber(item.value);
      if (!slot) throw bad("addr must be a slot number such as 0x1");
      device.slot = *slot;
    } else if (key == "port" || key == "chassis") {
      std::optional<uint32_t> n = ParseSmallNumber(item.value);
      if (!n) throw bad(key + " must be a number from 0 to 255, such as 0x1");
      if (key == "port") device.port = static_cast<uint8_t>(*n);
      else device.chassis = *n;
    } else if (key == "multifunction") {
      std::optional<bool> on = ParseSwitch(item.value);
      if (!on) throw bad("multifunction must be on or off");
      device.multifunction = *on;
    } else if (key == "host") {
      device.host = pci::CanonicalHostAddress(item.value);
      if (device.host.empty()) throw bad("host must be a PCI address DDDD:BB:SS.F, such as 0000:00:03.0");
    } else if (key == "sysfsdev") {
      if (item.value.empty() || item.value[0] != '/') throw bad("sysfsdev must be an absolute path, such as /sys/bus/pci/devices/0000:00:03.0");
      device.sysfsdev = item.value;
    } else if (key == "mac") {
      if (!IsUnicastMac(item.value)) throw bad("mac must be a unicast MAC address like 52:54:00:12:34:56");
      device.mac = item.value;
    } else {
      std::optional<bool> on = ParseSwitch(item.value);
      if (!on) throw bad(key + " must be on or off");
      (key == "deflate-on-oom" ? device.deflate_on_oom : device.free_page_reporting) = *on;
    }
  }
  if (device.kind == Device::Kind::kBlock && device.backend.empty()) throw bad("missing drive=");
  if (device.kind == Device::Kind::kNet && device.backend.empty()) throw bad("missing netdev=");
  if (device.kind == Device::Kind::kVfio) {
    if (seen.count("host") == seen.count("sysfsdev")) throw bad("vfio-pci takes exactly one of host= and sysfsdev=");
    // Hot-plug and DEVICE_DELETED name it by id, and it has no backend to borrow one from.
    if (!id) throw bad("missing id=");
  }
  // StratoVirt's rule: a PCI device says where it goes.
  if (device.pci && !seen.count("bus")) throw bad("missing bus=");
  if (device.pci && !seen.count("addr")) throw bad("missing addr=");
  // The root port's id names its bus; its port number is the link's.
  if (device.kind == Device::Kind::kRootPort && !id) throw bad("missing id= (the root port's bus name)");
  if (device.kind == Device::Kind::kRootPort && !seen.count("port")) throw bad("missing port=");
  // Without id= a disk or NIC is named after its backend (StratoVirt's
  // rule, so hot-plug's device_del finds it by the same name).
  device.id = id.value_or(device.kind == Device::Kind::kBalloon ? "balloon0" : device.backend);
  if (device.id.empty()) throw bad("id= is empty");
  return device;
}

std::optional<PciAddress> ParsePciAddress(const std::string& text) {
  // QEMU's form: hex numbers, with or without 0x.
  auto number = [](std::string digits, uint32_t* out) {
    if (digits.rfind("0x", 0) == 0 || digits.rfind("0X", 0) == 0) digits = digits.substr(2);
    if (digits.empty() || digits.size() > 2 ||
        !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isxdigit(c); })) {
      return false;
    }
    *out = static_cast<uint32_t>(std::stoul(digits, nullptr, 16));
    return true;
  };
  PciAddress addr;
  size_t dot = text.find('.');
  if (!number(text.substr(0, dot), &addr.slot)) return std::nullopt;
  if (dot != std::string::npos && !number(text.substr(dot + 1), &addr.function)) return std::nullopt;
  return addr;
}

std::string FormatPciAddress(const PciAddress& addr) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%x.%u", addr.slot, addr.function);
  return text;
}

Netdev ParseNetdev(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-netdev", kNetdevSyntax, text, problem); };
  std::vector<OptionItem> items = ParseItems(text);
  if (items[0].key || items[0].value != "tap") {
    throw bad(items[0].key ? "missing backend type" : "backend '" + items[0].value + "' is not supported (only tap)");
  }
  Netdev netdev;
  std::set<std::string> seen;
  for (size_t i = 1; i < items.size(); ++i) {
    const OptionItem& item = items[i];
    if (!item.key) throw bad("'" + item.value + "' needs a key");
    const std::string& key = *item.key;
    if (!seen.insert(key).second) throw bad("'" + key + "' given twice");
    if (key == "id") {
      netdev.id = item.value;
    } else if (key == "ifname") {
      if (!IsInterfaceName(item.value)) {
        throw bad("ifname must be an interface name (1-15 bytes, not '.' or '..', no '/', ':' or whitespace)");
      }
      netdev.ifname = item.value;
    } else if (key == "fd") {
      if (!AllDigits(item.value) || item.value.size() > 9) throw bad("fd must be a file descriptor number");
      netdev.fd = std::stoi(item.value);
      if (*netdev.fd < 3) throw bad("fd must be 3 or more (0-2 are stdio)");
    } else if (key == "vhost") {
      std::optional<bool> on = ParseSwitch(item.value);
      if (!on) throw bad("vhost must be on or off");
      if (*on) throw bad("vhost=on is not supported (virtio-net runs in virga-vmm)");
    } else {
      throw bad("unknown option '" + key + "'");
    }
  }
  if (netdev.id.empty()) throw bad("missing id=");
  if (netdev.ifname.empty() == !netdev.fd.has_value()) throw bad("give exactly one of ifname= and fd=");
  return netdev;
}

Serial ParseSerial(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-serial", kSerialSyntax, text, problem); };
  std::vector<OptionItem> items = ParseItems(text);
  if (items[0].key) throw bad("missing backend");
  // QEMU's short forms: file:<path> and unix:<path>,server,nowait.
  std::string kind = items[0].value;
  std::optional<std::string> path;
  if (kind.rfind("file:", 0) == 0) {
    path = kind.substr(5);
    kind = "file";
  } else if (kind.rfind("unix:", 0) == 0) {
    path = kind.substr(5);
    kind = "socket";
  }
  std::set<std::string> switches;
  for (size_t i = 1; i < items.size(); ++i) {
    const OptionItem& item = items[i];
    if (item.key && *item.key == "path" && !path) {
      path = item.value;
    } else if (!item.key && (item.value == "server" || item.value == "nowait")) {
      switches.insert(item.value);
    } else {
      throw bad("unknown option '" + Label(item) + "'");
    }
  }
  Serial serial;
  if (kind == "stdio" || kind == "pty" || kind == "none") {
    if (path || !switches.empty()) throw bad(kind + " takes no options");
    serial.kind = kind == "stdio" ? Serial::Kind::kStdio : kind == "pty" ? Serial::Kind::kPty : Serial::Kind::kNone;
    return serial;
  }
  if (kind == "file") {
    if (!switches.empty()) throw bad("file takes only path=");
    serial.kind = Serial::Kind::kFile;
  } else if (kind == "socket") {
    if (!switches.count("server") || !switches.count("nowait")) {
      throw bad("socket must be server,nowait (a listening unix socket)");
    }
    serial.kind = Serial::Kind::kSocket;
  } else {
    throw bad("unknown backend '" + kind + "'");
  }
  serial.path = path.value_or("");
  if (serial.path.empty()) throw bad("path is empty");
  return serial;
}

Qmp ParseQmp(const std::string& text) {
  auto bad = [&](const std::string& problem) { return UsageError::Expected("-qmp", kQmpSyntax, text, problem); };
  std::vector<OptionItem> items = ParseItems(text);
  if (items[0].key) throw bad("missing address");
  Qmp qmp;
  std::set<std::string> switches;
  for (size_t i = 1; i < items.size(); ++i) {
    const OptionItem& item = items[i];
    if (!item.key && (item.value == "server" || item.value == "nowait")) {
      switches.insert(item.value);
    } else if (item.key && *item.key == "rate-limit" && AllDigits(item.value) && item.value.size() < 10) {
      qmp.rate_limit = static_cast<uint32_t>(std::stoul(item.value));
    } else {
      throw bad("unknown option '" + Label(item) + "'");
    }
  }
  if (!switches.count("server") || !switches.count("nowait")) throw bad("the QMP socket must be server,nowait");
  const std::string& address = items[0].value;
  if (address.rfind("unix:", 0) == 0) {
    qmp.kind = Qmp::Kind::kUnix;
    qmp.path = address.substr(5);
    if (qmp.path.empty()) throw bad("path is empty");
    return qmp;
  }
  if (address.rfind("tcp:", 0) == 0) {
    std::string host_port = address.substr(4);
    size_t colon = host_port.rfind(':');
    std::string port = colon == std::string::npos ? "" : host_port.substr(colon + 1);
    if (colon == std::string::npos || !AllDigits(port)) throw bad("tcp needs <host>:<port>");
    std::string host = host_port.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    uint64_t number = std::stoull(port);
    if (host.empty()) throw bad("host is empty");
    if (number < 1 || number > 65535) throw bad("port: must be 1..65535");
    qmp.kind = Qmp::Kind::kTcp;
    qmp.host = host;
    qmp.port = static_cast<uint16_t>(number);
    return qmp;
  }
  throw bad("address must start with unix: or tcp:");
}

namespace {

// A literal comma inside an option value is written ",," (QEMU's rule).
std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) out += c == ',' ? std::string(",,") : std::string(1, c);
  return out;
}

}  // namespace

std::string FormatDrive(const Drive& drive) {
  return "file=" + Escape(drive.file) + ",id=" + Escape(drive.id) + ",readonly=" + (drive.read_only ? "on" : "off") +
         ",direct=" + (drive.direct ? "on" : "off");
}

std::string FormatDevice(const Device& device) {
  std::string addr = device.slot ? ",addr=" + std::to_string(*device.slot) : "";
  if (device.pci) {
    std::string place = ",bus=" + Escape(device.bus) + ",addr=" + FormatPciAddress(device.pci_addr);
    switch (device.kind) {
      case Device::Kind::kBlock:
        return "virtio-blk-pci,drive=" + Escape(device.backend) + ",id=" + Escape(device.id) + place;
      case Device::Kind::kNet:
        return "virtio-net-pci,netdev=" + Escape(device.backend) + ",id=" + Escape(device.id) +
               (device.mac ? ",mac=" + *device.mac : "") + place;
      case Device::Kind::kBalloon:
        return "virtio-balloon-pci,id=" + Escape(device.id) + place + ",deflate-on-oom=" +
               (device.deflate_on_oom ? "on" : "off") + ",free-page-reporting=" +
               (device.free_page_reporting ? "on" : "off");
      case Device::Kind::kRootPort:
        return "pcie-root-port,id=" + Escape(device.id) + ",port=" + std::to_string(device.port) + place +
               (device.multifunction ? ",multifunction=on" : "") +
               (device.chassis ? ",chassis=" + std::to_string(*device.chassis) : "");
      case Device::Kind::kVfio:
        return "vfio-pci," + (device.host.empty() ? "sysfsdev=" + Escape(device.sysfsdev) : "host=" + device.host) +
               ",id=" + Escape(device.id) + place;
    }
  }
  switch (device.kind) {
    case Device::Kind::kBlock:
      return "virtio-blk-device,drive=" + Escape(device.backend) + ",id=" + Escape(device.id) + addr;
    case Device::Kind::kNet:
      return "virtio-net-device,netdev=" + Escape(device.backend) + ",id=" + Escape(device.id) +
             (device.mac ? ",mac=" + *device.mac : "") + addr;
    case Device::Kind::kBalloon:
      return "virtio-balloon-device,id=" + Escape(device.id) + ",deflate-on-oom=" +
             (device.deflate_on_oom ? "on" : "off") + ",free-page-reporting=" +
             (device.free_page_reporting ? "on" : "off");
    case Device::Kind::kRootPort:
      break;  // always PCI, above
    case Device::Kind::kVfio:
      break;  // always pci
  }
  return "";
}

std::string FormatNetdev(const Netdev& netdev) {
  return "tap,id=" + Escape(netdev.id) +
         (netdev.fd ? ",fd=" + std::to_string(*netdev.fd) : ",ifname=" + Escape(netdev.ifname));
}

const std::vector<FlagSpec>& AllFlags() {
  using A = FlagSpec::Arity;
  static const std::vector<FlagSpec> kFlags = {
      {"-machine", kMachineSyntax, A::kValue, false, "machine type: microvm (the default) or q35 (docs/q35.md)",
       [](const std::optional<std::string>& v, VmmConfig& c) { ParseMachine(Require("-machine", kMachineSyntax, v), c); }},
      {"-kernel", kKernelSyntax, A::kValue, false, "guest kernel image (required)",
       PathInto("-kernel", kKernelSyntax, [](VmmConfig& c, const std::string& p) { c.kernel = p; })},
      {"-initrd", kInitrdSyntax, A::kValue, false, "initial ramdisk",
       PathInto("-initrd", kInitrdSyntax, [](VmmConfig& c, const std::string& p) { c.initrd = p; })},
      {"-append", "\"<kernel command line>\"", A::kValue, false, "kernel command line",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         const std::string& text = Require("-append", "\"<kernel command line>\"", v);
         if (text.size() > kMaxCmdline) {
           throw UsageError::Expected("-append", "\"<kernel command line>\"", text, "longer than 2048 bytes");
         }
         c.append = text;
       }},
      {"-boot-entry", kBootEntrySyntax, A::kValue, false, "kernel entry: linux64 (default) or pvh",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         const std::string& text = Require("-boot-entry", kBootEntrySyntax, v);
         if (text == "linux64") {
           c.boot_entry = BootEntryKind::kLinux64;
         } else if (text == "pvh") {
           c.boot_entry = BootEntryKind::kPvh;
         } else {
           throw UsageError::Expected("-boot-entry", kBootEntrySyntax, text, "unknown entry");
         }
       }},
      {"-smp", kSmpSyntax, A::kValue, false, "vCPUs and topology (default 1)",
       [](const std::optional<std::string>& v, VmmConfig& c) { c.smp = ParseSmp(Require("-smp", kSmpSyntax, v)); }},
      {"-m", kMemorySyntax, A::kValue, false, "guest memory (default 256M)",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         c.memory_bytes = ParseMemory(Require("-m", kMemorySyntax, v));
       }},
      {"-mem-share", "-mem-share (no value)", A::kNone, false,
       "guest RAM shared, so another process can map it: a memfd, or with -mem-path a shared mapping of the file "
       "(also -machine <type>,mem-share=on)",
       Switch("-mem-share", [](VmmConfig& c) { c.mem_share = true; })},
      {"-mem-path", kMemPathSyntax, A::kValue, false,
       "guest RAM in a file: a new unlinked one in a directory (a hugetlbfs mount for huge pages), or this file",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         const std::string& path = Require("-mem-path", kMemPathSyntax, v);
         // StratoVirt's rule; and the file's name ends up in errors and logs.
         if (path.empty() || path[0] != '/') {
           throw UsageError::Expected("-mem-path", kMemPathSyntax, path, "the path must be absolute");
         }
         c.mem_path = path;
       }},
      {"-drive", kDriveSyntax, A::kValue, true, "block backend (raw file or block device)",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         c.drives.push_back(ParseDrive(Require("-drive", kDriveSyntax, v)));
       }},
      {"-netdev", kNetdevSyntax, A::kValue, true, "network backend (an existing tap, or a tap fd)",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         c.netdevs.push_back(ParseNetdev(Require("-netdev", kNetdevSyntax, v)));
       }},
      {"-device", kDeviceSyntax, A::kValue, true,
       "guest device (microvm: virtio-blk-device up to 6, virtio-net-device up to 2, one virtio-balloon-device; "
       "q35: virtio-blk-pci, virtio-net-pci and one virtio-balloon-pci on pcie.0)",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         c.devices.push_back(ParseDevice(Require("-device", kDeviceSyntax, v)));
       }},
      {"-serial", kSerialSyntax, A::kValue, false, "serial console backend (default stdio; none with -daemonize)",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         c.serial = ParseSerial(Require("-serial", kSerialSyntax, v));
       }},
      {"-qmp", kQmpSyntax, A::kValue, false, "QMP server socket",
       [](const std::optional<std::string>& v, VmmConfig& c) { c.qmp = ParseQmp(Require("-qmp", kQmpSyntax, v)); }},
      {"-name", kNameSyntax, A::kValue, false, "VM name",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         const std::string& text = Require("-name", kNameSyntax, v);
         std::string name = text.rfind("guest=", 0) == 0 ? text.substr(6) : text;
         if (name.empty()) throw UsageError::Expected("-name", kNameSyntax, text, "empty name");
         if (name.size() > 256) throw UsageError::Expected("-name", kNameSyntax, text, "longer than 256 characters");
         c.name = name;
       }},
      {"-D", "[<log file>]", A::kOptional, false, "write the VMM log to a file (stderr without one)",
       [](const std::optional<std::string>& v, VmmConfig& c) { c.log_file = v.value_or(""); }},
      {"-daemonize", "-daemonize (no value)", A::kNone, false, "run in the background once the VM has started",
       Switch("-daemonize", [](VmmConfig& c) { c.daemonize = true; })},
      {"-pidfile", "<path>", A::kValue, false, "write the VM process's pid to a file",
       PathInto("-pidfile", "<path>", [](VmmConfig& c, const std::string& p) { c.pidfile = p; })},
      {"-S", "-S (no value)", A::kNone, false, "start paused (QMP status prelaunch) until QMP cont",
       Switch("-S", [](VmmConfig& c) { c.start_paused = true; })},
      {"-incoming", kIncomingSyntax, A::kValue, false,
       "restore the snapshot in <dir> (QMP migrate file:<dir>), or wait for a live migration on tcp/unix, instead of "
       "booting",
       [](const std::optional<std::string>& v, VmmConfig& c) {
         const std::string& text = Require("-incoming", kIncomingSyntax, v);
         auto bad = [&](const std::string& why) { return UsageError::Expected("-incoming", kIncomingSyntax, text, why); };
         if (text.rfind("file:", 0) == 0) {
           std::string dir = text.substr(5);
           if (dir.empty() || dir[0] != '/') throw bad("the path must be absolute");
         } else if (text.rfind("unix:", 0) == 0) {
           if (text.size() == 5) throw bad("the socket path is empty");
         } else if (text.rfind("tcp:", 0) == 0) {
           std::string rest = text.substr(4);
           size_t colon = rest.rfind(':');
           std::string port = colon == std::string::npos ? "" : rest.substr(colon + 1);
           if (colon == std::string::npos || !AllDigits(port) || std::stoull(port) < 1 || std::stoull(port) > 65535) {
             throw bad("tcp needs <host>:<port> with a port 1..65535");
           }
         } else {
           throw bad("unknown URI scheme");
         }
         c.incoming = text;
       }},
  };
  return kFlags;
}

const FlagSpec* FindFlag(const std::string& name) {
  for (const FlagSpec& spec : AllFlags()) {
    if (spec.flag == name) return &spec;
  }
  return nullptr;
}

}  // namespace virga::cli
