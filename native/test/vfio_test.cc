// vfio-pci without /dev/vfio: the emulated parts of a passed-through
// function (configuration space, BARs, MSI, reset) over a fake device
// shaped like QEMU's edu, the host-side refusals over a sysfs tree of the
// test's own, and the command line.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/config_json.h"
#include "cli/flags.h"
#include "cli/usage_error.h"
#include "devices/bus.h"
#include "devices/pci/vfio_container.h"
#include "devices/pci/vfio_pci_function.h"
#include "unit_test.h"

namespace virga::pci {
namespace {

// QEMU's edu (1234:11e8): BAR 0 a 1 MiB 32-bit memory BAR, MSI (64-bit,
// one vector) at 0x40; here also an I/O BAR 1, a 64-bit prefetchable
// BAR 2, an MSI-X capability at 0x50 and PCIe's at 0x60.
struct FakeDevice : VfioDeviceIo {
  std::string address = "0000:00:03.0";
  std::vector<uint8_t> config = std::vector<uint8_t>(4096);
  std::map<uint32_t, std::vector<uint8_t>> bars;
  std::vector<std::pair<uint32_t, uint32_t>> config_writes;  // offset, len
  std::vector<std::vector<int>> msi_calls;
  int resets = 0;
  uint8_t mapped[4096] = {};

  FakeDevice() {
    auto put = [&](uint32_t at, uint32_t len, uint32_t value) {
      for (uint32_t i = 0; i < len; ++i) config[at + i] = static_cast<uint8_t>(value >> (8 * i));
    };
    put(0x00, 4, 0x11e81234);
    put(0x06, 2, 0x0010);      // capabilities
    put(0x08, 4, 0x00ff0010);  // revision 0x10, class 00ff00
    put(0x0e, 1, 0x80);        // multi-function on the host
    put(0x10, 4, 0xfea00000);  // where the host put BAR 0
    put(0x14, 4, 0x0000c001);  // I/O
    put(0x18, 4, 0x0000000c);  // 64-bit prefetchable
    put(0x30, 4, 0xfeb00000);  // a ROM
    put(0x3d, 1, 1);           // INTA
    put(0x34, 1, 0x40);
    put(0x40, 4, 0x00800005 | 0x0002 << 16);  // MSI, next 0x50 below; 64-bit, 2 vectors capable
    put(0x41, 1, 0x50);
    put(0x50, 2, 0x6011);                     // MSI-X, next 0x60
    put(0x60, 2, 0x0010);                     // PCIe, last
    put(0x100, 4, 0x00010001);                // AER
    bars[0] = std::vector<uint8_t>(1 << 20);
    put32(bars[0], 0, 0x010000ed);
    bars[1] = std::vector<uint8_t>(256);
    bars[2] = std::vector<uint8_t>(1 << 14);
  }
  static void put32(std::vector<uint8_t>& v, size_t at, uint32_t value) { std::memcpy(&v[at], &value, 4); }

  const std::string& name() const override { return address; }
  VfioRegion Region(uint32_t index) const override {
    if (index == kVfioConfigRegion) return {config.size(), false};
    auto it = bars.find(index);
    return it == bars.end() ? VfioRegion{} : VfioRegion{it->second.size(), index == 0};
  }
  bool ReadRegion(uint32_t index, uint64_t offset, void* data, uint32_t len) override {
    auto& bytes = index == kVfioConfigRegion ? config : bars.at(index);
    if (offset + len > bytes.size()) return false;
    std::memcpy(data, &bytes[offset], len);
    return true;
  }
  bool WriteRegion(uint32_t index, uint64_t offset, const void* data, uint32_t len) override {
    auto& bytes = index == kVfioConfigRegion ? config : bars.at(index);
    if (offset + len > bytes.size()) return false;
    if (index == kVfioConfigRegion) config_writes.push_back({static_cast<uint32_t>(offset), len});
    std::memcpy(&bytes[offset], data, len);
    return true;
  }
  void* MapRegion(uint32_t index) override { return index == 0 ? mapped : nullptr; }
  void SetMsi(const std::vector<int>& eventfds) override { msi_calls.push_back(eventfds); }
  bool Reset() override {
    ++resets;
    return true;
  }
};

struct Rig {
  FakeDevice* device;
  std::shared_ptr<VfioPciFunction> function;
  std::map<uint16_t, MsiMessage> routes;
  std::vector<std::string> maps;

  Rig() {
    auto fake = std::make_unique<FakeDevice>();
    device = fake.get();
    function = std::make_shared<VfioPciFunction>(std::move(fake));
    VfioPciFunction::Hooks hooks;
    hooks.vector_fds = {101, 102};
    hooks.route = [this](uint16_t v, const MsiMessage& m) { routes[v] = m; };
    hooks.map_memory = [this](int bar, uint64_t gpa, uint64_t size, void* host) {
      std::ostringstream text;
      text << (host ? "map " : "unmap ") << bar << " 0x" << std::hex << gpa << " 0x" << size;
      maps.push_back(text.str());
    };
    function->Connect(std::move(hooks));
  }
};

TEST("vfio-pci: the host's identity passes through; ROM, INTx pin, MSI-X and extended capabilities are hidden") {
  Rig rig;
  VfioPciFunction& f = *rig.function;
  EXPECT_EQ(f.ReadConfig(0x00, 4), 0x11e81234u);
  EXPECT_EQ(f.ReadConfig(0x08, 4), 0x00ff0010u);
  EXPECT_EQ(f.ReadConfig(0x0e, 1), 0u);  // the host's multi-function bit is not the guest's slot's
  f.SetMultiFunction();
  EXPECT_EQ(f.ReadConfig(0x0e, 1), 0x80u);
  EXPECT_EQ(f.ReadConfig(0x30, 4), 0u);
  EXPECT_EQ(f.ReadConfig(0x3d, 1), 0u);
  // The list: MSI at 0x40, then PCIe at 0x60 (MSI-X at 0x50 skipped).
  EXPECT_EQ(f.ReadConfig(0x34, 1), 0x40u);
  EXPECT_EQ(f.ReadConfig(0x40, 2), 0x6005u);
  EXPECT_EQ(f.ReadConfig(0x60, 2), 0x0010u);
  EXPECT_EQ(f.ReadConfig(0x100, 4), 0u);
  // Writable storage of its own, not the device's.
  f.WriteConfig(0x3c, 1, 11);
  EXPECT_EQ(f.ReadConfig(0x3c, 1), 11u);
  EXPECT_EQ(rig.device->config[0x3c], 0u);
}

TEST("vfio-pci: BARs answer the sizing protocol with the host's sizes and flags and never reach the device") {
  Rig rig;
  VfioPciFunction& f = *rig.function;
  EXPECT_EQ(f.BarSize(0), uint64_t{1} << 20);
  EXPECT_EQ(f.BarSize(1), 0u);  // I/O: absent
  EXPECT_EQ(f.BarSize(2), uint64_t{1} << 14);
  f.WriteConfig(0x10, 4, 0xffffffff);
  EXPECT_EQ(f.ReadConfig(0x10, 4), 0xfff00000u);
  f.WriteConfig(0x14, 4, 0xffffffff);
  EXPECT_EQ(f.ReadConfig(0x14, 4), 0u);
  f.WriteConfig(0x18, 4, 0xffffffff);
  f.WriteConfig(0x1c, 4, 0xffffffff);
  EXPECT_EQ(f.ReadConfig(0x18, 4), 0xffffc00cu);
  EXPECT_EQ(f.ReadConfig(0x1c, 4), 0xffffffffu);
  f.AssignBar(0, 0xc0800000);
  EXPECT_EQ(f.ReadConfig(0x10, 4), 0xc0800000u);
  EXPECT_EQ(rig.device->config[0x13], 0xfeu);  // the host's BAR untouched
  EXPECT_TRUE(rig.device->config_writes.empty());
}

TEST("vfio-pci: the command register reaches the device, and memory decoding maps BAR 0 into the guest") {
  Rig rig;
  VfioPciFunction& f = *rig.function;
  Bus mmio;
  f.AssignBar(0, 0xc0800000);
  f.AssignBar(2, 0xc0900000);
  f.WriteConfig(0x04, 2, 0x0006);  // memory, bus master
  EXPECT_EQ(rig.device->config[0x04], 0x06u);
  EXPECT_EQ(f.ReadConfig(0x04, 2), 0x0006u);
  f.UpdateBarMappings(mmio);
  // BAR 0 is mappable: a KVM memory slot; BAR 2 is reached by exits.
  EXPECT_EQ(rig.maps.size(), 1u);
  EXPECT_TRUE(rig.maps[0] == std::string("map 0 0xc0800000 0x100000"));
  uint32_t value = 0;
  EXPECT_TRUE(mmio.Read(0xc0800000, reinterpret_cast<uint8_t*>(&value), 4));
  EXPECT_EQ(value, 0x010000edu);
  value = 0x12345678;
  EXPECT_TRUE(mmio.Write(0xc0900008, reinterpret_cast<uint8_t*>(&value), 4));
  EXPECT_EQ(rig.device->bars[2][8], 0x78u);
  // Moved by the guest, then decoding off.
  f.WriteConfig(0x10, 4, 0xc0a00000);
  f.UpdateBarMappings(mmio);
  f.WriteConfig(0x04, 2, 0x0004);
  f.UpdateBarMappings(mmio);
  EXPECT_EQ(rig.maps.size(), 4u);
  EXPECT_TRUE(rig.maps[1] == std::string("unmap 0 0xc0800000 0x100000"));
  EXPECT_TRUE(rig.maps[2] == std::string("map 0 0xc0a00000 0x100000"));
  EXPECT_TRUE(rig.maps[3] == std::string("unmap 0 0xc0a00000 0x100000"));
  EXPECT_TRUE(!mmio.Read(0xc0a00000, reinterpret_cast<uint8_t*>(&value), 4));
}

TEST("vfio-pci: enabling MSI hands VFIO the irqfds and routes each vector to the guest's message") {
  Rig rig;
  VfioPciFunction& f = *rig.function;
  EXPECT_EQ(f.msi_vectors(), 2u);
  // 64-bit, multiple message capable 2 (log2 1); no per-vector masking offered.
  EXPECT_EQ(f.ReadConfig(0x42, 2), 0x0082u);
  f.WriteConfig(0x44, 4, 0xfee01000);
  f.WriteConfig(0x48, 4, 0);
  f.WriteConfig(0x4c, 2, 0x4041);
  EXPECT_TRUE(rig.device->msi_calls.empty());
  f.WriteConfig(0x42, 2, 0x0001 | 0x0010);  // enable, 2 vectors
  EXPECT_EQ(rig.device->msi_calls.size(), 1u);
  EXPECT_EQ(rig.device->msi_calls[0].size(), 2u);
  EXPECT_EQ(rig.device->msi_calls[0][1], 102);
  EXPECT_EQ(rig.routes[0].address, 0xfee01000u);
  EXPECT_EQ(rig.routes[0].data, 0x4040u);
  EXPECT_EQ(rig.routes[1].data, 0x4041u);
  // The guest moves the interrupt (a new message, MSI left on): routes only.
  f.WriteConfig(0x4c, 2, 0x4050);
  EXPECT_EQ(rig.device->msi_calls.size(), 1u);
  EXPECT_EQ(rig.routes[1].data, 0x4051u);
  // Nothing of MSI reached the device's configuration space.
  EXPECT_TRUE(rig.device->config_writes.empty());
  f.WriteConfig(0x42, 2, 0);
  EXPECT_EQ(rig.device->msi_calls.size(), 2u);
  EXPECT_TRUE(rig.device->msi_calls[1].empty());
  EXPECT_EQ(rig.routes[0].address, 0u);
}

TEST("vfio-pci: a machine reset turns MSI off, stops decoding and DMA, resets the function and forgets the guest's registers") {
  Rig rig;
  VfioPciFunction& f = *rig.function;
  f.AssignBar(0, 0xc0800000);
  f.CapturePowerOn();
  f.WriteConfig(0x44, 4, 0xfee00000);
  f.WriteConfig(0x42, 2, 1);
  f.WriteConfig(0x3c, 1, 5);
  f.WriteConfig(0x10, 4, 0xc0c00000);
  f.WriteConfig(0x04, 2, 0x0006);
  f.ResetFunction();
  EXPECT_EQ(rig.device->config[0x04], 0u);  // no bus mastering into the next boot
  EXPECT_EQ(rig.device->resets, 1);
  EXPECT_EQ(rig.device->msi_calls.size(), 2u);
  EXPECT_TRUE(rig.device->msi_calls[1].empty());
  EXPECT_EQ(f.ReadConfig(0x42, 2) & 1, 0u);
  EXPECT_EQ(f.ReadConfig(0x44, 4), 0u);
  EXPECT_EQ(f.ReadConfig(0x3c, 1), 0u);
  EXPECT_EQ(f.ReadConfig(0x10, 4), 0xc0800000u);
}

TEST("vfio-pci: a bridge cannot be passed through") {
  auto fake = std::make_unique<FakeDevice>();
  fake->config[0x0e] = 0x01;
  EXPECT_THROWS_WITH(VfioPciFunction(std::move(fake)),
                     "host 0000:00:03.0: header type 1 is a bridge's; only endpoints (type 0) can be passed through");
}

// A sysfs tree: /bus/pci/devices/<addr> with iommu_group and driver links.
struct FakeSysfs {
  std::string root;
  FakeSysfs() {
    char pattern[] = "/tmp/virga-vfio-test.XXXXXX";
    root = ::mkdtemp(pattern);
    Mkdir("/bus/pci/devices");
    Mkdir("/bus/pci/drivers/vfio-pci");
    Mkdir("/bus/pci/drivers/e1000e");
    Mkdir("/kernel/iommu_groups/7/devices");
  }
  ~FakeSysfs() { std::system(("rm -rf '" + root + "'").c_str()); }
  void Mkdir(const std::string& path) { std::system(("mkdir -p '" + root + path + "'").c_str()); }
  void Function(const std::string& address, const std::string& driver, bool grouped = true) {
    std::string dir = root + "/bus/pci/devices/" + address;
    Mkdir("/bus/pci/devices/" + address);
    if (grouped) EXPECT_EQ(::symlink((root + "/kernel/iommu_groups/7").c_str(), (dir + "/iommu_group").c_str()), 0);
    if (!driver.empty()) {
      EXPECT_EQ(::symlink((root + "/bus/pci/drivers/" + driver).c_str(), (dir + "/driver").c_str()), 0);
    }
  }
};

TEST("vfio-pci: the host function is found by address or sysfs path, in its IOMMU group, bound to vfio-pci") {
  FakeSysfs sysfs;
  sysfs.Function("0000:00:03.0", "vfio-pci");
  HostFunction found = LocateHostFunction("00:03.0", false, sysfs.root);
  EXPECT_TRUE(found.address == std::string("0000:00:03.0"));
  EXPECT_EQ(found.group, 7u);
  found = LocateHostFunction(sysfs.root + "/bus/pci/devices/0000:00:03.0", true, sysfs.root);
  EXPECT_TRUE(found.address == std::string("0000:00:03.0"));
}

TEST("vfio-pci: a missing, unbound, wrongly bound or ungrouped host function is refused by name") {
  FakeSysfs sysfs;
  sysfs.Function("0000:00:04.0", "e1000e");
  sysfs.Function("0000:00:05.0", "");
  sysfs.Function("0000:00:06.0", "vfio-pci", false);
  EXPECT_THROWS_WITH(LocateHostFunction("0000:00:09.0", false, sysfs.root),
                     "host 0000:00:09.0: no such PCI device on this host");
  EXPECT_THROWS_WITH(LocateHostFunction("/sys/nowhere/0000:00:09.0", true, sysfs.root),
                     "sysfsdev /sys/nowhere/0000:00:09.0: no such device");
  EXPECT_THROWS_WITH(LocateHostFunction("0000:00:04.0", false, sysfs.root),
                     "host 0000:00:04.0: bound to e1000e, not vfio-pci (echo vfio-pci > ");
  EXPECT_THROWS_WITH(LocateHostFunction("0000:00:05.0", false, sysfs.root), "host 0000:00:05.0: bound to no driver");
  EXPECT_THROWS_WITH(LocateHostFunction("0000:00:06.0", false, sysfs.root),
                     "host 0000:00:06.0: in no IOMMU group (the host's IOMMU is off");
}

TEST("vfio-pci: no /dev/vfio is refused by name") {
  GuestMemory memory{1 << 20, 1ULL << 32};
  EXPECT_THROWS_WITH(VfioContainer(&memory, "/nonexistent/vfio-dir"),
                     "/nonexistent/vfio-dir/vfio (VFIO: load the vfio, vfio_pci and vfio_iommu_type1 modules): No such file");
}

TEST("vfio-pci: guest RAM pinned for DMA keeps its pages: zeroing writes zeros, the balloon's discard is refused") {
  GuestMemory memory{1 << 20, 1ULL << 32};
  memory.ForgetKnownZero();
  uint8_t* page = memory.Translate(0x10000, 4096);
  page[0] = 0x5a;
  memory.PinForDevices();
  EXPECT_TRUE(memory.Zero(0x10000, 0x4000));
  EXPECT_EQ(page[0], 0u);
  EXPECT_TRUE(memory.Translate(0x10000, 4096) == page);
  EXPECT_TRUE(!memory.Discard(0x10000, 0x4000));
}

TEST("vfio-pci: host addresses are DDDD:BB:SS.F, the domain defaulting to 0000") {
  EXPECT_TRUE(CanonicalHostAddress("0000:00:03.0") == std::string("0000:00:03.0"));
  EXPECT_TRUE(CanonicalHostAddress("0A:1F.7") == std::string("0000:0a:1f.7"));
  EXPECT_TRUE(CanonicalHostAddress("00:20.0") == std::string(""));
  EXPECT_TRUE(CanonicalHostAddress("00:03.8") == std::string(""));
  EXPECT_TRUE(CanonicalHostAddress("0000:00:03") == std::string(""));
  EXPECT_TRUE(CanonicalHostAddress("sysfs") == std::string(""));
}

}  // namespace
}  // namespace virga::pci

namespace virga::cli {
namespace {

VmmConfig Parse(const std::vector<std::string>& argv) { return ParseCommandLine(argv).config; }

// Each command line is refused with a message matching its pattern.
void ExpectRefused(const std::vector<std::pair<std::vector<std::string>, std::string>>& cases) {
  for (const auto& [argv, pattern] : cases) {
    bool threw = false;
    try {
      Parse(argv);
    } catch (const UsageError& e) {
      threw = true;
      if (!std::regex_search(e.what(), std::regex(pattern))) {
        throw test::Failure("message '" + std::string(e.what()) + "' does not match /" + pattern + "/");
      }
    }
    if (!threw) throw test::Failure("no UsageError; wanted /" + pattern + "/");
  }
}

TEST("command line: vfio-pci on q35 by host= or sysfsdev=, with an id, bus and addr") {
  VmmConfig c = Parse({"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,host=00:03.0,id=edu,bus=pcie.0,addr=0x5",
                       "-device", "vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:00:04.0,id=nic,bus=pcie.0,addr=6"});
  EXPECT_EQ(c.devices.size(), 2u);
  EXPECT_TRUE(c.devices[0].kind == Device::Kind::kVfio);
  EXPECT_TRUE(c.devices[0].host == std::string("0000:00:03.0"));
  EXPECT_EQ(c.devices[0].pci_addr.slot, 5u);
  EXPECT_TRUE(c.devices[1].sysfsdev == std::string("/sys/bus/pci/devices/0000:00:04.0"));
  EXPECT_TRUE(FormatDevice(c.devices[0]) == std::string("vfio-pci,host=0000:00:03.0,id=edu,bus=pcie.0,addr=0x5.0"));
  EXPECT_TRUE(ToJson(c).find("{\"driver\":\"vfio-pci\",\"id\":\"edu\",\"host\":\"0000:00:03.0\",\"bus\":\"pcie.0\"") !=
              std::string::npos);
}

TEST("command line: vfio-pci in a root port's slot, addr 0x0 and alone there") {
  VmmConfig c = Parse({"-machine", "q35", "-kernel", "k", "-device", "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x2",
                       "-device", "vfio-pci,host=00:03.0,id=edu,bus=rp1,addr=0x0"});
  EXPECT_EQ(c.devices.size(), 2u);
  EXPECT_TRUE(c.devices[1].bus == std::string("rp1"));
  EXPECT_TRUE(FormatDevice(c.devices[1]) == std::string("vfio-pci,host=0000:00:03.0,id=edu,bus=rp1,addr=0x0.0"));
  std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-device", "vfio-pci,host=00:03.0,id=edu,bus=rp1,addr=0x1"},
       "^-device: .*addr 0x1.0 on root port 'rp1': a root port has one slot, addr=0x0"},
      {{"-device", "vfio-pci,host=00:03.0,id=edu,bus=rp2,addr=0x0"}, "^-device: .*unknown bus 'rp2'"},
      {{"-device", "virtio-balloon-pci,bus=pcie.0,addr=0x4", "-device", "vfio-pci,host=00:03.0,id=edu,bus=rp1,addr=0",
        "-device", "vfio-pci,host=00:04.0,id=nic,bus=rp1,addr=0"},
       "^-device: .*root port 'rp1' already has device 'edu'"},
  };
  for (auto& [devices, pattern] : cases) {
    devices.insert(devices.begin(), {"-machine", "q35", "-kernel", "k", "-device",
                                     "pcie-root-port,id=rp1,port=1,bus=pcie.0,addr=0x2"});
  }
  ExpectRefused(cases);
}

TEST("command line: vfio-pci's mistakes and the machines and flags it cannot go with are refused by name") {
  std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-kernel", "k", "-device", "vfio-pci,host=0000:00:03.0,id=edu,bus=pcie.0,addr=5"},
       "^-device: vfio-pci needs -machine q35; the microvm has no PCI bus to pass a host device through to"},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,id=edu,bus=pcie.0,addr=5"},
       "vfio-pci takes exactly one of host= and sysfsdev="},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,host=00:03.0,sysfsdev=/sys/x,id=e,bus=pcie.0,addr=5"},
       "vfio-pci takes exactly one of host= and sysfsdev="},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,host=00:03.0,bus=pcie.0,addr=5"}, "missing id="},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,host=3.0,id=e,bus=pcie.0,addr=5"},
       "host must be a PCI address DDDD:BB:SS.F"},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,sysfsdev=sys/x,id=e,bus=pcie.0,addr=5"},
       "sysfsdev must be an absolute path"},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,host=00:03.0,id=a,bus=pcie.0,addr=5", "-device",
        "vfio-pci,host=0000:00:03.0,id=b,bus=pcie.0,addr=6"},
       "0000:00:03.0 is passed through twice"},
      {{"-machine", "q35", "-kernel", "k", "-device", "vfio-pci,host=00:03.0,id=a,bus=pcie.0,addr=5", "-incoming",
        "file:/snap"},
       "^-incoming: a VM with vfio-pci device 'a' cannot be restored or migrated in"},
  };
  ExpectRefused(cases);
}

}  // namespace
}  // namespace virga::cli
