// The VM fd: memory slots, in-kernel irqchip and PIT, irqfd, ioeventfd, vCPU creation.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "common/fd.h"
#include "kvm/system.h"

namespace virga::kvm {

class Vm {
 public:
  explicit Vm(const System& system);

  int fd() const { return fd_.get(); }
  void SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size, void* host, uint32_t flags);
  // The slot's pages the guest wrote since the last call (a bit per page),
  // with KVM_MEM_LOG_DIRTY_PAGES on; KVM write-protects them again.
  void GetDirtyLog(uint32_t slot, std::vector<uint64_t>* bitmap);
  void SetTssAddr(uint64_t address);
  void SetIdentityMapAddr(uint64_t address);
  void CreateIrqchip();
  void CreatePit2();
  // Interrupt line `gsi` raised whenever `event_fd` is written; no exit to userspace.
  void RegisterIrqfd(int event_fd, uint32_t gsi);
  // A level-triggered line (INTx): writing `event_fd` asserts `gsi` until
  // the guest's EOI, when KVM deasserts it and signals `resample_fd`, so the
  // device can assert it again while its interrupt is still pending.
  void RegisterResampleIrqfd(int event_fd, uint32_t gsi, int resample_fd);
  void UnregisterIrqfd(int event_fd, uint32_t gsi);
  // Replaces the whole GSI routing table (kvm/gsi_routes.h keeps it).
  void SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries);
  // A guest write of `datamatch` (len bytes) at `address` signals `event_fd`
  // inside the kernel instead of exiting to the vCPU thread.
  void RegisterIoeventfd(int event_fd, uint64_t address, uint32_t len, uint64_t datamatch, bool pio);
  void UnregisterIoeventfd(int event_fd, uint64_t address, uint32_t len, uint64_t datamatch, bool pio);
  // Guest writes into [address, address + size) are queued in the ring page
  // instead of exiting; reads still exit. Userspace replays the queue.
  void RegisterCoalescedZone(uint64_t address, uint32_t size, bool pio);
  UniqueFd CreateVcpuFd(uint32_t vcpu_id);
  // chip_id: KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC.
  kvm_irqchip GetIrqchip(uint32_t chip_id) const;
  void SetIrqchip(const kvm_irqchip& chip);
  kvm_pit_state2 GetPit2() const;
  void SetPit2(const kvm_pit_state2& state);
  // The kvmclock's base, so a restored guest's clock carries on.
  kvm_clock_data GetClock() const;
  void SetClock(const kvm_clock_data& clock);

 private:
  UniqueFd fd_;
};

}  // namespace virga::kvm
