// Guest RAM: host mappings registered as KVM memory slots, split around
// the 32-bit MMIO hole, their bytes kept by a backing (memory/ram_backing.h).
// Device emulation reaches guest memory only through Translate/Read/Write,
// which bounds-check every access so a malicious descriptor cannot make the
// VMM touch memory outside guest RAM.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "memory/ram_backing.h"
#include "memory/snapshot_backing.h"

namespace virga {

class GuestMemory {
 public:
  // Lays out `size` bytes of RAM: below `hole_start`, and the rest from
  // 4 GiB; anonymous memory unless another backing is given.
  GuestMemory(uint64_t size, uint64_t hole_start, std::unique_ptr<RamBacking> backing = nullptr);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t size() const { return size_; }
  const RamBacking& backing() const { return *backing_; }

  // Host pointer for [gpa, gpa+len) when it lies inside one region, else nullptr.
  uint8_t* Translate(uint64_t gpa, uint64_t len) const;
  bool Read(uint64_t gpa, void* out, uint64_t len) const;
  bool Write(uint64_t gpa, const void* data, uint64_t len) const;
  // Zero-fills a range; the backing's whole pages are given back rather
  // than written. While the memory is fresh it only checks the range:
  // dropping pages there would split the huge pages a loader had just
  // faulted in around them, leaving the guest's kernel on 4 KiB mappings.
  bool Zero(uint64_t gpa, uint64_t len) const;
  // Gives the backing's whole pages inside [gpa, gpa+len) back to the host
  // (the balloon): their contents are lost and they read as zeros on next
  // touch. Partial pages at either end are left alone (on 2 MiB huge pages,
  // a 4 KiB balloon page frees nothing). False when the range is not RAM
  // or the backing could not give the pages back.
  bool Discard(uint64_t gpa, uint64_t len) const;
  // Fresh memory reads as zeros until Write() or a guest writes it; loaders
  // copying into disjoint ranges through Translate() keep it fresh. The
  // machine calls this before its vCPUs first run.
  void ForgetKnownZero() const { known_zero_.store(false, std::memory_order_relaxed); }
  // A device DMAs into RAM through pinned pages (VFIO): from now on Zero()
  // writes zeros instead of giving pages back, and Discard() refuses, so
  // the pages the device reaches stay the guest's.
  void PinForDevices() const { pinned_.store(true, std::memory_order_relaxed); }

  // Pages device emulation writes (used rings, disk reads, received frames)
  // are invisible to KVM's dirty log; while tracking is on, they are
  // recorded here so live migration sends them again. Write() records its
  // own writes; a device that writes through a Translate()d pointer calls
  // MarkDirty for that range.
  void StartDirtyTracking();
  void StopDirtyTracking();
  void MarkDirty(uint64_t gpa, uint64_t len) const;
  // ORs the pages of region `index` written by devices since the last call
  // into `bitmap` (bit n = the region's page n) and forgets them.
  void TakeDeviceDirty(size_t index, std::vector<uint64_t>* bitmap) const;

  template <typename T>
  bool ReadObj(uint64_t gpa, T* out) const { return Read(gpa, out, sizeof(T)); }
  template <typename T>
  bool WriteObj(uint64_t gpa, const T& value) const { return Write(gpa, &value, sizeof(T)); }

 private:
  const MemoryRegion* Find(uint64_t gpa, uint64_t len) const;

  std::unique_ptr<RamBacking> backing_;
  std::vector<MemoryRegion> regions_;
  uint64_t size_;
  mutable std::atomic<bool> tracking_{false};
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> device_dirty_;  // per region, a bit per page
  // Device threads call Write() concurrently: atomic, read before stored.
  mutable std::atomic<bool> known_zero_{true};
  mutable std::atomic<bool> pinned_{false};
};

}  // namespace virga
