#include "arch/x86_64/acpi/tables.h"

#include <cstring>
#include <string>

#include "arch/x86_64/acpi/aml.h"
#include "arch/x86_64/layout.h"
#include "common/error.h"

namespace virga::acpi {

namespace {

constexpr char kOemId[] = "VIRGA ";
constexpr char kOemTableId[] = "VIRGAMVM";
constexpr uint32_t kCreatorId = 0x41475256;  // "VRGA"

void Put(Bytes* table, size_t offset, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) (*table)[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

uint8_t Checksum(const uint8_t* data, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + data[i]);
  return static_cast<uint8_t>(-sum);
}

// The 36-byte System Description Table header; length and checksum are
// filled in by Finish once the body is complete.
Bytes Header(const char signature[4], uint8_t revision) {
  Bytes t(36, 0);
  std::memcpy(t.data(), signature, 4);
  t[8] = revision;
  std::memcpy(t.data() + 10, kOemId, 6);
  std::memcpy(t.data() + 16, kOemTableId, 8);
  Put(&t, 24, 1, 4);            // OEM revision
  Put(&t, 28, kCreatorId, 4);
  Put(&t, 32, 1, 4);            // creator revision
  return t;
}

void Finish(Bytes* table) {
  Put(table, 4, table->size(), 4);
  (*table)[9] = 0;
  (*table)[9] = Checksum(table->data(), table->size());
}

// Generic Address Structure for one byte-wide I/O port.
void PutIoGas(Bytes* table, size_t offset, uint16_t port) {
  (*table)[offset] = 1;      // SystemIO
  (*table)[offset + 1] = 8;  // bit width
  (*table)[offset + 2] = 0;
  (*table)[offset + 3] = 1;  // byte access
  Put(table, offset + 4, port, 8);
}

// _PRT (ACPI 6.x, 6.2.13): for every slot and pin, the GSI its INTx line
// drives, by the usual swizzle. Source 0 names a GSI directly: Linux then
// takes the line as level-triggered, active low, shareable.
Bytes PciRoutingTable(uint32_t first_gsi) {
  std::vector<Bytes> entries;
  for (uint32_t slot = 0; slot < 32; ++slot) {
    for (uint32_t pin = 0; pin < 4; ++pin) {
      entries.push_back(Package({Integer(uint64_t{slot} << 16 | 0xffff), Integer(pin), Integer(0),
                                 Integer(first_gsi + (slot + pin) % 4)}));
    }
  }
  return Name("_PRT", Package(entries));
}

Bytes PciHostDevice(const PciHost& pci) {
  // The root bus decodes every I/O port except the configuration ports it
  // consumes itself, and the 32-bit MMIO hole below the ECAM window.
  std::vector<Bytes> body = {
      Name("_HID", EisaId("PNP0A08")),
      Name("_CID", EisaId("PNP0A03")),
      Name("_SEG", Integer(0)),
      Name("_BBN", Integer(0)),
      Name("_UID", Integer(0)),
      Name("_CRS", ResourceTemplate({
                       WordBusNumber(0, pci.last_bus),
                       Io(0xcf8, 8),
                       WordIo(0x0000, 0x0cf7),
                       WordIo(0x0d00, 0xffff),
                       DWordMemory(pci.mmio_base, pci.mmio_base + pci.mmio_size - 1),
                   })),
      // _OSC (ACPI 6.2.11) hands the OS every PCIe feature it asks for: its
      // capabilities buffer back unchanged, no error bits, each requested
      // control granted. Native hot-plug is the one that matters: Linux's
      // pciehp drives the root ports' slots.
      Method("_OSC", 4, {ReturnArg(3)}),
  };
  if (pci.intx_first_gsi != 0) body.push_back(PciRoutingTable(pci.intx_first_gsi));
  return Device("PCI0", body);
}

// Linux uses an MCFG window only when the firmware also reserves it as a
// motherboard resource; otherwise it falls back to ports 0xcf8/0xcfc and
// loses the extended configuration space.
Bytes EcamReservation(const PciHost& pci) {
  uint32_t size = static_cast<uint32_t>((uint64_t{pci.last_bus} + 1) << 20);
  return Device("DRAC", {
                            Name("_HID", EisaId("PNP0C02")),
                            Name("_UID", Integer(1)),
                            Name("_CRS", ResourceTemplate({Memory32Fixed(static_cast<uint32_t>(pci.ecam_base), size, true)})),
                        });
}

Bytes BuildMcfg(const PciHost& pci) {
  Bytes mcfg = Header("MCFG", 1);
  mcfg.resize(44 + 16, 0);  // 8 reserved bytes, then one allocation
  Put(&mcfg, 44, pci.ecam_base, 8);
  Put(&mcfg, 52, 0, 2);  // PCI segment group
  mcfg[54] = 0;          // first bus
  mcfg[55] = pci.last_bus;
  Finish(&mcfg);
  return mcfg;
}

Bytes BuildDsdt(const AcpiLayout& layout) {
  std::vector<Bytes> devices;
  devices.push_back(Device("COM1", {
                                       Name("_HID", EisaId("PNP0501")),
                                       Name("_UID", Integer(1)),
                                       Name("_CRS", ResourceTemplate({Io(0x3f8, 8), IrqNoFlags(4)})),
                                   }));
  devices.push_back(Device("RTC", {
                                      Name("_HID", EisaId("PNP0B00")),
                                      Name("_CRS", ResourceTemplate({Io(0x70, 2), IrqNoFlags(8)})),
                                  }));
  // Hardware-reduced platforms have no fixed power button: a Generic Event
  // Device raises an interrupt and its _EVT notifies the button device,
  // which the guest's ACPI button driver turns into a power-off request.
  devices.push_back(Device("PWRB", {Name("_HID", EisaId("PNP0C0C")), Name("_UID", Integer(0))}));
  devices.push_back(Device("GED", {
                                      Name("_HID", String("ACPI0013")),
                                      Name("_UID", Integer(0)),
                                      Name("_CRS", ResourceTemplate({ExtendedInterrupt(layout.power_button_gsi, true,
                                                                                       false, false)})),
                                      Method("_EVT", 1, {Notify("\\_SB.PWRB", 0x80)}),
                                  }));
  if (layout.vmgenid_addr != 0) {
    // Linux's vmgenid driver matches either id and reads ADDR: the ID's
    // physical address as a package of its low and high 32 bits.
    devices.push_back(Device("VGEN", {
                                         Name("_HID", String("VMGENCTR")),
                                         Name("_CID", String("VM_GEN_COUNTER")),
                                         Name("_UID", Integer(0)),
                                         Name("ADDR", Package({Integer(layout.vmgenid_addr & 0xffffffff),
                                                               Integer(layout.vmgenid_addr >> 32)})),
                                     }));
    devices.push_back(Device("GED1", {
                                         Name("_HID", String("ACPI0013")),
                                         Name("_UID", Integer(1)),
                                         Name("_CRS", ResourceTemplate({ExtendedInterrupt(layout.vmgenid_gsi, true,
                                                                                          false, false)})),
                                         Method("_EVT", 1, {Notify("\\_SB.VGEN", 0x80)}),
                                     }));
  }
  for (size_t i = 0; i < layout.virtio_slots.size(); ++i) {
    const auto& slot = layout.virtio_slots[i];
    char name[5];
    snprintf(name, sizeof(name), "VR%02u", static_cast<unsigned>(i % 100));
    devices.push_back(Device(name, {
                                       Name("_HID", String("LNRO0005")),
                                       Name("_UID", Integer(i)),
                                       Name("_CCA", Integer(1)),  // cache-coherent DMA
                                       Name("_CRS", ResourceTemplate({
                                                        Memory32Fixed(static_cast<uint32_t>(slot.base),
                                                                      static_cast<uint32_t>(slot.size), true),
                                                        // Level, active high: up while the
                                                        // slot's interrupt status is set.
                                                        ExtendedInterrupt(slot.gsi, false, false, false),
                                                    })),
                                   }));
  }
  if (layout.pci) devices.push_back(PciHostDevice(*layout.pci));
  if (layout.pci) devices.push_back(EcamReservation(*layout.pci));
  Bytes dsdt = Header("DSDT", 2);
  Bytes sb = Scope("\\_SB_", devices);
  dsdt.insert(dsdt.end(), sb.begin(), sb.end());
  // S5 with SLP_TYP 5: what the guest writes to the sleep control register to power off.
  Bytes s5 = Name("\\_S5_", Package({Integer(5), Integer(0), Integer(0), Integer(0)}));
  dsdt.insert(dsdt.end(), s5.begin(), s5.end());
  Finish(&dsdt);
  return dsdt;
}

Bytes BuildFadt(uint64_t dsdt_address) {
  Bytes fadt = Header("FACP", 6);
  fadt.resize(276, 0);
  Put(&fadt, 40, dsdt_address, 4);
  // IAPC_BOOT_ARCH: VGA not present. The 8042 flag stays clear on purpose:
  // on a hardware-reduced platform Linux has no legacy IRQ 1 to give its
  // keyboard driver, so probing the i8042 only fails after ~2.5 s of
  // timeouts. `reboot=k` writes the reset command to port 0x64 directly
  // and works without the driver.
  Put(&fadt, 109, 1u << 2, 2);
  constexpr uint32_t kResetRegSup = 1u << 10;
  constexpr uint32_t kPwrButton = 1u << 4;  // no fixed-feature power button
  constexpr uint32_t kSlpButton = 1u << 5;
  constexpr uint32_t kHwReducedAcpi = 1u << 20;
  Put(&fadt, 112, kResetRegSup | kPwrButton | kSlpButton | kHwReducedAcpi, 4);
  PutIoGas(&fadt, 116, x86::kAcpiResetPort);
  fadt[128] = x86::kAcpiResetValue;
  fadt[131] = 1;  // FADT minor version: ACPI 6.1
  Put(&fadt, 140, dsdt_address, 8);
  PutIoGas(&fadt, 244, x86::kSleepControlPort);
  PutIoGas(&fadt, 256, x86::kSleepStatusPort);
  std::memcpy(fadt.data() + 268, "VIRGAHV\0", 8);
  Finish(&fadt);
  return fadt;
}

Bytes BuildMadt(const AcpiLayout& layout) {
  Bytes madt = Header("APIC", 5);
  madt.resize(44, 0);
  Put(&madt, 36, x86::kLapicAddr, 4);
  Put(&madt, 40, 1, 4);  // PCAT_COMPAT: the 8259s are there (and masked by the guest)
  auto append = [&madt](std::initializer_list<uint8_t> bytes) { madt.insert(madt.end(), bytes); };
  auto append32 = [&madt](uint32_t value) {
    for (int i = 0; i < 4; ++i) madt.push_back(static_cast<uint8_t>(value >> (8 * i)));
  };
  bool any_x2apic = false;
  for (uint32_t i = 0; i < layout.possible_apic_ids.size(); ++i) {
    bool online = i < layout.apic_ids.size();
    // Enabled, or online-capable (bit 1, MADT rev 5) for CPUs that can be hot-plugged later.
    uint32_t flags = online ? 1u : 2u;
    uint32_t apic_id = layout.possible_apic_ids[i];
    // The Processor Local APIC entry holds 8-bit ids and UIDs, and 0xff
    // means broadcast: larger ones take a Processor Local x2APIC entry
    // (ACPI 6.5, 5.2.12.12) instead of being cut to a duplicate.
    if (apic_id < 0xff && i < 0xff) {
      append({0, 8, static_cast<uint8_t>(i), static_cast<uint8_t>(apic_id), static_cast<uint8_t>(flags), 0, 0, 0});
    } else {
      any_x2apic = true;
      append({9, 16, 0, 0});
      append32(apic_id);
      append32(flags);
      append32(i);
    }
  }
  if (layout.ioapic_id > 0xff) {
    throw VmmError("MADT: IOAPIC id " + std::to_string(layout.ioapic_id) + " does not fit its 8-bit field");
  }
  uint32_t ioapic = x86::kIoapicAddr;
  append({1, 12, static_cast<uint8_t>(layout.ioapic_id), 0, static_cast<uint8_t>(ioapic),
          static_cast<uint8_t>(ioapic >> 8), static_cast<uint8_t>(ioapic >> 16), static_cast<uint8_t>(ioapic >> 24), 0,
          0, 0, 0});
  // ISA IRQ 0 (PIT) is wired to IOAPIC pin 2.
  append({2, 10, 0, 0, 2, 0, 0, 0, 0, 0});
  // LINT1 of every processor is NMI; x2APIC entries need their own form of it.
  append({4, 6, 0xff, 0, 0, 1});
  if (any_x2apic) append({0x0a, 12, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0});
  Finish(&madt);
  return madt;
}

}  // namespace

uint64_t WriteAcpiTables(const GuestMemory& memory, const AcpiLayout& layout) {
  uint64_t cursor = x86::kAcpiTablesAddr;
  auto place = [&memory, &cursor](const Bytes& table) {
    uint64_t at = cursor;
    if (at + table.size() > x86::kAcpiTablesEnd || !memory.Write(at, table.data(), table.size())) {
      throw VmmError("ACPI tables do not fit below 1 MiB");
    }
    cursor = (at + table.size() + 15) & ~15ULL;
    return at;
  };
  uint64_t rsdp_address = cursor;
  cursor += 48;  // RSDP (36 bytes), written last when the XSDT address is known
  uint64_t dsdt = place(BuildDsdt(layout));
  uint64_t fadt = place(BuildFadt(dsdt));
  std::vector<uint64_t> entries = {fadt, place(BuildMadt(layout))};
  if (layout.pci) entries.push_back(place(BuildMcfg(*layout.pci)));

  Bytes xsdt = Header("XSDT", 1);
  for (uint64_t entry : entries) {
    size_t at = xsdt.size();
    xsdt.resize(at + 8);
    Put(&xsdt, at, entry, 8);
  }
  Finish(&xsdt);
  uint64_t xsdt_address = place(xsdt);

  Bytes rsdp(36, 0);
  std::memcpy(rsdp.data(), "RSD PTR ", 8);
  std::memcpy(rsdp.data() + 9, kOemId, 6);
  rsdp[15] = 2;  // ACPI 2.0+ RSDP with XSDT
  Put(&rsdp, 20, 36, 4);
  Put(&rsdp, 24, xsdt_address, 8);
  rsdp[8] = Checksum(rsdp.data(), 20);
  rsdp[32] = Checksum(rsdp.data(), 36);
  memory.Write(rsdp_address, rsdp.data(), rsdp.size());
  return rsdp_address;
}

}  // namespace virga::acpi
