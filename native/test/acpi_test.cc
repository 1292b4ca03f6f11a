#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "arch/x86_64/acpi/aml.h"
#include "arch/x86_64/acpi/tables.h"
#include "arch/x86_64/layout.h"
#include "unit_test.h"

namespace virga::acpi {
namespace {

uint8_t Sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

TEST("aml: PkgLength uses one byte below 64 and counts its own bytes above") {
  EXPECT_TRUE(PkgLength(10) == Bytes({11}));
  // 100-byte body: 2-byte encoding, total 102 = 0x66 -> 0x46 0x06.
  EXPECT_TRUE(PkgLength(100) == Bytes({0x46, 0x06}));
}

TEST("aml: names, integers, strings and EISA ids encode as the spec's examples") {
  EXPECT_TRUE(NameString("\\_SB_") == Bytes({'\\', '_', 'S', 'B', '_'}));
  EXPECT_TRUE(NameString("\\_SB.VR0") == Bytes({'\\', 0x2e, '_', 'S', 'B', '_', 'V', 'R', '0', '_'}));
  EXPECT_TRUE(Integer(0) == Bytes({0x00}));
  EXPECT_TRUE(Integer(0x12) == Bytes({0x0a, 0x12}));
  EXPECT_TRUE(Integer(0x1234) == Bytes({0x0b, 0x34, 0x12}));
  EXPECT_TRUE(String("ab") == Bytes({0x0d, 'a', 'b', 0}));
  // EISAID("PNP0501") is 0x0105D041.
  EXPECT_TRUE(EisaId("PNP0501") == Bytes({0x0c, 0x41, 0xd0, 0x05, 0x01}));
}

TEST("acpi: every table checksums to zero and the RSDP points at an XSDT listing FADT and MADT") {
  GuestMemory memory(64 << 20, x86::kMmioHoleStart);
  AcpiLayout layout{{0, 1}, {0, 1, 2, 3}, 4, {{0xd0000000, 0x1000, 16}, {0xd0001000, 0x1000, 17}}};
  uint64_t rsdp_at = WriteAcpiTables(memory, layout);
  uint8_t* rsdp = memory.Translate(rsdp_at, 36);
  EXPECT_TRUE(std::memcmp(rsdp, "RSD PTR ", 8) == 0);
  EXPECT_EQ(Sum(rsdp, 20), 0);
  EXPECT_EQ(Sum(rsdp, 36), 0);
  uint64_t xsdt_at;
  std::memcpy(&xsdt_at, rsdp + 24, 8);
  uint8_t* xsdt = memory.Translate(xsdt_at, 36);
  uint32_t xsdt_len;
  std::memcpy(&xsdt_len, xsdt + 4, 4);
  EXPECT_EQ(xsdt_len, 36u + 16u);
  EXPECT_EQ(Sum(xsdt, xsdt_len), 0);
  const char* expected[] = {"FACP", "APIC"};
  for (int i = 0; i < 2; ++i) {
    uint64_t at;
    std::memcpy(&at, xsdt + 36 + 8 * i, 8);
    uint8_t* table = memory.Translate(at, 36);
    EXPECT_TRUE(std::memcmp(table, expected[i], 4) == 0);
    uint32_t len;
    std::memcpy(&len, table + 4, 4);
    EXPECT_EQ(Sum(table, len), 0);
    if (i == 0) {
      uint64_t dsdt_at;
      std::memcpy(&dsdt_at, table + 140, 8);
      uint8_t* dsdt = memory.Translate(dsdt_at, 36);
      EXPECT_TRUE(std::memcmp(dsdt, "DSDT", 4) == 0);
      uint32_t dsdt_len;
      std::memcpy(&dsdt_len, dsdt + 4, 4);
      EXPECT_EQ(Sum(dsdt, dsdt_len), 0);
      std::string body(reinterpret_cast<char*>(dsdt), dsdt_len);
      EXPECT_TRUE(body.find("LNRO0005") != std::string::npos);
      EXPECT_TRUE(body.find("VR01") != std::string::npos);
      uint32_t flags;
      std::memcpy(&flags, table + 112, 4);
      EXPECT_TRUE(flags & (1u << 20));  // hardware-reduced
    } else {
      // 4 LAPIC entries (2 enabled, 2 online-capable), then IOAPIC, ISO, NMI.
      EXPECT_EQ(table[44], 0);
      EXPECT_EQ(table[44 + 4], 1);
      EXPECT_EQ(table[44 + 3 * 8 + 4], 2);
      EXPECT_EQ(table[44 + 4 * 8], 1);
    }
  }
}

// Walks the MADT's interrupt controller structures after its 44-byte header.
std::vector<std::pair<uint8_t, const uint8_t*>> MadtEntries(const GuestMemory& memory, uint64_t rsdp_at) {
  uint8_t* rsdp = memory.Translate(rsdp_at, 36);
  uint64_t xsdt_at;
  std::memcpy(&xsdt_at, rsdp + 24, 8);
  uint64_t madt_at;
  std::memcpy(&madt_at, memory.Translate(xsdt_at, 52) + 44, 8);
  uint32_t len;
  std::memcpy(&len, memory.Translate(madt_at, 8) + 4, 4);
  const uint8_t* madt = memory.Translate(madt_at, len);
  std::vector<std::pair<uint8_t, const uint8_t*>> entries;
  for (uint32_t at = 44; at + 2 <= len && madt[at + 1] >= 2; at += madt[at + 1]) entries.push_back({madt[at], madt + at});
  return entries;
}

TEST("acpi: APIC ids past 254 get x2APIC entries in the MADT, never a truncated duplicate") {
  GuestMemory memory(64 << 20, x86::kMmioHoleStart);
  // Two sockets of 200 cores: the second socket's ids start at 256.
  AcpiLayout layout{{0, 1, 256}, {0, 1, 256, 257, 300}, 2, {}, 9};
  std::vector<uint32_t> ids;
  bool x2apic_nmi = false;
  for (const auto& [type, entry] : MadtEntries(memory, WriteAcpiTables(memory, layout))) {
    if (type == 0) ids.push_back(entry[3]);
    if (type == 9) {
      uint32_t id, flags, uid;
      std::memcpy(&id, entry + 4, 4);
      std::memcpy(&flags, entry + 8, 4);
      std::memcpy(&uid, entry + 12, 4);
      ids.push_back(id);
      EXPECT_EQ(flags, id == 256 ? 1u : 2u);  // online, or hot-pluggable later
      EXPECT_EQ(uid, static_cast<uint32_t>(ids.size() - 1));
    }
    if (type == 0x0a) x2apic_nmi = entry[8] == 1;  // LINT1
  }
  EXPECT_TRUE(ids == std::vector<uint32_t>({0, 1, 256, 257, 300}));
  EXPECT_TRUE(x2apic_nmi);
  layout.ioapic_id = 301;
  EXPECT_THROWS_WITH(WriteAcpiTables(memory, layout), "IOAPIC id 301 does not fit");
}

TEST("acpi: a PCI host adds an MCFG with its ECAM window and a PNP0A08 bridge with its windows to the DSDT") {
  GuestMemory memory(64 << 20, x86::kMmioHoleStart);
  AcpiLayout layout{{0}, {0}, 1, {}};
  layout.pci = PciHost{0xe0000000, 255, 0xc0000000, 0x20000000};
  uint8_t* rsdp = memory.Translate(WriteAcpiTables(memory, layout), 36);
  uint64_t xsdt_at;
  std::memcpy(&xsdt_at, rsdp + 24, 8);
  uint8_t* xsdt = memory.Translate(xsdt_at, 36);
  uint32_t xsdt_len;
  std::memcpy(&xsdt_len, xsdt + 4, 4);
  EXPECT_EQ(xsdt_len, 36u + 24u);
  uint64_t mcfg_at, fadt_at, dsdt_at;
  std::memcpy(&fadt_at, xsdt + 36, 8);
  std::memcpy(&mcfg_at, xsdt + 36 + 16, 8);
  uint8_t* mcfg = memory.Translate(mcfg_at, 60);
  EXPECT_TRUE(std::memcmp(mcfg, "MCFG", 4) == 0);
  uint32_t mcfg_len;
  std::memcpy(&mcfg_len, mcfg + 4, 4);
  EXPECT_EQ(mcfg_len, 60u);
  EXPECT_EQ(Sum(mcfg, mcfg_len), 0);
  uint64_t ecam;
  std::memcpy(&ecam, mcfg + 44, 8);
  EXPECT_EQ(ecam, 0xe0000000u);
  EXPECT_EQ(mcfg[54], 0);
  EXPECT_EQ(mcfg[55], 255);
  std::memcpy(&dsdt_at, memory.Translate(fadt_at, 148) + 140, 8);
  uint8_t* dsdt = memory.Translate(dsdt_at, 36);
  uint32_t dsdt_len;
  std::memcpy(&dsdt_len, dsdt + 4, 4);
  Bytes body(dsdt, dsdt + dsdt_len);
  auto contains = [&body](const Bytes& needle) {
    return std::search(body.begin(), body.end(), needle.begin(), needle.end()) != body.end();
  };
  EXPECT_TRUE(contains(EisaId("PNP0A08")));
  EXPECT_TRUE(contains(EisaId("PNP0C02")));
  // The bus range and the 32-bit window, as the guest's _CRS parser reads them.
  EXPECT_TRUE(contains(WordBusNumber(0, 255)));
  EXPECT_TRUE(contains(DWordMemory(0xc0000000, 0xdfffffff)));
  EXPECT_TRUE(contains(Memory32Fixed(0xe0000000, 0x10000000, true)));
  // _OSC, four arguments, returns Arg3: every control the OS asks for is granted.
  EXPECT_TRUE(contains(Bytes({0x14, 0x08, '_', 'O', 'S', 'C', 0x04, 0xa4, 0x6b})));
  // No INTx lines given: no _PRT.
  EXPECT_TRUE(!contains(NameString("_PRT")));
}

TEST("acpi: a PCI host with INTx lines has a _PRT swizzling each slot's pins onto four GSIs") {
  GuestMemory memory(64 << 20, x86::kMmioHoleStart);
  AcpiLayout layout{{0}, {0}, 1, {}};
  layout.pci = PciHost{0xe0000000, 255, 0xc0000000, 0x20000000, 16};
  uint8_t* rsdp = memory.Translate(WriteAcpiTables(memory, layout), 36);
  uint64_t xsdt_at, fadt_at, dsdt_at;
  std::memcpy(&xsdt_at, rsdp + 24, 8);
  std::memcpy(&fadt_at, memory.Translate(xsdt_at, 44) + 36, 8);
  std::memcpy(&dsdt_at, memory.Translate(fadt_at, 148) + 140, 8);
  uint32_t dsdt_len;
  std::memcpy(&dsdt_len, memory.Translate(dsdt_at, 8) + 4, 4);
  uint8_t* dsdt = memory.Translate(dsdt_at, dsdt_len);
  Bytes body(dsdt, dsdt + dsdt_len);
  auto contains = [&body](const Bytes& needle) {
    return std::search(body.begin(), body.end(), needle.begin(), needle.end()) != body.end();
  };
  EXPECT_TRUE(contains(NameString("_PRT")));
  // Slot 3, pin A (0) -> GSI 16 + 3; slot 3, pin B -> 16; slot 0x1f, pin D -> 16 + (31 + 3) % 4.
  EXPECT_TRUE(contains(Package({Integer(0x3ffff), Integer(0), Integer(0), Integer(19)})));
  EXPECT_TRUE(contains(Package({Integer(0x3ffff), Integer(1), Integer(0), Integer(16)})));
  EXPECT_TRUE(contains(Package({Integer(0x1fffff), Integer(3), Integer(0), Integer(18)})));
}

TEST("aml: a word bus-number descriptor is 16 bytes with its range and length") {
  Bytes d = WordBusNumber(0, 255);
  EXPECT_TRUE(d == Bytes({0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0xff, 0, 0, 0, 0x00, 0x01}));
  EXPECT_EQ(DWordMemory(0xc0000000, 0xdfffffff).size(), 26u);
}

}  // namespace
}  // namespace virga::acpi
