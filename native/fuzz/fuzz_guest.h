// What the virtqueue harnesses share: a small guest whose RAM image is the
// fuzz input, and queues laid out in it at fixed addresses. Addresses in
// descriptors may point anywhere (in RAM, past it, into the rings), as a
// hostile driver's would.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace virga::fuzz {

constexpr uint64_t kGuestBytes = 64 << 10;

// One guest for the process: fresh mappings per input would cost more than the input.
inline const GuestMemory& Guest() {
  static GuestMemory* memory = new GuestMemory(kGuestBytes, 1ULL << 32);
  return *memory;
}

// RAM becomes `image`, zero-filled after it.
inline void LoadImage(const std::vector<uint8_t>& image) {
  uint8_t* ram = Guest().Translate(0, kGuestBytes);
  size_t n = image.size() < kGuestBytes ? image.size() : kGuestBytes;
  if (n != 0) std::memcpy(ram, image.data(), n);
  std::memset(ram + n, 0, kGuestBytes - n);
}

// Lays queues out from address 0, each as a driver packs a split ring
// (descriptor table, available ring, used ring), so a short input already
// reaches every ring and the bytes after them are buffers.
class QueueLayout {
 public:
  void Place(virtio::Queue& queue, uint8_t size_log2, bool event_idx) {
    uint64_t size = 1u << size_log2;
    queue.desc_table = cursor_;
    queue.avail_ring = cursor_ + 16 * size;
    queue.used_ring = (queue.avail_ring + 6 + 2 * size + 3) & ~3ULL;
    cursor_ = (queue.used_ring + 6 + 8 * size + 15) & ~15ULL;
    queue.set_size(static_cast<uint16_t>(size));
    queue.set_event_idx(event_idx);
    queue.set_ready(true);
  }

 private:
  uint64_t cursor_ = 0;
};

}  // namespace virga::fuzz
