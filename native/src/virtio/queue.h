// A split virtqueue (virtio 1.x, 2.6) read from and written to guest memory.
// Every index and address from the guest is checked: a bad descriptor ends
// that request, never the VMM.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "memory/guest_memory.h"
#include "state/byte_stream.h"

namespace virga::virtio {

struct DescriptorSegment {
  uint64_t address;
  uint32_t length;
  bool device_writable;
};

struct DescriptorChain {
  uint16_t head;
  std::vector<DescriptorSegment> segments;
};

class Queue {
 public:
  explicit Queue(uint16_t max_size) : max_size_(max_size), size_(max_size) {}

  // Transport-facing configuration (driver writes these before QueueReady).
  uint16_t max_size() const { return max_size_; }
  uint16_t size() const { return size_; }
  void set_size(uint16_t size) { size_ = size; }
  bool ready() const { return ready_; }
  void set_ready(bool ready) { ready_ = ready; }
  // VIRTIO_RING_F_EVENT_IDX negotiated: notifications both ways follow the
  // event indices in the rings instead of the flags (2.7.10).
  void set_event_idx(bool on) { event_idx_ = on; }
  // VIRTIO_F_INDIRECT_DESC negotiated: a chain may be one descriptor
  // naming a table of its descriptors (2.7.5.3), so a TSO frame of many
  // fragments takes one ring slot instead of up to nineteen.
  void set_indirect(bool on) { indirect_ = on; }
  uint64_t desc_table = 0;
  uint64_t avail_ring = 0;
  uint64_t used_ring = 0;

  // Valid for use: ready, power-of-two size within the maximum, rings in RAM.
  bool IsValid(const GuestMemory& memory) const;
  void Reset();

  // Next available chain, or nullopt when the driver has posted nothing new.
  // A malformed chain is returned with no segments (the caller completes it with 0).
  // With event indices, an empty ring first asks the driver to notify on its
  // next entry, so a device that drained the queue is always woken again.
  std::optional<DescriptorChain> Pop(const GuestMemory& memory);
  // Gives back the chain Pop just returned, untouched: the next Pop returns
  // it again (a backend that cannot take it now, e.g. a full tap).
  void Unpop() { --next_avail_; }
  void PushUsed(const GuestMemory& memory, uint16_t head, uint32_t written);
  // Whether to interrupt the driver for what was pushed since the last
  // call: no when it asked not to be (VIRTQ_AVAIL_F_NO_INTERRUPT, or its
  // used_event index not yet reached). Call once per batch.
  bool ShouldInterrupt(const GuestMemory& memory);

  // Saved state (docs/snapshots.md). `held` chains were taken and not yet
  // returned: the saved next_avail points back at them, so the restored
  // device takes them again.
  void SaveState(state::ByteWriter& out, uint16_t held) const;
  void RestoreState(state::ByteReader& in);

  uint16_t next_avail() const { return next_avail_; }
  // True once the driver published an available index more than the
  // queue's size ahead (the queue serves nothing more until a reset).
  bool broken() const { return broken_; }
  uint16_t next_used() const { return next_used_; }

 private:
  uint16_t max_size_;
  uint16_t size_;
  bool ready_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  bool broken_ = false;
  bool event_idx_ = false;
  bool indirect_ = false;
  // A bound on an indirect table, whose length the driver chooses: Linux
  // uses at most a few dozen entries.
  static constexpr uint32_t kMaxIndirectDescriptors = 1024;
  // The chain starting at `index` in a descriptor table of `entries`,
  // into chain->segments; left empty when it is malformed.
  static void WalkChain(const GuestMemory& memory, uint64_t table, uint32_t entries, uint32_t index,
                        DescriptorChain* chain);
  // The used index when the driver was last considered for an interrupt.
  uint16_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
};

}  // namespace virga::virtio
