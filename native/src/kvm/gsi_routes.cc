#include "kvm/gsi_routes.h"

#include <vector>

#include "common/error.h"

namespace virga::kvm {

namespace {
constexpr uint32_t kIoapicPins = 24;
constexpr uint32_t kPicLines = 16;
// KVM's own limit (KVM_MAX_IRQ_ROUTES on x86).
constexpr uint32_t kMaxGsi = 4096;

kvm_irq_routing_entry Irqchip(uint32_t gsi, uint32_t chip, uint32_t pin) {
  kvm_irq_routing_entry entry{};
  entry.gsi = gsi;
  entry.type = KVM_IRQ_ROUTING_IRQCHIP;
  entry.u.irqchip.irqchip = chip;
  entry.u.irqchip.pin = pin;
  return entry;
}
}  // namespace

uint32_t GsiRoutes::AllocateMsi() {
  std::lock_guard guard(lock_);
  if (!released_.empty()) {
    uint32_t gsi = *released_.begin();
    released_.erase(released_.begin());
    return gsi;
  }
  if (next_gsi_ >= kMaxGsi) throw VmmError("MSI: every GSI up to " + std::to_string(kMaxGsi) + " is taken");
  return next_gsi_++;
}

void GsiRoutes::SetMsi(uint32_t gsi, uint64_t address, uint32_t data) {
  std::lock_guard guard(lock_);
  auto it = msi_.find(gsi);
  if (address == 0) {
    if (it == msi_.end()) return;
    msi_.erase(it);
  } else {
    if (it != msi_.end() && it->second.address == address && it->second.data == data) return;
    msi_[gsi] = {address, data};
  }
  CommitLocked();
}

void GsiRoutes::ReleaseMsi(uint32_t gsi) {
  SetMsi(gsi, 0, 0);
  std::lock_guard guard(lock_);
  if (gsi >= kFirstMsiGsi && gsi < next_gsi_) released_.insert(gsi);
}

void GsiRoutes::CommitLocked() {
  std::vector<kvm_irq_routing_entry> entries;
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    entries.push_back(Irqchip(gsi, KVM_IRQCHIP_IOAPIC, gsi));
    if (gsi < kPicLines) entries.push_back(Irqchip(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
  }
  for (const auto& [gsi, message] : msi_) {
    kvm_irq_routing_entry entry{};
    entry.gsi = gsi;
    entry.type = KVM_IRQ_ROUTING_MSI;
    entry.u.msi.address_lo = static_cast<uint32_t>(message.address);
    entry.u.msi.address_hi = static_cast<uint32_t>(message.address >> 32);
    entry.u.msi.data = message.data;
    entries.push_back(entry);
  }
  vm_->SetGsiRouting(entries);
}

}  // namespace virga::kvm
