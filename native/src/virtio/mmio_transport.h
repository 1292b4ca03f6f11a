// virtio-mmio transport, version 2 (virtio 1.x, 4.2.2): the register
// layout and a level-triggered interrupt line (devices/level_irq.h), up
// while InterruptStatus is non-zero; the rest is virtio/transport.h's.
// The registers of the data path (InterruptStatus, InterruptAck,
// QueueNotify) take no lock.
#pragma once

#include <cstdint>
#include <memory>

#include "devices/bus.h"
#include "devices/irq.h"
#include "devices/level_irq.h"
#include "memory/guest_memory.h"
#include "virtio/transport.h"

namespace virga::virtio {

class MmioTransport : public BusDevice, public Transport {
 public:
  // Register each notify eventfd with KVM at base + kQueueNotifyOffset, datamatch = index.
  static constexpr uint64_t kQueueNotifyOffset = 0x50;

  // `irq` is registered with KVM as a resample irqfd; the board calls
  // LineLowered whenever its resample fd fires.
  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, const IrqLine* irq);

  // KVM lowered the line (the guest's EOI), or KVM's state of it is new
  // (after RestoreState): up again while the interrupt status is set.
  void LineLowered() { line_.Lowered(); }

  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

 private:
  void Deliver(uint32_t bits, uint16_t queue) override;
  void ResetRegistersLocked() override;
  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);

  LevelIrq line_;
};

}  // namespace virga::virtio
