// Intel MultiProcessor Specification 1.4 table in the EBDA, so kernels find
// every vCPU, the IOAPIC and the ISA interrupt wiring without ACPI.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace virga::x86 {

void WriteMpTable(const GuestMemory& memory, const std::vector<uint32_t>& apic_ids, uint32_t ioapic_id);

}  // namespace virga::x86
