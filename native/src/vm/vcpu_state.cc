#include "vm/vcpu_state.h"

#include "common/error.h"

namespace virga {

namespace {
// IA32_TSC_DEADLINE: only meaningful once the LAPIC's timer is in
// TSC-deadline mode, so it is written after the LAPIC.
constexpr uint32_t kMsrTscDeadline = 0x6e0;
}  // namespace

void SaveVcpuState(const kvm::Vcpu& vcpu, const std::vector<uint32_t>& msr_indices, state::ByteWriter& out) {
  out.Pod(vcpu.GetRegs());
  out.Pod(vcpu.GetSregs());
  out.Pod(vcpu.GetXsave());
  out.Pod(vcpu.GetXcrs());
  out.Pod(vcpu.GetDebugRegs());
  std::vector<kvm::MsrValue> msrs = vcpu.GetMsrs(msr_indices);
  out.U32(static_cast<uint32_t>(msrs.size()));
  for (const kvm::MsrValue& msr : msrs) {
    out.U32(msr.index);
    out.U64(msr.value);
  }
  out.Pod(vcpu.GetLapic());
  out.U32(vcpu.GetMpState().mp_state);
  out.Pod(vcpu.GetVcpuEvents());
}

void RestoreVcpuState(kvm::Vcpu& vcpu, state::ByteReader& in) {
  auto regs = in.Pod<kvm_regs>();
  auto sregs = in.Pod<kvm_sregs>();
  auto xsave = in.Pod<kvm::XsaveRegion>();
  auto xcrs = in.Pod<kvm_xcrs>();
  auto debug = in.Pod<kvm_debugregs>();
  uint32_t count = in.Count(12);
  std::vector<kvm::MsrValue> msrs, deadline;
  for (uint32_t i = 0; i < count; ++i) {
    kvm::MsrValue msr;
    msr.index = in.U32();
    msr.value = in.U64();
    (msr.index == kMsrTscDeadline ? deadline : msrs).push_back(msr);
  }
  auto lapic = in.Pod<kvm_lapic_state>();
  uint32_t mp_state = in.U32();
  auto events = in.Pod<kvm_vcpu_events>();
  in.ExpectEnd();

  vcpu.SetSregs(sregs);
  vcpu.SetRegs(regs);
  vcpu.SetXsave(xsave);
  vcpu.SetXcrs(xcrs);
  vcpu.SetDebugRegs(debug);
  vcpu.SetMsrs(msrs);
  vcpu.SetLapic(lapic);
  if (!deadline.empty()) vcpu.SetMsrs(deadline);
  vcpu.SetMpState(mp_state);
  // The pending NMI and SIPI vector travel too, not only what GET marked.
  events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
  vcpu.SetVcpuEvents(events);
}

}  // namespace virga
