#include <memory>
#include <vector>

#include "devices/pci/root_bus.h"
#include "devices/pci/root_port.h"
#include "state/state_file.h"
#include "unit_test.h"

namespace virga::pci {
namespace {

constexpr uint32_t kCap = kRootPortPcieCap;
constexpr uint32_t kSlotCtl = kCap + kPcieSlotControl;
constexpr uint32_t kSlotSta = kCap + kPcieSlotStatus;

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

// An endpoint with one 16 KiB BAR whose registers read 0x77.
class Endpoint : public PciDevice {
 public:
  class Registers : public BusDevice {
   public:
    void Read(uint64_t, uint8_t* data, uint32_t len) override {
      for (uint32_t i = 0; i < len; ++i) data[i] = 0x77;
    }
    void Write(uint64_t, const uint8_t*, uint32_t) override {}
  };
  Endpoint() : PciDevice(PciId{0x1af4, 0x1042, 0x018000}) {
    config_.AddMemoryBar(0, 0x4000, false, false);
    SetBarRegisters(0, std::make_shared<Registers>());
  }
};

struct Fixture {
  Bus mmio;
  std::shared_ptr<RootBus> bus = std::make_shared<RootBus>(&mmio);
  std::vector<MsiMessage> routes;
  int fired = 0;
  std::shared_ptr<RootPort> port;
  EcamWindow ecam{bus};

  Fixture() {
    port = std::make_shared<RootPort>(RootPort::Options{5, 1, 0xc1000000, 0x200000}, &mmio,
                                      [this](const MsiMessage& m) { routes.push_back(m); }, [this] { ++fired; });
  }
  uint32_t Port(uint32_t reg, uint32_t len) { return Read(ecam, Ecam(0, 2, 0, reg), len); }
  void PortWrite(uint32_t reg, uint32_t len, uint32_t value) { Write(ecam, Ecam(0, 2, 0, reg), len, value); }
  // What Linux's pciehp does at probe: MSI on, then slot events and the
  // hot-plug interrupt enabled.
  void EnableHotPlugInterrupts() {
    PortWrite(kRootPortMsiCap + 4, 4, 0xfee00000);
    PortWrite(kRootPortMsiCap + 8, 4, 0);
    PortWrite(kRootPortMsiCap + 12, 2, 0x4041);
    PortWrite(kRootPortMsiCap + 2, 2, 1);
    PortWrite(kSlotCtl, 2, Port(kSlotCtl, 2) | 0x1029);
  }
};

TEST("root port: a type 1 header with bus numbers, a memory window and no I/O or prefetchable window") {
  Fixture f;
  f.bus->Attach(2, 0, f.port);
  EXPECT_EQ(f.Port(kVendorId, 4), 0x000c1b36u);
  EXPECT_EQ(f.Port(kRevision, 4) >> 8, 0x060400u);
  EXPECT_EQ(f.Port(kHeaderType, 1), 0x01u);
  EXPECT_EQ(f.Port(kPrimaryBus, 4) & 0xffffff, 0x010100u);
  EXPECT_EQ(f.Port(kMemoryBase, 2), 0xc100u);
  EXPECT_EQ(f.Port(kMemoryLimit, 2), 0xc110u);
  // The guest may renumber and move; the I/O and prefetchable windows read
  // zero whatever is written, which tells it they are absent.
  f.PortWrite(kMemoryBase, 4, 0xc130c120);
  EXPECT_EQ(f.Port(kMemoryBase, 4), 0xc130c120u);
  f.PortWrite(0x1c, 2, 0xe0f0);
  EXPECT_EQ(f.Port(0x1c, 2), 0u);
  f.PortWrite(0x24, 4, 0xffe0fff0);
  EXPECT_EQ(f.Port(0x24, 4), 0u);
  f.PortWrite(kSubordinateBus, 1, 3);
  EXPECT_EQ(f.Port(kSubordinateBus, 1), 3u);
  // Multi-function keeps the type.
  f.port->SetMultiFunction();
  EXPECT_EQ(f.Port(kHeaderType, 1), 0x81u);
}

TEST("root port: the PCI Express capability says root port with a hot-plug slot, then MSI") {
  Fixture f;
  f.bus->Attach(2, 0, f.port);
  EXPECT_EQ(f.Port(kCapabilitiesPointer, 1), kCap);
  EXPECT_EQ(f.Port(kCap, 4), 0x01420000u | kRootPortMsiCap << 8 | kCapabilityPcie);
  // Link: port 5, x1 at 2.5 GT/s, reports link active.
  EXPECT_EQ(f.Port(kCap + 0x0c, 4), 0x05100011u);
  // Slot: button, power controller, both indicators, hot-plug capable,
  // no command completed; slot number 5.
  EXPECT_EQ(f.Port(kCap + kPcieSlotCapabilities, 4), 0x0004005bu | 5u << 19);
  EXPECT_EQ(f.Port(kRootPortMsiCap, 4) & 0x00ffffff, 0x800000u | kCapabilityMsi);
  // Empty: powered off, indicators off, nothing present, link down.
  EXPECT_EQ(f.Port(kSlotCtl, 2), 0x07c0u);
  EXPECT_EQ(f.Port(kSlotSta, 2), 0u);
  EXPECT_EQ(f.Port(kCap + kPcieLinkStatus, 2), 0x1011u);
}

TEST("root port: configuration cycles for its secondary bus reach the device at 00.0 only, while powered") {
  Fixture f;
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->AssignBar(0, 0xc1000000);
  f.port->ColdPlug(endpoint);
  EXPECT_THROWS_WITH(f.port->ColdPlug(std::make_shared<Endpoint>()), "occupied");
  f.bus->Attach(2, 0, f.port);
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresent});
  EXPECT_EQ(f.Port(kSlotCtl, 2), 0x01c0u);
  EXPECT_EQ(f.Port(kCap + kPcieLinkStatus, 2), 0x3011u);
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 0, 0), 4), 0x10421af4u);
  EXPECT_EQ(Read(f.ecam, Ecam(1, 1, 0, 0), 4), 0xffffffffu);
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 1, 0), 4), 0xffffffffu);
  EXPECT_EQ(Read(f.ecam, Ecam(2, 0, 0, 0), 4), 0xffffffffu);
  // The same through 0xcf8/0xcfc.
  ConfigPorts ports(f.bus, [](const ExitReason&) {});
  Write(ports, 0, 4, 0x80010000);
  EXPECT_EQ(Read(ports, 4, 4), 0x10421af4u);
  // The device's BAR maps when the guest turns decoding on behind the port.
  uint8_t byte = 0;
  Write(f.ecam, Ecam(1, 0, 0, kCommand), 2, kCommandMemory);
  EXPECT_TRUE(f.mmio.Read(0xc1000000, &byte, 1));
  EXPECT_EQ(byte, 0x77);
  // Renumbered by the guest: the device follows.
  f.PortWrite(kPrimaryBus, 4, 0x070700);
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 0, 0), 4), 0xffffffffu);
  EXPECT_EQ(Read(f.ecam, Ecam(7, 0, 0, 0), 4), 0x10421af4u);
  // Powered off, it is gone from configuration space.
  f.PortWrite(kSlotCtl, 2, f.Port(kSlotCtl, 2) | kSlotPowerOff);
  EXPECT_EQ(Read(f.ecam, Ecam(7, 0, 0, 0), 4), 0xffffffffu);
  EXPECT_EQ(f.Port(kCap + kPcieLinkStatus, 2) & kLinkActive, 0u);
  // A machine reset brings back the bus numbers and a powered slot, and
  // unmaps the device's BAR (decoding off).
  f.bus->Reset();
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 0, 0), 4), 0x10421af4u);
  EXPECT_TRUE(!f.mmio.Read(0xc1000000, &byte, 1));
}

TEST("root port: hot-plug shows presence, interrupts by MSI, and the link comes up when the guest powers the slot") {
  Fixture f;
  f.bus->Attach(2, 0, f.port);
  f.EnableHotPlugInterrupts();
  EXPECT_EQ(f.routes.back().address, 0xfee00000u);
  EXPECT_EQ(f.routes.back().data, 0x4041u);
  EXPECT_EQ(f.fired, 0);
  f.port->HotPlug(std::make_shared<Endpoint>());
  EXPECT_EQ(f.fired, 1);
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresent | kSlotPresenceChanged | kSlotAttentionButtonPressed});
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 0, 0), 4), 0xffffffffu);  // not powered yet
  EXPECT_THROWS_WITH(f.port->HotPlug(std::make_shared<Endpoint>()), "occupied");
  // The guest clears the event (write one to clear) and powers the slot on.
  f.PortWrite(kSlotSta, 2, kSlotPresenceChanged | kSlotAttentionButtonPressed);
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresent});
  f.PortWrite(kSlotCtl, 2, (f.Port(kSlotCtl, 2) & ~(kSlotPowerOff | kSlotPowerIndicatorMask)) | kSlotPowerIndicatorOn);
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresent | kSlotLinkChanged});
  EXPECT_EQ(f.Port(kCap + kPcieLinkStatus, 2) & kLinkActive, uint32_t{kLinkActive});
  EXPECT_EQ(f.fired, 2);
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 0, 0), 4), 0x10421af4u);
  // Still pending and not cleared: no new message (edge, not level).
  f.PortWrite(kInterruptLine, 1, 5);
  EXPECT_EQ(f.fired, 2);
}

TEST("root port: unplug presses the attention button and completes when the guest powers the slot off") {
  Fixture f;
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->AssignBar(0, 0xc1000000);
  f.port->ColdPlug(endpoint);
  f.bus->Attach(2, 0, f.port);
  f.EnableHotPlugInterrupts();
  Write(f.ecam, Ecam(1, 0, 0, kCommand), 2, kCommandMemory);
  std::shared_ptr<PciDevice> removed;
  f.port->RequestUnplug([&removed](std::shared_ptr<PciDevice> d) { removed = std::move(d); });
  EXPECT_EQ(f.fired, 1);
  EXPECT_TRUE(f.port->unplug_pending());
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresent | kSlotAttentionButtonPressed});
  EXPECT_THROWS_WITH(f.port->RequestUnplug([](std::shared_ptr<PciDevice>) {}), "still handling the previous unplug");
  EXPECT_THROWS_WITH(f.port->HotPlug(std::make_shared<Endpoint>()), "still being unplugged");
  f.PortWrite(kSlotSta, 2, kSlotAttentionButtonPressed);
  EXPECT_TRUE(!removed);
  // The guest lets go: power indicator and power off.
  f.PortWrite(kSlotCtl, 2, f.Port(kSlotCtl, 2) | kSlotPowerOff | kSlotPowerIndicatorOff);
  EXPECT_TRUE(removed == endpoint);
  EXPECT_TRUE(!f.port->occupied());
  EXPECT_TRUE(!f.port->unplug_pending());
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresenceChanged | kSlotLinkChanged});
  uint8_t byte = 0;
  EXPECT_TRUE(!f.mmio.Read(0xc1000000, &byte, 1));
  EXPECT_THROWS_WITH(f.port->RequestUnplug([](std::shared_ptr<PciDevice>) {}), "empty");
  // A slot the guest never powered gives its device back at once.
  f.PortWrite(kSlotSta, 2, 0xffff);
  f.port->HotPlug(std::make_shared<Endpoint>());
  int gone = 0;
  f.port->RequestUnplug([&gone](std::shared_ptr<PciDevice>) { ++gone; });
  EXPECT_EQ(gone, 1);
  EXPECT_TRUE(!f.port->occupied());
}

TEST("root port: a machine reset finishes a pending unplug and keeps a hot-plugged device, powered") {
  Fixture f;
  f.bus->Attach(2, 0, f.port);
  f.EnableHotPlugInterrupts();
  f.port->HotPlug(std::make_shared<Endpoint>());
  f.bus->Reset();
  EXPECT_EQ(f.Port(kSlotSta, 2), uint32_t{kSlotPresent});
  EXPECT_EQ(Read(f.ecam, Ecam(1, 0, 0, 0), 4), 0x10421af4u);
  int gone = 0;
  f.port->RequestUnplug([&gone](std::shared_ptr<PciDevice>) { ++gone; });
  EXPECT_EQ(gone, 0);
  f.bus->Reset();
  EXPECT_EQ(gone, 1);
  EXPECT_EQ(f.Port(kSlotSta, 2), 0u);
  EXPECT_EQ(f.Port(kSlotCtl, 2), 0x07c0u);
  // MSI is off after reset, and the route with it.
  EXPECT_EQ(f.routes.back().address, 0u);
}

// The guest's view of the port at 00:02.0 and the function behind it: what a save must carry.
struct SlotView {
  uint32_t control, status, link, msi_address, msi_data, bar, command;
  bool operator==(const SlotView& o) const {
    return control == o.control && status == o.status && link == o.link && msi_address == o.msi_address &&
           msi_data == o.msi_data && bar == o.bar && command == o.command;
  }
};

SlotView View(Fixture& f) {
  return {f.Port(kSlotCtl, 2),
          f.Port(kSlotSta, 2),
          f.Port(kCap + kPcieLinkStatus, 2),
          f.Port(kRootPortMsiCap + 4, 4),
          f.Port(kRootPortMsiCap + 12, 2),
          Read(f.ecam, Ecam(1, 0, 0, kBar0), 4),
          Read(f.ecam, Ecam(1, 0, 0, kCommand), 2)};
}

state::StateFile SaveBus(Fixture& f) {
  state::StateFileWriter writer;
  f.bus->Save(writer);
  return state::StateFile::Parse(writer.Finish("test"), "saved");
}

TEST("root port: a save carries the slot, its pending events and MSI, and the function in it with its BARs") {
  Fixture source;
  source.bus->Attach(2, 0, source.port);
  source.EnableHotPlugInterrupts();
  source.port->HotPlug(std::make_shared<Endpoint>());
  // The guest powers the slot on, leaves the link event pending, moves the BAR and decodes.
  source.PortWrite(kSlotSta, 2, kSlotPresenceChanged | kSlotAttentionButtonPressed);
  source.PortWrite(kSlotCtl, 2,
                   (source.Port(kSlotCtl, 2) & ~(kSlotPowerOff | kSlotPowerIndicatorMask)) | kSlotPowerIndicatorOn);
  Write(source.ecam, Ecam(1, 0, 0, kBar0), 4, 0xc1100000);
  Write(source.ecam, Ecam(1, 0, 0, kCommand), 2, kCommandMemory);
  EXPECT_EQ(source.fired, 2);
  SlotView saved = View(source);
  EXPECT_EQ(saved.status, uint32_t{kSlotPresent | kSlotLinkChanged});
  state::StateFile file = SaveBus(source);

  // The destination has the device from its command line, cold-plugged (powered, no events).
  Fixture dest;
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->AssignBar(0, 0xc1000000);
  dest.port->ColdPlug(endpoint);
  dest.bus->Attach(2, 0, dest.port);
  dest.bus->Load(file);
  EXPECT_TRUE(View(dest) == saved);
  EXPECT_EQ(dest.routes.back().address, 0xfee00000u);
  EXPECT_EQ(dest.routes.back().data, 0x4041u);
  // The BAR answers where the guest had moved it.
  uint8_t byte = 0;
  EXPECT_TRUE(dest.mmio.Read(0xc1100000, &byte, 1));
  EXPECT_EQ(byte, 0x77u);
  // The link event was still pending and already signalled: the restore sends nothing,
  // and after the guest clears it the next event interrupts again.
  EXPECT_EQ(dest.fired, 0);
  dest.PortWrite(kSlotSta, 2, kSlotLinkChanged);
  int gone = 0;
  dest.port->RequestUnplug([&gone](std::shared_ptr<PciDevice>) { ++gone; });
  EXPECT_EQ(dest.fired, 1);
  dest.PortWrite(kSlotCtl, 2, dest.Port(kSlotCtl, 2) | kSlotPowerOff | kSlotPowerIndicatorOff);
  EXPECT_EQ(gone, 1);
}

TEST("root port: a restore refuses a slot filled otherwise, and a save refuses a pending unplug") {
  Fixture source;
  source.bus->Attach(2, 0, source.port);
  source.port->ColdPlug(std::make_shared<Endpoint>());
  state::StateFile file = SaveBus(source);
  Fixture empty;
  empty.bus->Attach(2, 0, empty.port);
  EXPECT_THROWS_WITH(empty.bus->Load(file), "the saved root port's slot holds a device, this one's is empty");

  source.port->RequestUnplug([](std::shared_ptr<PciDevice>) {});
  EXPECT_THROWS_WITH(SaveBus(source), "being unplugged");
}

}  // namespace
}  // namespace virga::pci
