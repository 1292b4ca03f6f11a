// ACPI tables of every machine, as a hardware-reduced platform: RSDP, XSDT,
// FADT (sleep/reset registers, no PM blocks), MADT (LAPICs, IOAPIC, ISA
// override) and a DSDT describing COM1, the RTC, the power button's GED;
// on the microvm every virtio-mmio slot as LNRO0005 devices, which is how
// stock distro kernels (built without VIRTIO_MMIO_CMDLINE_DEVICES) find
// them; on q35 the PCIe host bridge (PNP0A08) and its MCFG.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "memory/guest_memory.h"

namespace virga::acpi {

struct VirtioMmioSlot {
  uint64_t base;
  uint64_t size;
  uint32_t gsi;
};

// A PCIe host bridge (q35): its ECAM window for the MCFG, and the windows
// its root bus decodes for the DSDT's _CRS.
struct PciHost {
  uint64_t ecam_base;
  uint8_t last_bus;  // the ECAM covers buses 0..last_bus, 1 MiB each
  uint32_t mmio_base;
  uint32_t mmio_size;
  // INTx: the first of the four IOAPIC pins the _PRT routes slots' pins to
  // (pin p of slot s: intx_first_gsi + (s + p) % 4); 0: no _PRT.
  uint32_t intx_first_gsi = 0;
};

struct AcpiLayout {
  std::vector<uint32_t> apic_ids;           // online vCPUs
  std::vector<uint32_t> possible_apic_ids;  // up to maxcpus; the MADT lists the rest as hot-pluggable
  uint32_t ioapic_id;
  std::vector<VirtioMmioSlot> virtio_slots;
  uint32_t power_button_gsi;  // Generic Event Device interrupt that means "power button pressed"
  // The VM generation ID's address and the interrupt that announces a new
  // one (0: no VMGenID device).
  uint64_t vmgenid_addr = 0;
  uint32_t vmgenid_gsi = 0;
  std::optional<PciHost> pci;
};

// Writes every table into guest memory; returns the RSDP's address.
uint64_t WriteAcpiTables(const GuestMemory& memory, const AcpiLayout& layout);

}  // namespace virga::acpi
