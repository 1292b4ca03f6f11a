#include "arch/x86_64/cpuid.h"

namespace virga::x86 {

namespace {

uint32_t BitsFor(uint32_t count) {
  uint32_t bits = 0;
  while ((1u << bits) < count) ++bits;
  return bits;
}

constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr uint32_t kLevelTypeSmt = 1;
constexpr uint32_t kLevelTypeCore = 2;

}  // namespace

uint32_t ApicIdFor(const CpuTopology& topology, uint32_t index) {
  uint32_t socket, core, thread;
  TopologyOf(topology, index, &socket, &core, &thread);
  uint32_t thread_bits = BitsFor(topology.threads);
  uint32_t core_bits = BitsFor(topology.cores);
  return (socket << (thread_bits + core_bits)) | (core << thread_bits) | thread;
}

void TopologyOf(const CpuTopology& topology, uint32_t index, uint32_t* socket, uint32_t* core, uint32_t* thread) {
  *thread = index % topology.threads;
  *core = (index / topology.threads) % topology.cores;
  *socket = index / (topology.threads * topology.cores);
}

std::vector<kvm_cpuid_entry2> CpuidForVcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                           const CpuTopology& topology, uint32_t index) {
  uint32_t apic_id = ApicIdFor(topology, index);
  uint32_t thread_bits = BitsFor(topology.threads);
  uint32_t core_bits = BitsFor(topology.cores);
  uint32_t logical_per_package = topology.threads * topology.cores;

  std::vector<kvm_cpuid_entry2> entries;
  entries.reserve(supported.size());
  for (kvm_cpuid_entry2 entry : supported) {
    switch (entry.function) {
      case 0x1:
        entry.ebx = (entry.ebx & 0x0000ffff) | (apic_id << 24) | ((logical_per_package & 0xff) << 16);
        entry.ecx |= kLeaf1EcxHypervisor;
        if (logical_per_package > 1) {
          entry.edx |= kLeaf1EdxHtt;
        } else {
          entry.edx &= ~kLeaf1EdxHtt;
        }
        break;
      case 0x4: {
        // Deterministic cache parameters: cores per package, and how many
        // threads share each cache level (L1/L2 per core, L3 per package).
        uint32_t cache_level = (entry.eax >> 5) & 0x7;
        uint32_t sharing = cache_level >= 3 ? logical_per_package : topology.threads;
        entry.eax &= 0x3ff;
        if (entry.eax & 0x1f) {
          entry.eax |= ((topology.cores - 1) << 26) | ((sharing - 1) << 14);
        }
        break;
      }
      case 0xb:
      case 0x1f:
        if (entry.index == 0) {
          entry.eax = thread_bits;
          entry.ebx = topology.threads;
          entry.ecx = (kLevelTypeSmt << 8) | entry.index;
        } else if (entry.index == 1) {
          entry.eax = thread_bits + core_bits;
          entry.ebx = logical_per_package;
          entry.ecx = (kLevelTypeCore << 8) | entry.index;
        } else {
          entry.eax = 0;
          entry.ebx = 0;
          entry.ecx = entry.index;
        }
        entry.edx = apic_id;
        break;
      case 0x6:
        // No power management the guest could act on.
        entry.ecx &= ~1u;  // no APERF/MPERF
        break;
      case 0xd:
        if (entry.index == 0) {
          // XSAVE area size: report the size for every supported feature, as
          // QEMU does; left at KVM's value (the size for XCR0 = x87 only)
          // Linux sees a mismatch with its own computation and warns.
          entry.ebx = entry.ecx;
        }
        break;
      case 0xa:
        // No PMU: a guest perf counter would have nothing real to count here.
        entry.eax = entry.ebx = entry.ecx = entry.edx = 0;
        break;
      default:
        break;
    }
    entries.push_back(entry);
  }
  return entries;
}

}  // namespace virga::x86
