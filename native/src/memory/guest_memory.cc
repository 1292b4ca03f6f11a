#include "memory/guest_memory.h"

#include <sys/mman.h>

#include "common/error.h"

namespace virga {

namespace {
constexpr uint64_t k4GiB = 1ULL << 32;

uint8_t* MapAnonymous(uint64_t size) {
  // NORESERVE: a guest that never touches its RAM costs nothing, which is
  // what makes many small VMs per host cheap. Not 2 MiB-aligned on purpose:
  // THP-backed guest RAM made 4-vCPU Linux guests hang, or L1's kernel
  // crash, in 4 of 5 runs of the nested harness (cause not found), though
  // it saved ~1.3 s of Linux boot there.
  void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (host == MAP_FAILED) throw ErrnoError("failed to map " + std::to_string(size >> 20) + " MiB of guest memory");
  return static_cast<uint8_t*>(host);
}
}  // namespace

GuestMemory::GuestMemory(uint64_t size, uint64_t hole_start) : size_(size) {
  uint64_t low = size < hole_start ? size : hole_start;
  regions_.push_back({0, low, MapAnonymous(low), 0});
  if (size > low) regions_.push_back({k4GiB, size - low, MapAnonymous(size - low), 1});
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
  std::memcpy(host, data, len);
  return true;
}

bool GuestMemory::Zero(uint64_t gpa, uint64_t len) const {
  uint8_t* host = Translate(gpa, len);
  if (host == nullptr) return false;
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
  // Private anonymous memory reads back as zeros after MADV_DONTNEED.
  if (::madvise(reinterpret_cast<void*>(first_page), last_page - first_page, MADV_DONTNEED) != 0) {
    std::memset(reinterpret_cast<void*>(first_page), 0, last_page - first_page);
  }
  std::memset(reinterpret_cast<void*>(last_page), 0, end - last_page);
  return true;
}

}  // namespace virga
