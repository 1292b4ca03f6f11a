// One vCPU fd and its shared kvm_run page.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "common/fd.h"
#include "kvm/flex_array_abi.h"

namespace virga::kvm {

struct MsrValue {
  uint32_t index;
  uint64_t value;
};

class Vcpu {
 public:
  Vcpu(UniqueFd fd, int mmap_size);
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  kvm_run* run_state() const { return run_; }
  // Returns 0, or -errno (EINTR/EAGAIN when kicked); other errors are for the caller to report.
  int Run();
  // The VM-wide coalesced-write ring, mapped with every vCPU's run page;
  // nullptr when the kernel's mapping has no room for it.
  void* coalesced_ring() const;

  kvm_regs GetRegs() const;
  void SetRegs(const kvm_regs& regs);
  kvm_sregs GetSregs() const;
  void SetSregs(const kvm_sregs& sregs);
  void SetFpu(const kvm_fpu& fpu);
  void SetMsrs(const std::vector<MsrValue>& msrs);
  void SetCpuid(const std::vector<kvm_cpuid_entry2>& entries);
  kvm_lapic_state GetLapic() const;
  void SetLapic(const kvm_lapic_state& lapic);
  kvm_mp_state GetMpState() const;
  void SetMpState(uint32_t state);

  // For saving and restoring a paused vCPU.
  XsaveRegion GetXsave() const;
  void SetXsave(const XsaveRegion& xsave);
  kvm_xcrs GetXcrs() const;
  void SetXcrs(const kvm_xcrs& xcrs);
  kvm_vcpu_events GetVcpuEvents() const;
  void SetVcpuEvents(const kvm_vcpu_events& events);
  kvm_debugregs GetDebugRegs() const;
  void SetDebugRegs(const kvm_debugregs& regs);
  // The values of `indices` this vCPU has; indices KVM refuses to read are
  // left out (some in the host's list exist only with features this guest's
  // CPUID does not expose).
  std::vector<MsrValue> GetMsrs(const std::vector<uint32_t>& indices) const;

 private:
  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  int mmap_size_ = 0;
};

}  // namespace virga::kvm
