// What every virtio transport shares (virtio 1.x, 2 and 3): the device
// status and its state machine, feature negotiation, the queues the
// driver sets up and their notification eventfds, activation and reset,
// the interrupt status bits, and the saved state. A transport adds only
// its register layout (virtio-mmio's, vm/mmio_transport.h; virtio-pci's
// capabilities, virtio/pci_transport.h) and how an interrupt reaches the
// guest (an interrupt line; an MSI-X vector).
//
// Queue notifications arrive on per-queue eventfds (KVM ioeventfds)
// served by the device's own I/O thread; a notify write that reaches the
// transport instead (no ioeventfd matched) signals the same eventfd, so a
// vCPU never runs device I/O.
//
// Locking: `lock_` guards what the driver sets up and is never held while
// a device processes its queues, so a vCPU reading a register never waits
// for disk or network I/O. The interrupt status and notifications take no
// lock at all.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/fd.h"
#include "io/event_loop.h"
#include "memory/guest_memory.h"
#include "state/byte_stream.h"
#include "virtio/device.h"

namespace virga::virtio {

class Transport {
 public:
  // Interrupt status bits (the same on virtio-mmio and virtio-pci's ISR).
  static constexpr uint32_t kInterruptUsedBuffer = 1;
  static constexpr uint32_t kInterruptConfigChange = 2;

  Transport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory);
  virtual ~Transport() = default;

  // One eventfd per queue, for the board to register as KVM ioeventfds.
  const std::vector<UniqueFd>& notify_fds() const { return notify_fds_; }
  VirtioDevice& device() const { return *device_; }
  // On the device's I/O thread, after queue's eventfd fired.
  void OnNotify(uint16_t queue);
  // Has `loop` (the device's I/O thread) serve every queue's eventfd.
  void ServeNotifications(EventLoop& loop);
  // Tells the driver the device configuration changed (e.g. a disk appeared).
  void SignalConfigChange();
  // Machine reset: back to the state before the driver found the device.
  void Reset();
  // Status, features, queues and the device's own state (the VM is paused).
  void SaveState(state::ByteWriter& out);
  // Into a transport just created, before the vCPUs run; an activated
  // device is activated again with the saved features.
  void RestoreState(state::ByteReader& in);
  // After a restore: serve what the driver posted before the snapshot.
  void KickQueues();

 protected:
  static constexpr uint32_t kStatusDriverOk = 4;
  static constexpr uint32_t kStatusFeaturesOk = 8;
  static constexpr uint32_t kStatusNeedsReset = 64;

  // Raises the interrupt for `bits` (used buffers of `queue`, or a
  // configuration change) the transport's way; the status bits are set.
  virtual void Deliver(uint32_t bits, uint16_t queue) = 0;
  // The transport's own registers back to their reset values (lock_ held).
  virtual void ResetRegistersLocked() {}

  // A 64-bit register written as two 32-bit halves.
  static void SetLow(uint64_t* field, uint32_t value) { *field = (*field & ~0xffffffffULL) | value; }
  static void SetHigh(uint64_t* field, uint32_t value) { *field = (*field & 0xffffffffULL) | (uint64_t{value} << 32); }

  // The rest is called with lock_ held.
  uint32_t DeviceFeatureWord() const;
  void WriteDriverFeatureWord(uint32_t value);
  Queue* SelectedQueue();
  // The selected queue, while its setup may still change (before DRIVER_OK).
  Queue* WritableQueue();
  void SetStatus(uint32_t status);
  void ResetLocked();

  // A notify write the kernel did not take as an ioeventfd.
  void NotifyFromGuest(uint32_t queue);
  uint32_t TakeInterruptStatus() { return interrupt_status_.exchange(0, std::memory_order_acq_rel); }
  uint32_t interrupt_status() const { return interrupt_status_.load(std::memory_order_acquire); }
  void AcknowledgeInterrupt(uint32_t bits) { interrupt_status_.fetch_and(~bits, std::memory_order_acq_rel); }
  uint32_t config_generation() const { return config_generation_.load(std::memory_order_acquire); }
  bool activated() const { return activated_.load(std::memory_order_acquire); }

  const std::shared_ptr<VirtioDevice> device_;
  const GuestMemory* const memory_;

  std::mutex lock_;
  std::vector<Queue> queues_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;

 private:
  void RaiseInterrupt(uint32_t bits, uint16_t queue);
  ActiveQueues MakeActiveQueues();

  std::vector<UniqueFd> notify_fds_;
  std::atomic<uint32_t> interrupt_status_{0};
  std::atomic<uint32_t> config_generation_{0};
  std::atomic<bool> activated_{false};
};

}  // namespace virga::virtio
