#include "kvm/system.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include "common/error.h"
#include "kvm/flex_array_abi.h"

namespace virga::kvm {

namespace {

struct RequiredCap {
  int id;
  const char* name;
};

// Everything the microvm relies on: in-kernel LAPIC/IOAPIC/PIC and PIT so
// interrupts never need a userspace round trip, irqfd/ioeventfd so the
// virtio data path stays off the vCPU threads, immediate_exit for race-free
// pause, and user memory slots.
constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
};

constexpr RequiredCap kOptionalCaps[] = {
    {KVM_CAP_SYNC_MMU, "KVM_CAP_SYNC_MMU"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER"},
    {KVM_CAP_X2APIC_API, "KVM_CAP_X2APIC_API"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_NR_MEMSLOTS, "KVM_CAP_NR_MEMSLOTS"},
    {KVM_CAP_SYNC_MMU, "KVM_CAP_SYNC_MMU"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
};

UniqueFd OpenDevKvm() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) throw VmmError("/dev/kvm not present: this host has no KVM (load kvm_intel or kvm_amd)");
    throw ErrnoError("cannot open /dev/kvm", err);
  }
  return UniqueFd(fd);
}

}  // namespace

System System::Open() {
  System system(OpenDevKvm());
  int version = system.ApiVersion();
  if (version != KVM_API_VERSION) {
    throw VmmError("unsupported KVM API version " + std::to_string(version) + " (need " +
                   std::to_string(KVM_API_VERSION) + ")");
  }
  for (const auto& cap : kRequiredCaps) {
    if (system.CheckExtension(cap.id) <= 0) throw VmmError(std::string(cap.name) + " missing");
  }
  return system;
}

int System::ApiVersion() const { return ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0); }

int System::CheckExtension(int capability) const {
  return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
}

int System::VcpuMmapSize() const {
  int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) throw ErrnoError("KVM_GET_VCPU_MMAP_SIZE");
  return size;
}

std::vector<kvm_cpuid_entry2> System::SupportedCpuid() const {
  // The kernel says E2BIG until the buffer is large enough.
  for (unsigned count = 64; count <= 4096; count *= 2) {
    FlexBuffer<CpuidHeader, kvm_cpuid_entry2> buffer(count);
    buffer.set_header({count, 0});
    if (::ioctl(fd_.get(), kIoctlGetSupportedCpuid, buffer.data()) == 0) {
      std::vector<kvm_cpuid_entry2> entries;
      for (uint32_t i = 0; i < buffer.header().nent; ++i) entries.push_back(buffer.entry(i));
      return entries;
    }
    if (errno != E2BIG) throw ErrnoError("KVM_GET_SUPPORTED_CPUID");
  }
  throw VmmError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

UniqueFd System::CreateVmFd() const {
  int fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  if (fd < 0) throw ErrnoError("KVM_CREATE_VM");
  return UniqueFd(fd);
}

std::map<std::string, bool> System::ProbeCapabilities(std::string* reason, int* api_version) {
  std::map<std::string, bool> caps;
  try {
    System system(OpenDevKvm());
    *api_version = system.ApiVersion();
    for (const auto& cap : kRequiredCaps) caps[cap.name] = system.CheckExtension(cap.id) > 0;
    for (const auto& cap : kOptionalCaps) caps[cap.name] = system.CheckExtension(cap.id) > 0;
  } catch (const std::exception& e) {
    *reason = e.what();
  }
  return caps;
}

std::vector<uint32_t> System::MsrIndexList() const {
  // First ask how many (E2BIG with the count filled in), then fetch them.
  std::vector<uint32_t> buffer(1 + 1, 0);
  if (::ioctl(fd_.get(), kIoctlGetMsrIndexList, buffer.data()) < 0 && errno != E2BIG) {
    throw ErrnoError("KVM_GET_MSR_INDEX_LIST");
  }
  uint32_t count = buffer[0];
  buffer.assign(1 + count, 0);
  buffer[0] = count;
  if (::ioctl(fd_.get(), kIoctlGetMsrIndexList, buffer.data()) < 0) throw ErrnoError("KVM_GET_MSR_INDEX_LIST");
  return std::vector<uint32_t>(buffer.begin() + 1, buffer.begin() + 1 + buffer[0]);
}

}  // namespace virga::kvm
