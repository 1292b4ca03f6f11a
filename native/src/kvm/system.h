// The /dev/kvm system fd: API version, capabilities, supported CPUID.
#pragma once

#include <linux/kvm.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/fd.h"

namespace virga::kvm {

class System {
 public:
  // Opens /dev/kvm and checks the API version and every capability the VMM
  // depends on; the error names what is missing.
  static System Open();

  int fd() const { return fd_.get(); }
  int ApiVersion() const;
  int CheckExtension(int capability) const;
  int VcpuMmapSize() const;
  std::vector<kvm_cpuid_entry2> SupportedCpuid() const;
  // The MSRs KVM can save and restore (KVM_GET_MSR_INDEX_LIST).
  std::vector<uint32_t> MsrIndexList() const;
  UniqueFd CreateVmFd() const;

  // Capabilities by name, for host facts; never throws.
  static std::map<std::string, bool> ProbeCapabilities(std::string* reason, int* api_version);

 private:
  explicit System(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace virga::kvm
