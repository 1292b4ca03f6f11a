// What a virtio device is, independent of the transport carrying it
// (virtio-mmio now, virtio-pci for the standard machine later).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "memory/guest_memory.h"
#include "state/byte_stream.h"
#include "virtio/queue.h"

namespace virga::virtio {

constexpr uint64_t kFeatureVersion1 = 1ULL << 32;
// Notification suppression by ring indices (2.7.10); the transport turns
// it on in each queue when the driver accepts it.
constexpr uint64_t kFeatureEventIdx = 1ULL << 29;
// Indirect descriptor tables (2.7.5.3); likewise turned on per queue.
constexpr uint64_t kFeatureIndirectDesc = 1ULL << 28;

constexpr uint32_t kDeviceIdNet = 1;
constexpr uint32_t kDeviceIdBlock = 2;
constexpr uint32_t kDeviceIdBalloon = 5;

// Handed to a device at activation: its queues and how to interrupt.
struct ActiveQueues {
  const GuestMemory* memory;
  std::vector<Queue>* queues;
  std::function<void(uint16_t queue)> signal_used;
  std::function<void()> signal_config;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  virtual uint64_t features() const = 0;
  virtual uint16_t queue_count() const = 0;
  virtual uint16_t queue_max_size() const = 0;
  virtual void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) = 0;
  virtual void WriteConfig(uint64_t offset, const uint8_t* data, uint32_t len) = 0;
  virtual void Activate(const ActiveQueues& active, uint64_t driver_features) = 0;
  // Called on the I/O thread when the driver notified `queue`.
  virtual void ProcessQueue(uint16_t queue) = 0;
  virtual void Reset() = 0;

  // Saved state (docs/snapshots.md), taken while the VM is paused. Chains
  // a device took from a queue and still holds (a frame half delivered,
  // the balloon's stats buffer) are not saved: the queue's saved index
  // points back at them, and the restored device takes them again.
  virtual uint16_t HeldChains(uint16_t queue) const { return 0; }
  // Device state beyond the transport's and the backend's (called after
  // Activate on restore). Most devices have none.
  virtual void SaveState(state::ByteWriter& out) const {}
  virtual void RestoreState(state::ByteReader& in) {}
};

}  // namespace virga::virtio
