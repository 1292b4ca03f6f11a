#include "kvm/vcpu.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "common/error.h"
#include "kvm/flex_array_abi.h"

namespace virga::kvm {

Vcpu::Vcpu(UniqueFd fd, int mmap_size) : fd_(std::move(fd)), mmap_size_(mmap_size) {
  void* mapped = ::mmap(nullptr, static_cast<size_t>(mmap_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (mapped == MAP_FAILED) throw ErrnoError("mmap kvm_run");
  run_ = static_cast<kvm_run*>(mapped);
}

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, static_cast<size_t>(mmap_size_));
}

void* Vcpu::coalesced_ring() const {
  long page = ::sysconf(_SC_PAGESIZE);
  long offset = KVM_COALESCED_MMIO_PAGE_OFFSET * page;
  if (offset + page > mmap_size_) return nullptr;
  return reinterpret_cast<uint8_t*>(run_) + offset;
}

int Vcpu::Run() { return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? -errno : 0; }

kvm_regs Vcpu::GetRegs() const {
  kvm_regs regs{};
  if (::ioctl(fd_.get(), KVM_GET_REGS, &regs) < 0) throw ErrnoError("KVM_GET_REGS");
  return regs;
}

void Vcpu::SetRegs(const kvm_regs& regs) {
  if (::ioctl(fd_.get(), KVM_SET_REGS, &regs) < 0) throw ErrnoError("KVM_SET_REGS");
}

kvm_sregs Vcpu::GetSregs() const {
  kvm_sregs sregs{};
  if (::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0) throw ErrnoError("KVM_GET_SREGS");
  return sregs;
}

void Vcpu::SetSregs(const kvm_sregs& sregs) {
  if (::ioctl(fd_.get(), KVM_SET_SREGS, &sregs) < 0) throw ErrnoError("KVM_SET_SREGS");
}

void Vcpu::SetFpu(const kvm_fpu& fpu) {
  if (::ioctl(fd_.get(), KVM_SET_FPU, &fpu) < 0) throw ErrnoError("KVM_SET_FPU");
}

void Vcpu::SetMsrs(const std::vector<MsrValue>& msrs) {
  FlexBuffer<MsrsHeader, kvm_msr_entry> buffer(msrs.size());
  buffer.set_header({static_cast<uint32_t>(msrs.size()), 0});
  for (size_t i = 0; i < msrs.size(); ++i) {
    kvm_msr_entry entry{};
    entry.index = msrs[i].index;
    entry.data = msrs[i].value;
    buffer.set_entry(i, entry);
  }
  int written = ::ioctl(fd_.get(), kIoctlSetMsrs, buffer.data());
  if (written < 0) throw ErrnoError("KVM_SET_MSRS");
  // KVM stops at the first MSR it refuses and returns how many it set.
  if (static_cast<size_t>(written) != msrs.size()) {
    char hex[16];
    snprintf(hex, sizeof(hex), "0x%x", msrs[static_cast<size_t>(written)].index);
    throw VmmError(std::string("KVM_SET_MSRS: MSR ") + hex + " refused");
  }
}

void Vcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  FlexBuffer<CpuidHeader, kvm_cpuid_entry2> buffer(entries.size());
  buffer.set_header({static_cast<uint32_t>(entries.size()), 0});
  for (size_t i = 0; i < entries.size(); ++i) buffer.set_entry(i, entries[i]);
  if (::ioctl(fd_.get(), kIoctlSetCpuid2, buffer.data()) < 0) throw ErrnoError("KVM_SET_CPUID2");
}

kvm_lapic_state Vcpu::GetLapic() const {
  kvm_lapic_state lapic{};
  if (::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) throw ErrnoError("KVM_GET_LAPIC");
  return lapic;
}

void Vcpu::SetLapic(const kvm_lapic_state& lapic) {
  if (::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) throw ErrnoError("KVM_SET_LAPIC");
}

kvm_mp_state Vcpu::GetMpState() const {
  kvm_mp_state state{};
  if (::ioctl(fd_.get(), KVM_GET_MP_STATE, &state) < 0) throw ErrnoError("KVM_GET_MP_STATE");
  return state;
}

void Vcpu::SetMpState(uint32_t state) {
  kvm_mp_state mp{state};
  if (::ioctl(fd_.get(), KVM_SET_MP_STATE, &mp) < 0) throw ErrnoError("KVM_SET_MP_STATE");
}

XsaveRegion Vcpu::GetXsave() const {
  XsaveRegion xsave{};
  if (::ioctl(fd_.get(), kIoctlGetXsave, &xsave) < 0) throw ErrnoError("KVM_GET_XSAVE");
  return xsave;
}

void Vcpu::SetXsave(const XsaveRegion& xsave) {
  if (::ioctl(fd_.get(), kIoctlSetXsave, &xsave) < 0) throw ErrnoError("KVM_SET_XSAVE");
}

kvm_xcrs Vcpu::GetXcrs() const {
  kvm_xcrs xcrs{};
  if (::ioctl(fd_.get(), KVM_GET_XCRS, &xcrs) < 0) throw ErrnoError("KVM_GET_XCRS");
  return xcrs;
}

void Vcpu::SetXcrs(const kvm_xcrs& xcrs) {
  if (::ioctl(fd_.get(), KVM_SET_XCRS, &xcrs) < 0) throw ErrnoError("KVM_SET_XCRS");
}

kvm_vcpu_events Vcpu::GetVcpuEvents() const {
  kvm_vcpu_events events{};
  if (::ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &events) < 0) throw ErrnoError("KVM_GET_VCPU_EVENTS");
  return events;
}

void Vcpu::SetVcpuEvents(const kvm_vcpu_events& events) {
  if (::ioctl(fd_.get(), KVM_SET_VCPU_EVENTS, &events) < 0) throw ErrnoError("KVM_SET_VCPU_EVENTS");
}

kvm_debugregs Vcpu::GetDebugRegs() const {
  kvm_debugregs regs{};
  if (::ioctl(fd_.get(), KVM_GET_DEBUGREGS, &regs) < 0) throw ErrnoError("KVM_GET_DEBUGREGS");
  return regs;
}

void Vcpu::SetDebugRegs(const kvm_debugregs& regs) {
  if (::ioctl(fd_.get(), KVM_SET_DEBUGREGS, &regs) < 0) throw ErrnoError("KVM_SET_DEBUGREGS");
}

std::vector<MsrValue> Vcpu::GetMsrs(const std::vector<uint32_t>& indices) const {
  std::vector<MsrValue> out;
  size_t start = 0;
  while (start < indices.size()) {
    size_t count = indices.size() - start;
    FlexBuffer<MsrsHeader, kvm_msr_entry> buffer(count);
    buffer.set_header({static_cast<uint32_t>(count), 0});
    for (size_t i = 0; i < count; ++i) {
      kvm_msr_entry entry{};
      entry.index = indices[start + i];
      buffer.set_entry(i, entry);
    }
    int read = ::ioctl(fd_.get(), kIoctlGetMsrs, buffer.data());
    if (read < 0) throw ErrnoError("KVM_GET_MSRS");
    // KVM stops at the first index it refuses: keep what came, skip that one.
    for (int i = 0; i < read; ++i) out.push_back({buffer.entry(i).index, buffer.entry(i).data});
    start += static_cast<size_t>(read) + 1;
  }
  return out;
}

}  // namespace virga::kvm
