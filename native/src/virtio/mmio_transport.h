// virtio-mmio transport, version 2 (virtio 1.x, 4.2.2). Queue notifications
// arrive on per-queue eventfds (KVM ioeventfds) served by the device's own
// I/O thread; a direct write to QueueNotify (no ioeventfd match) signals the
// same eventfd, so a vCPU never runs device I/O.
//
// Locking: `lock_` guards the registers a driver sets up and is never held
// while a device processes its queues, so a vCPU reading a register never
// waits for disk or network I/O. The registers of the data path
// (InterruptStatus, InterruptAck, QueueNotify) take no lock at all.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/fd.h"
#include "devices/bus.h"
#include "devices/irq.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"

namespace virga::virtio {

class MmioTransport : public BusDevice {
 public:
  static constexpr uint64_t kQueueNotifyOffset = 0x50;

  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, const IrqLine* irq);

  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

  // One eventfd per queue; register each with KVM at base + kQueueNotifyOffset, datamatch = index.
  const std::vector<UniqueFd>& notify_fds() const { return notify_fds_; }
  VirtioDevice& device() const { return *device_; }
  // On the device's I/O thread, after queue's eventfd fired.
  void OnNotify(uint16_t queue);
  // Tells the driver the device configuration changed (e.g. a disk appeared).
  void SignalConfigChange();
  // Machine reset: back to the state before the driver found the device.
  void Reset();
  // Registers, queues and the device's own state (the VM is paused).
  void SaveState(state::ByteWriter& out);
  // Into a transport just created, before the vCPUs run; an activated
  // device is activated again with the saved features.
  void RestoreState(state::ByteReader& in);
  // After a restore: serve what the driver posted before the snapshot.
  void KickQueues();

 private:
  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);
  void SetStatus(uint32_t status);
  void ResetLocked();
  Queue* SelectedQueue();
  void RaiseInterrupt(uint32_t bits);

  std::shared_ptr<VirtioDevice> device_;
  const GuestMemory* memory_;
  const IrqLine* irq_;
  std::vector<UniqueFd> notify_fds_;

  std::mutex lock_;
  std::vector<Queue> queues_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  std::atomic<uint32_t> interrupt_status_{0};
  std::atomic<uint32_t> config_generation_{0};
  std::atomic<bool> activated_{false};
};

}  // namespace virga::virtio
