#include "vm/vcpu_state.h"

#include <cstring>
#include <utility>

#include "common/error.h"
#include "common/hex.h"

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

namespace {
std::string Segment(const char* name, const kvm_segment& s) {
  return std::string(name) + " sel=" + Hex(s.selector) + " base=" + Hex(s.base) + " limit=" + Hex(s.limit) +
         " type=" + Hex(s.type) + " dpl=" + std::to_string(s.dpl) + " present=" + std::to_string(s.present) +
         " l=" + std::to_string(s.l) + " db=" + std::to_string(s.db) + " s=" + std::to_string(s.s) +
         " g=" + std::to_string(s.g) + " unusable=" + std::to_string(s.unusable) + "\n";
}
}  // namespace

std::string DescribeVcpuState(const kvm::Vcpu& vcpu, const std::vector<uint32_t>& msr_indices) {
  kvm_regs r = vcpu.GetRegs();
  kvm_sregs s = vcpu.GetSregs();
  std::string out;
  auto line = [&out](const std::string& name, uint64_t value) { out += name + " " + Hex(value) + "\n"; };
  const std::pair<const char*, uint64_t> gprs[] = {
      {"rip", r.rip}, {"rflags", r.rflags}, {"rsp", r.rsp}, {"rbp", r.rbp}, {"rax", r.rax}, {"rbx", r.rbx},
      {"rcx", r.rcx}, {"rdx", r.rdx},       {"rsi", r.rsi}, {"rdi", r.rdi}, {"r8", r.r8},   {"r9", r.r9},
      {"r10", r.r10}, {"r11", r.r11},       {"r12", r.r12}, {"r13", r.r13}, {"r14", r.r14}, {"r15", r.r15}};
  for (const auto& [name, value] : gprs) line(name, value);
  kvm_debugregs d = vcpu.GetDebugRegs();
  for (size_t i = 0; i < 4; ++i) line("dr" + std::to_string(i), d.db[i]);
  line("dr6", d.dr6);
  line("dr7", d.dr7);
  out += Segment("cs", s.cs) + Segment("ds", s.ds) + Segment("es", s.es) + Segment("fs", s.fs) + Segment("gs", s.gs) +
         Segment("ss", s.ss) + Segment("tr", s.tr) + Segment("ldt", s.ldt);
  line("gdt.base", s.gdt.base);
  line("idt.base", s.idt.base);
  line("cr0", s.cr0);
  line("cr2", s.cr2);
  line("cr3", s.cr3);
  line("cr4", s.cr4);
  line("cr8", s.cr8);
  line("efer", s.efer);
  line("apic_base", s.apic_base);
  for (size_t i = 0; i < 4; ++i) line("interrupt_bitmap" + std::to_string(i), s.interrupt_bitmap[i]);
  for (const kvm::MsrValue& msr : vcpu.GetMsrs(msr_indices)) line("msr" + Hex(msr.index), msr.value);
  kvm_vcpu_events e = vcpu.GetVcpuEvents();
  line("event.exception", (uint64_t{e.exception.injected} << 16) | (uint64_t{e.exception.nr} << 8) |
                              e.exception.has_error_code);
  line("event.exception.error_code", e.exception.error_code);
  line("event.interrupt", (uint64_t{e.interrupt.injected} << 16) | (uint64_t{e.interrupt.nr} << 8) |
                              e.interrupt.soft);
  line("event.interrupt.shadow", e.interrupt.shadow);
  line("event.nmi", (uint64_t{e.nmi.injected} << 16) | (uint64_t{e.nmi.pending} << 8) | e.nmi.masked);
  line("mp_state", vcpu.GetMpState().mp_state);
  kvm::XsaveRegion xsave = vcpu.GetXsave();
  for (size_t i = 0; i + 1 < 1024; i += 2) {
    uint64_t word = xsave.region[i] | (uint64_t{xsave.region[i + 1]} << 32);
    if (word != 0) line("xsave+" + Hex(i * 4), word);
  }
  kvm_lapic_state lapic = vcpu.GetLapic();
  for (size_t offset = 0; offset < sizeof(lapic.regs); offset += 16) {
    // The timer's current count runs on by itself.
    if (offset == 0x390) continue;
    uint32_t value;
    std::memcpy(&value, lapic.regs + offset, sizeof(value));
    line("lapic+" + Hex(offset), value);
  }
  kvm_xcrs x = vcpu.GetXcrs();
  for (uint32_t i = 0; i < x.nr_xcrs; ++i) line("xcr" + std::to_string(x.xcrs[i].xcr), x.xcrs[i].value);
  return out;
}

}  // namespace virga
