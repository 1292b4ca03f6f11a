// Guest RAM of a restored VM: each region a private copy-on-write mapping
// of the snapshot's memory file, so clones of one snapshot share, through
// the page cache, every page they have not written.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/ram_backing.h"

namespace virga {

// Where a region's bytes start in a snapshot's memory file.
struct FileRegion {
  uint64_t guest_base;
  uint64_t size;
  uint64_t file_offset;
};

class SnapshotBacking : public RamBacking {
 public:
  // `fd` stays the caller's; it must stay open until Map has run.
  SnapshotBacking(int fd, std::vector<FileRegion> file) : fd_(fd), file_(std::move(file)) {}

  bool starts_zeroed() const override { return false; }
  // Throws if the file does not hold exactly this layout.
  void Map(const std::vector<MemoryRegion>& regions) override;
  bool Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const override;

 private:
  int fd_;
  std::vector<FileRegion> file_;
};

}  // namespace virga
