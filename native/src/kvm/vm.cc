#include "kvm/vm.h"

#include <sys/ioctl.h>

#include <string>

#include "common/error.h"
#include "kvm/flex_array_abi.h"

namespace virga::kvm {

Vm::Vm(const System& system) : fd_(system.CreateVmFd()) {}

void Vm::SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size, void* host, uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guest_phys;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    throw ErrnoError("KVM_SET_USER_MEMORY_REGION slot " + std::to_string(slot));
  }
}

void Vm::GetDirtyLog(uint32_t slot, std::vector<uint64_t>* bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap->data();
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) throw ErrnoError("KVM_GET_DIRTY_LOG slot " + std::to_string(slot));
}

void Vm::SetTssAddr(uint64_t address) {
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address)) < 0) {
    throw ErrnoError("KVM_SET_TSS_ADDR");
  }
}

void Vm::SetIdentityMapAddr(uint64_t address) {
  if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &address) < 0) {
    throw ErrnoError("KVM_SET_IDENTITY_MAP_ADDR");
  }
}

void Vm::CreateIrqchip() {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) throw ErrnoError("KVM_CREATE_IRQCHIP");
}

void Vm::CreatePit2() {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) throw ErrnoError("KVM_CREATE_PIT2");
}

void Vm::RegisterIrqfd(int event_fd, uint32_t gsi) {
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(event_fd);
  request.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &request) < 0) throw ErrnoError("KVM_IRQFD gsi " + std::to_string(gsi));
}

void Vm::RegisterResampleIrqfd(int event_fd, uint32_t gsi, int resample_fd) {
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(event_fd);
  request.gsi = gsi;
  request.flags = KVM_IRQFD_FLAG_RESAMPLE;
  request.resamplefd = static_cast<uint32_t>(resample_fd);
  if (::ioctl(fd_.get(), KVM_IRQFD, &request) < 0) {
    throw ErrnoError("KVM_IRQFD with a resample fd, gsi " + std::to_string(gsi));
  }
}

void Vm::UnregisterIrqfd(int event_fd, uint32_t gsi) {
  kvm_irqfd request{};
  request.fd = static_cast<uint32_t>(event_fd);
  request.gsi = gsi;
  request.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IRQFD, &request) < 0) throw ErrnoError("KVM_IRQFD deassign gsi " + std::to_string(gsi));
}

void Vm::SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) {
  FlexBuffer<RoutingHeader, kvm_irq_routing_entry> table(entries.size());
  table.set_header({static_cast<uint32_t>(entries.size()), 0});
  for (size_t i = 0; i < entries.size(); ++i) table.set_entry(i, entries[i]);
  if (::ioctl(fd_.get(), kIoctlSetGsiRouting, table.data()) < 0) {
    throw ErrnoError("KVM_SET_GSI_ROUTING (" + std::to_string(entries.size()) + " routes)");
  }
}

namespace {
kvm_ioeventfd MakeIoeventfd(int event_fd, uint64_t address, uint32_t len, uint64_t datamatch, bool pio) {
  kvm_ioeventfd request{};
  request.fd = event_fd;
  request.addr = address;
  request.len = len;
  request.datamatch = datamatch;
  request.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (pio ? KVM_IOEVENTFD_FLAG_PIO : 0);
  return request;
}
}  // namespace

void Vm::RegisterIoeventfd(int event_fd, uint64_t address, uint32_t len, uint64_t datamatch, bool pio) {
  kvm_ioeventfd request = MakeIoeventfd(event_fd, address, len, datamatch, pio);
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &request) < 0) throw ErrnoError("KVM_IOEVENTFD");
}

void Vm::UnregisterIoeventfd(int event_fd, uint64_t address, uint32_t len, uint64_t datamatch, bool pio) {
  kvm_ioeventfd request = MakeIoeventfd(event_fd, address, len, datamatch, pio);
  request.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &request) < 0) throw ErrnoError("KVM_IOEVENTFD deassign");
}

void Vm::RegisterCoalescedZone(uint64_t address, uint32_t size, bool pio) {
  kvm_coalesced_mmio_zone zone{};
  zone.addr = address;
  zone.size = size;
  zone.pio = pio ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_REGISTER_COALESCED_MMIO, &zone) < 0) throw ErrnoError("KVM_REGISTER_COALESCED_MMIO");
}

UniqueFd Vm::CreateVcpuFd(uint32_t vcpu_id) {
  int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(vcpu_id));
  if (fd < 0) throw ErrnoError("KVM_CREATE_VCPU " + std::to_string(vcpu_id));
  return UniqueFd(fd);
}

kvm_irqchip Vm::GetIrqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) throw ErrnoError("KVM_GET_IRQCHIP");
  return chip;
}

void Vm::SetIrqchip(const kvm_irqchip& chip) {
  kvm_irqchip copy = chip;
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &copy) < 0) throw ErrnoError("KVM_SET_IRQCHIP");
}

kvm_pit_state2 Vm::GetPit2() const {
  kvm_pit_state2 state{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &state) < 0) throw ErrnoError("KVM_GET_PIT2");
  return state;
}

void Vm::SetPit2(const kvm_pit_state2& state) {
  kvm_pit_state2 copy = state;
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &copy) < 0) throw ErrnoError("KVM_SET_PIT2");
}

kvm_clock_data Vm::GetClock() const {
  kvm_clock_data clock{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) throw ErrnoError("KVM_GET_CLOCK");
  return clock;
}

void Vm::SetClock(const kvm_clock_data& clock) {
  kvm_clock_data value{};
  value.clock = clock.clock;
  if (::ioctl(fd_.get(), KVM_SET_CLOCK, &value) < 0) throw ErrnoError("KVM_SET_CLOCK");
}

}  // namespace virga::kvm
