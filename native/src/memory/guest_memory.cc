#include "memory/guest_memory.h"

#include <sys/mman.h>

#include <algorithm>

#include "common/error.h"

namespace virga {

namespace {
constexpr uint64_t k4GiB = 1ULL << 32;

constexpr uint64_t k2MiB = 2ULL << 20;

// Marks a range dirty when the write to it is done, not before: a
// migration round that takes the mark and then reads the page must see
// the new bytes (marked first, a round could send the old bytes and clear
// the mark while the write was still under way, and the page would never
// go again).
class MarkWhenWritten {
 public:
  MarkWhenWritten(const GuestMemory& memory, uint64_t gpa, uint64_t len) : memory_(memory), gpa_(gpa), len_(len) {}
  ~MarkWhenWritten() { memory_.MarkDirty(gpa_, len_); }

 private:
  const GuestMemory& memory_;
  uint64_t gpa_, len_;
};

uint8_t* MapAnonymous(uint64_t size) {
  // NORESERVE: a guest that never touches its RAM costs nothing, which is
  // what makes many small VMs per host cheap. 2 MiB alignment lets a host
  // whose THP policy is "always" back guest RAM with huge pages, so KVM maps
  // it in 2 MiB steps: ~24k fewer page-mapping exits for a Linux boot under
  // nested KVM, ~1 s there (QEMU aligns its RAM the same way). No
  // MADV_HUGEPAGE: on "madvise" hosts a small guest's scattered first
  // touches would each fault in and zero 2 MiB. (The nested harness's rare
  // 4-vCPU failures, an L1 stack guard page hit or L1 hung in HLT, happen
  // with unaligned RAM too: they are faults of L1's emulated SVM.)
  uint64_t padded = size + k2MiB;
  void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw ErrnoError("failed to map " + std::to_string(size >> 20) + " MiB of guest memory");
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + k2MiB - 1) & ~(k2MiB - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  uintptr_t end = start + padded;
  if (end > aligned + size) ::munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  return reinterpret_cast<uint8_t*>(aligned);
}
}  // namespace

GuestMemory::GuestMemory(uint64_t size, uint64_t hole_start) : size_(size) {
  uint64_t low = size < hole_start ? size : hole_start;
  regions_.push_back({0, low, MapAnonymous(low), 0});
  if (size > low) regions_.push_back({k4GiB, size - low, MapAnonymous(size - low), 1});
}

GuestMemory::GuestMemory(uint64_t size, uint64_t hole_start, int fd, const std::vector<FileRegion>& file)
    : GuestMemory(size, hole_start) {
  file_backed_ = true;
  known_zero_.store(false);
  if (file.size() != regions_.size()) {
    throw VmmError("the memory file has " + std::to_string(file.size()) + " regions, this machine " +
                   std::to_string(regions_.size()));
  }
  for (size_t i = 0; i < regions_.size(); ++i) {
    const MemoryRegion& r = regions_[i];
    if (file[i].guest_base != r.guest_base || file[i].size != r.size) {
      throw VmmError("the memory file's region " + std::to_string(i) + " does not match this machine's RAM layout");
    }
    // Over the aligned anonymous reservation, so KVM still gets 2 MiB-aligned slots.
    void* mapped = ::mmap(r.host, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
                          static_cast<off_t>(file[i].file_offset));
    if (mapped == MAP_FAILED) throw ErrnoError("failed to map the memory file");
  }
}

GuestMemory::~GuestMemory() {
  for (const auto& region : regions_) ::munmap(region.host, region.size);
}

uint8_t* GuestMemory::Translate(uint64_t gpa, uint64_t len) const {
  for (const auto& region : regions_) {
    if (gpa >= region.guest_base && gpa - region.guest_base <= region.size &&
        len <= region.size - (gpa - region.guest_base)) {
      return region.host + (gpa - region.guest_base);
    }
  }
  return nullptr;
}

bool GuestMemory::Read(uint64_t gpa, void* out, uint64_t len) const {
  const uint8_t* host = Translate(gpa, len);
  if (host == nullptr) return false;
  std::memcpy(out, host, len);
  return true;
}

bool GuestMemory::Write(uint64_t gpa, const void* data, uint64_t len) const {
  uint8_t* host = Translate(gpa, len);
  if (host == nullptr) return false;
  MarkWhenWritten mark(*this, gpa, len);
  if (known_zero_.load(std::memory_order_relaxed)) known_zero_.store(false, std::memory_order_relaxed);
  std::memcpy(host, data, len);
  return true;
}

bool GuestMemory::Zero(uint64_t gpa, uint64_t len) const {
  uint8_t* host = Translate(gpa, len);
  if (host == nullptr) return false;
  MarkWhenWritten mark(*this, gpa, len);
  if (known_zero_.load(std::memory_order_relaxed)) return true;
  constexpr uintptr_t kPage = 4096;
  uintptr_t start = reinterpret_cast<uintptr_t>(host);
  uintptr_t end = start + len;
  uintptr_t first_page = (start + kPage - 1) & ~(kPage - 1);
  uintptr_t last_page = end & ~(kPage - 1);
  if (first_page >= last_page) {
    std::memset(host, 0, len);
    return true;
  }
  std::memset(host, 0, first_page - start);
  void* pages = reinterpret_cast<void*>(first_page);
  size_t bytes = last_page - first_page;
  bool dropped = file_backed_
                     ? ::mmap(pages, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                              -1, 0) != MAP_FAILED
                     // Private anonymous memory reads back as zeros after MADV_DONTNEED.
                     : ::madvise(pages, bytes, MADV_DONTNEED) == 0;
  if (!dropped) std::memset(pages, 0, bytes);
  std::memset(reinterpret_cast<void*>(last_page), 0, end - last_page);
  return true;
}

bool GuestMemory::Discard(uint64_t gpa, uint64_t len) const {
  uint8_t* host = Translate(gpa, len);
  if (host == nullptr) return false;
  MarkWhenWritten mark(*this, gpa, len);
  constexpr uintptr_t kPage = 4096;
  uintptr_t first = (reinterpret_cast<uintptr_t>(host) + kPage - 1) & ~(kPage - 1);
  uintptr_t last = (reinterpret_cast<uintptr_t>(host) + len) & ~(kPage - 1);
  if (first >= last) return true;
  return ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) == 0;
}

void GuestMemory::StartDirtyTracking() {
  device_dirty_.clear();
  for (const auto& region : regions_) {
    size_t words = (region.size / 4096 + 63) / 64;
    device_dirty_.emplace_back(new std::atomic<uint64_t>[words]);
    for (size_t i = 0; i < words; ++i) device_dirty_.back()[i].store(0, std::memory_order_relaxed);
  }
  tracking_.store(true, std::memory_order_release);
}

void GuestMemory::StopDirtyTracking() { tracking_.store(false, std::memory_order_release); }

void GuestMemory::MarkDirty(uint64_t gpa, uint64_t len) const {
  if (!tracking_.load(std::memory_order_acquire) || len == 0) return;
  for (size_t r = 0; r < regions_.size(); ++r) {
    const MemoryRegion& region = regions_[r];
    if (gpa < region.guest_base || gpa - region.guest_base >= region.size) continue;
    uint64_t first = (gpa - region.guest_base) / 4096;
    uint64_t last = std::min(gpa - region.guest_base + len - 1, region.size - 1) / 4096;
    for (uint64_t page = first; page <= last; ++page) {
      device_dirty_[r][page / 64].fetch_or(1ULL << (page % 64), std::memory_order_relaxed);
    }
    return;
  }
}

void GuestMemory::TakeDeviceDirty(size_t index, std::vector<uint64_t>* bitmap) const {
  if (index >= device_dirty_.size()) return;
  for (size_t i = 0; i < bitmap->size(); ++i) (*bitmap)[i] |= device_dirty_[index][i].exchange(0, std::memory_order_acq_rel);
}

}  // namespace virga
