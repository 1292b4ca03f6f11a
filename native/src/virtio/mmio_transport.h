// virtio-mmio transport, version 2 (virtio 1.x, 4.2.2): the register
// layout and an interrupt line; the rest is virtio/transport.h's. The
// registers of the data path (InterruptStatus, InterruptAck, QueueNotify)
// take no lock.
#pragma once

#include <cstdint>
#include <memory>

#include "devices/bus.h"
#include "devices/irq.h"
#include "memory/guest_memory.h"
#include "virtio/transport.h"

namespace virga::virtio {

class MmioTransport : public BusDevice, public Transport {
 public:
  // Register each notify eventfd with KVM at base + kQueueNotifyOffset, datamatch = index.
  static constexpr uint64_t kQueueNotifyOffset = 0x50;

  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, const IrqLine* irq);

  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

 private:
  void Deliver(uint32_t bits, uint16_t queue) override;
  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);

  const IrqLine* irq_;
};

}  // namespace virga::virtio
