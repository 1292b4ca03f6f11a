// The VM's interrupt routing table (KVM_SET_GSI_ROUTING), for message
// signalled interrupts: each MSI-X vector gets a GSI of its own whose
// route is the message the guest programmed, and an irqfd on that GSI
// raises it from the device's I/O thread with no exit to userspace.
// Setting the table replaces the one KVM_CREATE_IRQCHIP made, so it
// always carries those routes too: GSIs 0-15 to the PICs and the IOAPIC,
// 16-23 to the IOAPIC, pin for pin.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>

#include "kvm/vm.h"

namespace virga::kvm {

class GsiRoutes {
 public:
  // The first GSI past the IOAPIC's pins.
  static constexpr uint32_t kFirstMsiGsi = 24;

  explicit GsiRoutes(Vm* vm) : vm_(vm) {}

  // A GSI for one vector, routed nowhere until SetMsi.
  uint32_t AllocateMsi();
  // The message `gsi` delivers; address 0 (a vector the guest has not
  // programmed, or one cleared by a reset) routes it nowhere, so its
  // irqfd raises nothing.
  void SetMsi(uint32_t gsi, uint64_t address, uint32_t data);
  // A hot-unplugged function's GSI: routed nowhere, and AllocateMsi's again
  // (its irqfd must be gone already).
  void ReleaseMsi(uint32_t gsi);

 private:
  struct Message {
    uint64_t address;
    uint32_t data;
  };
  void CommitLocked();

  Vm* vm_;
  std::mutex lock_;
  uint32_t next_gsi_ = kFirstMsiGsi;
  std::set<uint32_t> released_;
  std::map<uint32_t, Message> msi_;
};

}  // namespace virga::kvm
