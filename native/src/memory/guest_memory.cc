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

// Addresses for one region, `align`-aligned, as private anonymous memory:
// the anonymous backing's RAM itself, and where the others map theirs.
uint8_t* Reserve(uint64_t size, uint64_t align) {
  // NORESERVE: a guest that never touches its RAM costs nothing, which is
  // what makes many small VMs per host cheap. 2 MiB alignment lets a host
  // whose THP policy is "always" back guest RAM with huge pages, so KVM maps
  // it in 2 MiB steps: ~24k fewer page-mapping exits for a Linux boot under
  // nested KVM, ~1 s there (QEMU aligns its RAM the same way). No
  // MADV_HUGEPAGE: on "madvise" hosts a small guest's scattered first
  // touches would each fault in and zero 2 MiB. (The nested harness's rare
  // 4-vCPU failures, an L1 stack guard page hit or L1 hung in HLT, happen
  // with unaligned RAM too: they are faults of L1's emulated SVM.)
  uint64_t padded = size + align;
  void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw ErrnoError("failed to map " + std::to_string(size >> 20) + " MiB of guest memory");
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + align - 1) & ~(align - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  uintptr_t end = start + padded;
  if (end > aligned + size) ::munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  return reinterpret_cast<uint8_t*>(aligned);
}
}  // namespace

GuestMemory::GuestMemory(uint64_t size, uint64_t hole_start, std::unique_ptr<RamBacking> backing)
    : backing_(backing ? std::move(backing) : std::make_unique<AnonymousBacking>()), size_(size) {
  // Huge pages of a hugetlbfs file must land on addresses of their size.
  uint64_t align = std::max(k2MiB, backing_->page_size());
  uint64_t low = size < hole_start ? size : hole_start;
  regions_.push_back({0, low, Reserve(low, align), 0});
  if (size > low) regions_.push_back({k4GiB, size - low, Reserve(size - low, align), 1});
  try {
    backing_->Map(regions_);
  } catch (...) {
    for (const auto& region : regions_) ::munmap(region.host, region.size);
    throw;
  }
  known_zero_.store(backing_->starts_zeroed());
}

GuestMemory::~GuestMemory() {
  for (const auto& region : regions_) ::munmap(region.host, region.size);
}

const MemoryRegion* GuestMemory::Find(uint64_t gpa, uint64_t len) const {
  for (const auto& region : regions_) {
    if (gpa >= region.guest_base && gpa - region.guest_base <= region.size &&
        len <= region.size - (gpa - region.guest_base)) {
      return &region;
    }
  }
  return nullptr;
}

uint8_t* GuestMemory::Translate(uint64_t gpa, uint64_t len) const {
  const MemoryRegion* region = Find(gpa, len);
  return region == nullptr ? nullptr : region->host + (gpa - region->guest_base);
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
  const MemoryRegion* region = Find(gpa, len);
  if (region == nullptr) return false;
  MarkWhenWritten mark(*this, gpa, len);
  if (known_zero_.load(std::memory_order_relaxed)) return true;
  // Region starts are aligned to the backing's pages, so offsets are too.
  uint64_t page = backing_->page_size();
  uint64_t start = gpa - region->guest_base, end = start + len;
  uint64_t first = (start + page - 1) / page * page, last = end / page * page;
  uint8_t* host = region->host;
  if (first >= last || pinned_.load(std::memory_order_relaxed)) {
    std::memset(host + start, 0, len);
    return true;
  }
  std::memset(host + start, 0, first - start);
  if (!backing_->Drop(*region, first, last - first)) std::memset(host + first, 0, last - first);
  std::memset(host + last, 0, end - last);
  return true;
}

bool GuestMemory::Discard(uint64_t gpa, uint64_t len) const {
  const MemoryRegion* region = Find(gpa, len);
  if (region == nullptr || pinned_.load(std::memory_order_relaxed)) return false;
  MarkWhenWritten mark(*this, gpa, len);
  uint64_t page = backing_->page_size();
  uint64_t start = gpa - region->guest_base;
  uint64_t first = (start + page - 1) / page * page, last = (start + len) / page * page;
  if (first >= last) return true;
  return backing_->Drop(*region, first, last - first);
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
