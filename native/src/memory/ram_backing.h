// Where guest RAM's bytes live (docs/architecture.md, "Guest memory"):
// anonymous memory (the default), a memfd (-mem-share), a file (-mem-path)
// or a snapshot's memory file mapped copy-on-write (-incoming file:).
// GuestMemory lays the regions out and reserves their addresses; the
// backing puts its bytes there and knows how to give pages back so that
// they read as zeros, which MADV_DONTNEED alone does only for private
// anonymous memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace virga {

struct MemoryRegion {
  uint64_t guest_base;
  uint64_t size;
  uint8_t* host;
  uint32_t slot;  // also the region's index, in address order
};

class RamBacking {
 public:
  virtual ~RamBacking() = default;

  // The host pages behind guest RAM: what Drop gives back whole, and what
  // each region's host address is aligned to.
  virtual uint64_t page_size() const { return 4096; }
  // Whether RAM reads as zeros until something writes it.
  virtual bool starts_zeroed() const = 0;
  // Puts the regions' bytes at their host addresses (reserved, aligned,
  // readable and writable anonymous memory). In a file the regions lie
  // back to back in address order.
  virtual void Map(const std::vector<MemoryRegion>& regions) = 0;
  // Gives back [offset, offset + len) of `region`, whole pages: they cost
  // the host nothing and read as zeros afterwards. False when that failed;
  // the caller then writes the zeros itself if it needs them.
  virtual bool Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const = 0;
  // Why a snapshot cannot save RAM kept here ("guest RAM is shared
  // (-mem-share)"), or empty when it can.
  virtual std::string snapshot_refusal() const { return ""; }
};

// Private anonymous memory: the reservation itself.
class AnonymousBacking : public RamBacking {
 public:
  bool starts_zeroed() const override { return true; }
  void Map(const std::vector<MemoryRegion>&) override {}
  bool Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const override;
};

}  // namespace virga
