#include <memory>

#include <vector>

#include "devices/pci/host_bridge.h"
#include "devices/pci/msix.h"
#include "devices/pci/root_bus.h"
#include "unit_test.h"

namespace virga::pci {
namespace {

uint32_t Read(BusDevice& device, uint64_t offset, uint32_t len) {
  uint8_t data[4] = {};
  device.Read(offset, data, len);
  uint32_t value = 0;
  for (uint32_t i = 0; i < len; ++i) value |= static_cast<uint32_t>(data[i]) << (8 * i);
  return value;
}

void Write(BusDevice& device, uint64_t offset, uint32_t len, uint32_t value) {
  uint8_t data[4];
  for (uint32_t i = 0; i < 4; ++i) data[i] = static_cast<uint8_t>(value >> (8 * i));
  device.Write(offset, data, len);
}

uint64_t Ecam(uint32_t bus, uint32_t slot, uint32_t function, uint32_t reg) {
  return uint64_t{bus} << 20 | slot << 15 | function << 12 | reg;
}

TEST("pci: a memory BAR answers the sizing protocol and keeps its flags") {
  ConfigSpace config(PciId{0x1af4, 0x1042, 0x010000});
  config.AddMemoryBar(0, 0x4000, false, false);
  config.AddMemoryBar(2, 0x100000, true, true);
  config.Write(kBar0, 4, 0xffffffff);
  EXPECT_EQ(config.Read(kBar0, 4), 0xffffc000u);
  config.Write(kBar0 + 8, 4, 0xffffffff);
  config.Write(kBar0 + 12, 4, 0xffffffff);
  // 64-bit (0x4) and prefetchable (0x8) stay set; the size is 1 MiB.
  EXPECT_EQ(config.Read(kBar0 + 8, 4), 0xfff0000cu);
  EXPECT_EQ(config.Read(kBar0 + 12, 4), 0xffffffffu);
  config.Write(kBar0 + 8, 4, 0xc0100000);
  config.Write(kBar0 + 12, 4, 0x1);
  EXPECT_EQ(config.BarAddress(2), 0x1c0100000u);
  // An unimplemented BAR reads 0 whatever is written.
  config.Write(kBar0 + 4, 4, 0xffffffff);
  EXPECT_EQ(config.Read(kBar0 + 4, 4), 0u);
}

TEST("pci: ids, class and header type are read-only; the command register keeps only its writable bits") {
  ConfigSpace config(kQ35HostBridgeId);
  config.Write(kVendorId, 4, 0x12345678);
  EXPECT_EQ(config.Read(kVendorId, 4), 0x29c08086u);
  EXPECT_EQ(config.Read(kRevision, 4), 0x06000000u);
  config.Write(kCommand, 2, 0xffff);
  EXPECT_EQ(config.Read(kCommand, 2), static_cast<uint32_t>(kCommandWritable));
  EXPECT_TRUE(config.MemoryEnabled());
  EXPECT_EQ(config.Read(kConfigSize - 2, 4), 0xffffffffu);
}

TEST("pci: ECAM and ports 0xcf8/0xcfc reach the host bridge at 00:00.0; absent functions read all ones") {
  auto bus = std::make_shared<RootBus>(nullptr);
  bus->Attach(0, 0, std::make_shared<HostBridge>());
  EXPECT_THROWS_WITH(bus->Attach(0, 0, std::make_shared<HostBridge>()), "occupied");
  EcamWindow ecam(bus);
  EXPECT_EQ(Read(ecam, Ecam(0, 0, 0, 0), 4), 0x29c08086u);
  EXPECT_EQ(Read(ecam, Ecam(0, 0, 0, 2), 2), 0x29c0u);
  EXPECT_EQ(Read(ecam, Ecam(0, 0, 0, 0xb), 1), 0x06u);
  EXPECT_EQ(Read(ecam, Ecam(0, 1, 0, 0), 4), 0xffffffffu);
  EXPECT_EQ(Read(ecam, Ecam(1, 0, 0, 0), 4), 0xffffffffu);
  Write(ecam, Ecam(0, 0, 0, kInterruptLine), 1, 0x0b);
  EXPECT_EQ(Read(ecam, Ecam(0, 0, 0, kInterruptLine), 1), 0x0bu);

  bool reset = false;
  ConfigPorts ports(bus, [&reset](const ExitReason& r) { reset = r.kind == ExitKind::kGuestReset; });
  // Disabled (bit 31 clear): the data port reads all ones.
  Write(ports, 0, 4, 0x00000000);
  EXPECT_EQ(Read(ports, 4, 4), 0xffffffffu);
  Write(ports, 0, 4, 0x80000000);
  EXPECT_EQ(Read(ports, 0, 4), 0x80000000u);
  EXPECT_EQ(Read(ports, 4, 4), 0x29c08086u);
  EXPECT_EQ(Read(ports, 6, 2), 0x29c0u);
  Write(ports, 0, 4, 0x80000008);
  EXPECT_EQ(Read(ports, 7, 1), 0x06u);
  Write(ports, 0, 4, 0x80000800);  // 00:01.0
  EXPECT_EQ(Read(ports, 4, 4), 0xffffffffu);
  EXPECT_TRUE(!reset);
  Write(ports, 1, 1, 0x06);
  EXPECT_TRUE(reset);
}

// A function with one 4 KiB memory BAR whose registers read 0x5a.
class BarFunction : public PciDevice {
 public:
  class Registers : public BusDevice {
   public:
    void Read(uint64_t, uint8_t* data, uint32_t len) override {
      for (uint32_t i = 0; i < len; ++i) data[i] = 0x5a;
    }
    void Write(uint64_t, const uint8_t*, uint32_t) override {}
  };
  BarFunction() : PciDevice(PciId{0x1af4, 0x1042, 0x018000}) {
    config_.AddMemoryBar(4, 0x1000, true, false);
    SetBarRegisters(4, std::make_shared<Registers>());
  }
};

TEST("pci: a BAR's registers answer where the guest programs it, only while memory decoding is on") {
  Bus mmio;
  auto bus = std::make_shared<RootBus>(&mmio);
  bus->Attach(3, 0, std::make_shared<BarFunction>());
  EcamWindow ecam(bus);
  uint8_t byte = 0;
  Write(ecam, Ecam(0, 3, 0, kBar0 + 16), 4, 0xffffffff);
  EXPECT_EQ(Read(ecam, Ecam(0, 3, 0, kBar0 + 16), 4), 0xfffff004u);
  Write(ecam, Ecam(0, 3, 0, kBar0 + 16), 4, 0xc0001000);
  Write(ecam, Ecam(0, 3, 0, kBar0 + 20), 4, 0);
  EXPECT_TRUE(!mmio.Read(0xc0001000, &byte, 1));
  Write(ecam, Ecam(0, 3, 0, kCommand), 2, kCommandMemory);
  EXPECT_TRUE(mmio.Read(0xc0001000, &byte, 1));
  EXPECT_EQ(byte, 0x5a);
  // Moved: the old address is free again.
  Write(ecam, Ecam(0, 3, 0, kBar0 + 16), 4, 0xc0002000);
  EXPECT_TRUE(!mmio.Read(0xc0001000, &byte, 1));
  EXPECT_TRUE(mmio.Read(0xc0002ff8, &byte, 1));
  Write(ecam, Ecam(0, 3, 0, kCommand), 2, 0);
  EXPECT_TRUE(!mmio.Read(0xc0002000, &byte, 1));
}

TEST("pci: capabilities chain from 0x34 and set the status bit") {
  ConfigSpace config(PciId{0x1af4, 0x1042, 0x018000});
  EXPECT_EQ(config.Read(kStatus, 2) & kStatusCapabilities, 0u);
  uint32_t first = config.AddCapability(0x09, {14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13});
  uint32_t second = config.AddCapability(0x11, {1, 0});
  EXPECT_EQ(first, 0x40u);
  EXPECT_EQ(second, 0x50u);
  EXPECT_EQ(config.Read(kCapabilitiesPointer, 1), 0x40u);
  EXPECT_EQ(config.Read(first + 1, 1), 0x50u);
  EXPECT_EQ(config.Read(second, 2), 0x0011u);
  EXPECT_TRUE((config.Read(kStatus, 2) & kStatusCapabilities) != 0);
  config.Write(first + 2, 1, 0xff);  // read-only body
  EXPECT_EQ(config.Read(first + 2, 1), 14u);
}

TEST("pci: MSI-X fires an unmasked vector while enabled, keeps it pending otherwise, and routes each new message") {
  std::vector<uint16_t> fired;
  std::vector<std::pair<uint16_t, MsiMessage>> routes;
  ConfigSpace config(PciId{0x1af4, 0x1042, 0x018000});
  Msix msix(
      3, [&](uint16_t v, const MsiMessage& m) { routes.push_back({v, m}); }, [&](uint16_t v) { fired.push_back(v); });
  msix.AddCapability(config, 4, 0x4000, 0x5000);
  uint32_t cap = config.Read(kCapabilitiesPointer, 1);
  EXPECT_EQ(config.Read(cap, 4), 0x00020011u);  // table size 3 (encoded 2)
  EXPECT_EQ(config.Read(cap + 4, 4), 0x4004u);
  EXPECT_EQ(config.Read(cap + 8, 4), 0x5004u);
  EXPECT_EQ(msix.table_bytes(), 48u);
  EXPECT_EQ(msix.pba_bytes(), 8u);

  auto write = [&msix](uint64_t offset, uint32_t value) {
    uint8_t bytes[4] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value >> 16),
                        static_cast<uint8_t>(value >> 24)};
    msix.WriteTable(offset, bytes, 4);
  };
  write(16 + 0, 0xfee00000);
  write(16 + 8, 0x4041);
  EXPECT_EQ(routes.size(), 2u);
  EXPECT_TRUE(routes.back().first == 1 && routes.back().second == (MsiMessage{0xfee00000, 0x4041}));
  // Disabled: pending, visible in the PBA.
  msix.Signal(1);
  EXPECT_TRUE(fired.empty());
  uint8_t pba = 0;
  msix.ReadPba(0, &pba, 1);
  EXPECT_EQ(pba, 0x02);
  config.Write(cap + 2, 2, 0x8000);
  msix.ConfigWritten(config);
  // Enabled, but the vector is still masked (its reset state).
  EXPECT_TRUE(fired.empty());
  write(16 + 12, 0);
  EXPECT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], 1);
  msix.ReadPba(0, &pba, 1);
  EXPECT_EQ(pba, 0x00);
  msix.Signal(1);
  EXPECT_EQ(fired.size(), 2u);
  // The function mask holds every vector back until it clears.
  config.Write(cap + 2, 2, 0xc000);
  msix.ConfigWritten(config);
  msix.Signal(1);
  EXPECT_EQ(fired.size(), 2u);
  config.Write(cap + 2, 2, 0x8000);
  msix.ConfigWritten(config);
  EXPECT_EQ(fired.size(), 3u);
  // The table size is read-only; "no vector" raises nothing.
  config.Write(cap + 2, 2, 0x87ff);
  EXPECT_EQ(config.Read(cap + 2, 2), 0x8002u);
  msix.Signal(0xffff);
  EXPECT_EQ(fired.size(), 3u);
}

}  // namespace
}  // namespace virga::pci
