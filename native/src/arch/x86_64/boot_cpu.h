// Step 3 of booting: the boot CPU's registers for the chosen entry, and the
// per-vCPU MSRs, FPU and LAPIC wiring every vCPU needs.
#pragma once

#include <cstdint>

#include "kvm/vcpu.h"
#include "memory/guest_memory.h"

namespace virga::x86 {

enum class BootEntry { kLinux64, kPvh };

// GDT and identity-mapped page tables in low guest memory (shared by all entries).
void WriteBootTables(const GuestMemory& memory);

void SetupBootCpu(kvm::Vcpu& vcpu, BootEntry entry, uint64_t entry_address);

// MSRs and FPU state every vCPU starts with.
void SetupVcpuMsrsAndFpu(kvm::Vcpu& vcpu);

// LINT0 as ExtINT and LINT1 as NMI, the wiring of a PC's local APICs.
void SetupLapicLints(kvm::Vcpu& vcpu);

}  // namespace virga::x86
