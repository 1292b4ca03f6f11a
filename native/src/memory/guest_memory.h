// Guest RAM: anonymous host mappings registered as KVM memory slots, split
// around the 32-bit MMIO hole. Device emulation reaches guest memory only
// through Translate/Read/Write, which bounds-check every access so a
// malicious descriptor cannot make the VMM touch memory outside guest RAM.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace virga {

struct MemoryRegion {
  uint64_t guest_base;
  uint64_t size;
  uint8_t* host;
  uint32_t slot;
};

// Where a region's bytes start in a snapshot's memory file.
struct FileRegion {
  uint64_t guest_base;
  uint64_t size;
  uint64_t file_offset;
};

class GuestMemory {
 public:
  // Lays out `size` bytes of RAM: below `hole_start`, and the rest from 4 GiB.
  GuestMemory(uint64_t size, uint64_t hole_start);
  // The same layout, each region a private copy-on-write mapping of `fd`
  // (a snapshot's memory file): clones of one snapshot share the pages
  // they have not written through the page cache. Throws if `file` does not
  // hold exactly this layout.
  GuestMemory(uint64_t size, uint64_t hole_start, int fd, const std::vector<FileRegion>& file);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t size() const { return size_; }

  // Host pointer for [gpa, gpa+len) when it lies inside one region, else nullptr.
  uint8_t* Translate(uint64_t gpa, uint64_t len) const;
  bool Read(uint64_t gpa, void* out, uint64_t len) const;
  bool Write(uint64_t gpa, const void* data, uint64_t len) const;
  // Zero-fills a range; whole pages are dropped rather than written. While
  // the memory is fresh it only checks the range: dropping pages there
  // would split the huge pages a loader had just faulted in around them,
  // leaving the guest's kernel on 4 KiB mappings.
  bool Zero(uint64_t gpa, uint64_t len) const;
  // Gives whole pages inside [gpa, gpa+len) back to the host (the balloon):
  // their contents are lost and they read as zeros on next touch. Partial
  // pages at either end are left alone. False when the range is not RAM.
  bool Discard(uint64_t gpa, uint64_t len) const;
  // Fresh memory reads as zeros until Write() or a guest writes it; loaders
  // copying into disjoint ranges through Translate() keep it fresh. The
  // machine calls this before its vCPUs first run.
  void ForgetKnownZero() const { known_zero_.store(false, std::memory_order_relaxed); }

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
  std::vector<MemoryRegion> regions_;
  uint64_t size_;
  // MADV_DONTNEED on a private file mapping brings the file's bytes back,
  // not zeros: Zero() maps fresh anonymous memory over such pages instead.
  bool file_backed_ = false;
  mutable std::atomic<bool> tracking_{false};
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> device_dirty_;  // per region, a bit per page
  // Device threads call Write() concurrently: atomic, read before stored.
  mutable std::atomic<bool> known_zero_{true};
};

}  // namespace virga
