#include "virtio/queue.h"

#include <atomic>

namespace virga::virtio {

namespace {
constexpr uint16_t kDescFlagNext = 1;
constexpr uint16_t kDescFlagWrite = 2;
constexpr uint16_t kDescFlagIndirect = 4;
constexpr uint16_t kAvailFlagNoInterrupt = 1;

struct __attribute__((packed)) Descriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};
}  // namespace

bool Queue::IsValid(const GuestMemory& memory) const {
  if (!ready_ || size_ == 0 || size_ > max_size_ || (size_ & (size_ - 1)) != 0) return false;
  uint64_t desc_bytes = 16ULL * size_;
  uint64_t avail_bytes = 6 + 2ULL * size_;
  uint64_t used_bytes = 6 + 8ULL * size_;
  if (memory.Translate(desc_table, desc_bytes) == nullptr || memory.Translate(avail_ring, avail_bytes) == nullptr ||
      memory.Translate(used_ring, used_bytes) == nullptr) {
    return false;
  }
  // The device writes the used ring (avail_event included): laid over the
  // available ring or the descriptors, those writes would rewrite what the
  // driver posted, e.g. an available index that then runs ahead of the
  // device forever, looping its I/O thread.
  auto apart = [](uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) { return a + a_len <= b || b + b_len <= a; };
  return apart(desc_table, desc_bytes, avail_ring, avail_bytes) && apart(desc_table, desc_bytes, used_ring, used_bytes) &&
         apart(avail_ring, avail_bytes, used_ring, used_bytes);
}

void Queue::Reset() {
  ready_ = false;
  size_ = max_size_;
  desc_table = avail_ring = used_ring = 0;
  next_avail_ = next_used_ = 0;
  broken_ = false;
  event_idx_ = false;
  indirect_ = false;
  signalled_used_ = 0;
  signalled_used_valid_ = false;
}

std::optional<DescriptorChain> Queue::Pop(const GuestMemory& memory) {
  uint16_t avail_idx = 0;
  if (broken_ || !memory.ReadObj(avail_ring + 2, &avail_idx)) return std::nullopt;
  if (avail_idx == next_avail_) {
    if (!event_idx_) return std::nullopt;
    // avail_event (after the used ring's entries): the driver notifies once
    // it publishes the entry at this index. Then look again, since the
    // driver may have added one before it could see the new avail_event.
    memory.WriteObj<uint16_t>(used_ring + 4 + 8ULL * size_, next_avail_);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!memory.ReadObj(avail_ring + 2, &avail_idx) || avail_idx == next_avail_) return std::nullopt;
  }
  // A driver never has more than the queue's size outstanding; an index
  // further ahead is corrupt, and following it would hand the same ring
  // slots out again. The queue stops until the driver resets the device.
  if (static_cast<uint16_t>(avail_idx - next_avail_) > size_) {
    broken_ = true;
    return std::nullopt;
  }
  // Read the ring entry only after seeing the index the driver published.
  std::atomic_thread_fence(std::memory_order_acquire);
  uint16_t head = 0;
  memory.ReadObj(avail_ring + 4 + 2ULL * (next_avail_ % size_), &head);
  ++next_avail_;

  DescriptorChain chain{head, {}};
  if (head >= size_) return chain;
  Descriptor first{};
  if (!memory.ReadObj(desc_table + 16ULL * head, &first)) return chain;
  if (first.flags & kDescFlagIndirect) {
    // One descriptor naming a table of the chain's descriptors (2.7.5.3):
    // only when negotiated, never chained on, never nested.
    if (!indirect_ || (first.flags & kDescFlagNext) || first.length == 0 || first.length % 16 != 0 ||
        first.length / 16 > kMaxIndirectDescriptors) {
      return chain;
    }
    WalkChain(memory, first.address, first.length / 16, 0, &chain);
  } else {
    WalkChain(memory, desc_table, size_, head, &chain);
  }
  return chain;
}

void Queue::WalkChain(const GuestMemory& memory, uint64_t table, uint32_t entries, uint32_t index,
                      DescriptorChain* chain) {
  // A chain longer than its table is a loop the driver built to hang us.
  for (uint32_t steps = 0; steps < entries; ++steps) {
    Descriptor desc{};
    if (!memory.ReadObj(table + 16ULL * index, &desc) || (desc.flags & kDescFlagIndirect)) break;
    chain->segments.push_back({desc.address, desc.length, (desc.flags & kDescFlagWrite) != 0});
    if (!(desc.flags & kDescFlagNext)) return;
    if (desc.next >= entries) break;
    index = desc.next;
  }
  chain->segments.clear();
}

void Queue::PushUsed(const GuestMemory& memory, uint16_t head, uint32_t written) {
  uint64_t slot = used_ring + 4 + 8ULL * (next_used_ % size_);
  memory.WriteObj<uint32_t>(slot, head);
  memory.WriteObj<uint32_t>(slot + 4, written);
  ++next_used_;
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  memory.WriteObj<uint16_t>(used_ring + 2, next_used_);
}

bool Queue::ShouldInterrupt(const GuestMemory& memory) {
  // The used entries must be visible before the driver's suppression
  // state is read, or an interrupt it still needs could be skipped.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx_) {
    uint16_t flags = 0;
    memory.ReadObj(avail_ring, &flags);
    return !(flags & kAvailFlagNoInterrupt);
  }
  bool valid = signalled_used_valid_;
  uint16_t old_used = signalled_used_;
  signalled_used_ = next_used_;
  signalled_used_valid_ = true;
  if (!valid) return true;
  // used_event (after the avail ring's entries): interrupt once the used
  // index passes it, i.e. when it lies in [old_used, next_used_).
  uint16_t used_event = 0;
  memory.ReadObj(avail_ring + 4 + 2ULL * size_, &used_event);
  return static_cast<uint16_t>(next_used_ - used_event - 1) < static_cast<uint16_t>(next_used_ - old_used);
}

void Queue::SaveState(state::ByteWriter& out, uint16_t held) const {
  out.U16(size_);
  out.Bool(ready_);
  out.U64(desc_table);
  out.U64(avail_ring);
  out.U64(used_ring);
  out.U16(static_cast<uint16_t>(next_avail_ - held));
  out.U16(next_used_);
  out.Bool(broken_);
  out.Bool(event_idx_);
  out.U16(signalled_used_);
  out.Bool(signalled_used_valid_);
}

void Queue::RestoreState(state::ByteReader& in) {
  size_ = in.U16();
  if (size_ > max_size_) throw state::StateError(in.what() + ": queue size " + std::to_string(size_) + " exceeds " +
                                                 std::to_string(max_size_));
  ready_ = in.Bool();
  desc_table = in.U64();
  avail_ring = in.U64();
  used_ring = in.U64();
  next_avail_ = in.U16();
  next_used_ = in.U16();
  broken_ = in.Bool();
  event_idx_ = in.Bool();
  signalled_used_ = in.U16();
  signalled_used_valid_ = in.Bool();
}

}  // namespace virga::virtio
