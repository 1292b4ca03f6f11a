#include "memory/snapshot_backing.h"

#include <sys/mman.h>

#include <string>

#include "common/error.h"

namespace virga {

void SnapshotBacking::Map(const std::vector<MemoryRegion>& regions) {
  if (file_.size() != regions.size()) {
    throw VmmError("the memory file has " + std::to_string(file_.size()) + " regions, this machine " +
                   std::to_string(regions.size()));
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegion& r = regions[i];
    if (file_[i].guest_base != r.guest_base || file_[i].size != r.size) {
      throw VmmError("the memory file's region " + std::to_string(i) + " does not match this machine's RAM layout");
    }
    void* mapped = ::mmap(r.host, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd_,
                          static_cast<off_t>(file_[i].file_offset));
    if (mapped == MAP_FAILED) throw ErrnoError("failed to map the memory file");
  }
}

bool SnapshotBacking::Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const {
  // MADV_DONTNEED on a private file mapping brings the snapshot's bytes
  // back, not zeros: fresh anonymous memory goes over the pages instead.
  // Each such range splits the file's mapping; past the host's limit of
  // mappings (vm.max_map_count) this fails and the caller writes zeros.
  return ::mmap(region.host + offset, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED;
}

}  // namespace virga
