// CPUID for each vCPU: KVM's supported set, with the APIC id and the
// topology leaves rewritten so the guest sees exactly -smp's
// sockets/cores/threads.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace virga::x86 {

struct CpuTopology {
  uint32_t sockets;
  uint32_t cores;    // per socket
  uint32_t threads;  // per core
};

// APIC ids pack thread, core and socket into bit fields of the widths a
// guest derives from leaf 0xB, so ids are not always consecutive.
uint32_t ApicIdFor(const CpuTopology& topology, uint32_t index);
void TopologyOf(const CpuTopology& topology, uint32_t index, uint32_t* socket, uint32_t* core, uint32_t* thread);

std::vector<kvm_cpuid_entry2> CpuidForVcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                           const CpuTopology& topology, uint32_t index);

}  // namespace virga::x86
