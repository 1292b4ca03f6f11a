#include "arch/x86_64/mptable.h"

#include <cstring>
#include <string>

#include "arch/x86_64/layout.h"
#include "common/error.h"

namespace virga::x86 {

namespace {

struct __attribute__((packed)) MpFloatingPointer {
  char signature[4];  // "_MP_"
  uint32_t config_table;
  uint8_t length;  // in 16-byte units
  uint8_t spec_rev;
  uint8_t checksum;
  uint8_t feature1;
  uint8_t feature2;
  uint8_t reserved[3];
};

struct __attribute__((packed)) MpConfigHeader {
  char signature[4];  // "PCMP"
  uint16_t length;
  uint8_t spec_rev;
  uint8_t checksum;
  char oem_id[8];
  char product_id[12];
  uint32_t oem_table;
  uint16_t oem_table_size;
  uint16_t entry_count;
  uint32_t lapic_address;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
};

struct __attribute__((packed)) MpProcessor {
  uint8_t type;  // 0
  uint8_t apic_id;
  uint8_t apic_version;
  uint8_t flags;  // bit0 enabled, bit1 bootstrap processor
  uint32_t signature;
  uint32_t feature_flags;
  uint32_t reserved[2];
};

struct __attribute__((packed)) MpBus {
  uint8_t type;  // 1
  uint8_t bus_id;
  char bus_type[6];
};

struct __attribute__((packed)) MpIoapic {
  uint8_t type;  // 2
  uint8_t apic_id;
  uint8_t apic_version;
  uint8_t flags;  // bit0 enabled
  uint32_t address;
};

struct __attribute__((packed)) MpInterrupt {
  uint8_t type;  // 3 io interrupt, 4 local interrupt
  uint8_t irq_type;
  uint16_t flags;  // polarity bits 0-1, trigger bits 2-3; 0 = conforming to the bus
  uint8_t source_bus;
  uint8_t source_irq;
  uint8_t dest_apic;
  uint8_t dest_pin;
};

constexpr uint8_t kIrqTypeInt = 0;
constexpr uint8_t kIrqTypeNmi = 1;
constexpr uint8_t kIrqTypeExtInt = 3;
constexpr uint8_t kApicVersion = 0x14;
// Polarity 01 (active high), trigger 11 (level).
constexpr uint16_t kActiveHighLevel = 0xd;

uint8_t Checksum(const uint8_t* data, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + data[i]);
  return static_cast<uint8_t>(-sum);
}

}  // namespace

void WriteMpTable(const GuestMemory& memory, const std::vector<uint32_t>& apic_ids, uint32_t ioapic_id) {
  std::vector<uint8_t> entries;
  auto append = [&entries](const auto& entry) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&entry);
    entries.insert(entries.end(), bytes, bytes + sizeof(entry));
  };
  // The MP table has 8-bit APIC ids, and 0xff addresses every APIC: a
  // larger id would be cut to another CPU's (or the broadcast) id.
  for (size_t i = 0; i < apic_ids.size(); ++i) {
    if (apic_ids[i] >= 0xff) {
      throw VmmError("MP table: vCPU " + std::to_string(i) + " has APIC id " + std::to_string(apic_ids[i]) +
                     ", beyond the table's 8-bit ids (at most 254)");
    }
  }
  if (ioapic_id > 0xff) {
    throw VmmError("MP table: IOAPIC id " + std::to_string(ioapic_id) + " does not fit its 8-bit field");
  }
  uint16_t count = 0;
  for (size_t i = 0; i < apic_ids.size(); ++i) {
    MpProcessor cpu{};
    cpu.type = 0;
    cpu.apic_id = static_cast<uint8_t>(apic_ids[i]);
    cpu.apic_version = kApicVersion;
    cpu.flags = static_cast<uint8_t>(1 | (i == 0 ? 2 : 0));
    cpu.signature = 0x600;  // family 6: what guests expect of an x86-64 CPU
    cpu.feature_flags = (1 << 9) | (1 << 0);  // APIC, FPU
    append(cpu);
    ++count;
  }
  MpBus isa{1, 0, {'I', 'S', 'A', ' ', ' ', ' '}};
  append(isa);
  ++count;
  MpIoapic ioapic{2, static_cast<uint8_t>(ioapic_id), kApicVersion, 1, static_cast<uint32_t>(kIoapicAddr)};
  append(ioapic);
  ++count;
  for (uint8_t pin = 0; pin < kIoapicPins; ++pin) {
    // ISA IRQ 0 (PIT) arrives on pin 2, as on every PC since the 8259 cascade.
    if (pin == 2) continue;
    uint8_t source = pin;
    uint8_t dest = pin == 0 ? 2 : pin;
    // The virtio-mmio slots' lines (and q35's INTx on the same pins) are
    // level-triggered: up while the device has an interrupt pending.
    bool level = pin >= kVirtioFirstGsi || pin == kBalloonGsi;
    uint16_t flags = level ? kActiveHighLevel : 0;
    append(MpInterrupt{3, kIrqTypeInt, flags, 0, source, static_cast<uint8_t>(ioapic_id), dest});
    ++count;
  }
  append(MpInterrupt{4, kIrqTypeExtInt, 0, 0, 0, 0xff, 0});
  append(MpInterrupt{4, kIrqTypeNmi, 0, 0, 0, 0xff, 1});
  count += 2;

  MpConfigHeader header{};
  std::memcpy(header.signature, "PCMP", 4);
  header.length = static_cast<uint16_t>(sizeof(header) + entries.size());
  header.spec_rev = 4;
  std::memcpy(header.oem_id, "VIRGA   ", 8);
  std::memcpy(header.product_id, "MICROVM     ", 12);
  header.entry_count = count;
  header.lapic_address = static_cast<uint32_t>(kLapicAddr);

  std::vector<uint8_t> table(sizeof(header) + entries.size());
  std::memcpy(table.data(), &header, sizeof(header));
  std::memcpy(table.data() + sizeof(header), entries.data(), entries.size());
  table[offsetof(MpConfigHeader, checksum)] = Checksum(table.data(), table.size());

  MpFloatingPointer pointer{};
  std::memcpy(pointer.signature, "_MP_", 4);
  uint64_t config_address = kMpConfigAddr;
  pointer.config_table = static_cast<uint32_t>(config_address);
  pointer.length = 1;
  pointer.spec_rev = 4;
  pointer.checksum = Checksum(reinterpret_cast<const uint8_t*>(&pointer), sizeof(pointer));

  if (config_address + table.size() > kMpFloatingPointerAddr) {
    throw VmmError("MP table for " + std::to_string(apic_ids.size()) + " vCPUs does not fit below 640 KiB");
  }
  memory.WriteObj(kMpFloatingPointerAddr, pointer);
  memory.Write(config_address, table.data(), table.size());
}

}  // namespace virga::x86
