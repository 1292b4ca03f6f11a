// A paused vCPU's architectural state (docs/snapshots.md): registers,
// special registers, FPU/XSAVE, XCRs, debug registers, MSRs (the TSC and
// kvmclock ones among them), LAPIC, MP state and pending events.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvm/vcpu.h"
#include "state/byte_stream.h"

namespace virga {

// `msr_indices`: the MSRs KVM can save (KVM_GET_MSR_INDEX_LIST).
void SaveVcpuState(const kvm::Vcpu& vcpu, const std::vector<uint32_t>& msr_indices, state::ByteWriter& out);
// In the order KVM needs: the LAPIC before the TSC deadline MSR it arms,
// events last. Throws (naming the part) when KVM refuses any of it.
void RestoreVcpuState(kvm::Vcpu& vcpu, state::ByteReader& in);
// One "name value" line per register, segment and MSR of a paused vCPU: a
// migration's two ends compare these (VIRGA_MIGRATION_DUMP, docs/migration.md).
std::string DescribeVcpuState(const kvm::Vcpu& vcpu, const std::vector<uint32_t>& msr_indices);

}  // namespace virga
