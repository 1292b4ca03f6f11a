#include "memory/ram_backing.h"

#include <sys/mman.h>

namespace virga {

bool AnonymousBacking::Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const {
  // Private anonymous memory reads back as zeros after MADV_DONTNEED.
  return ::madvise(region.host + offset, len, MADV_DONTNEED) == 0;
}

}  // namespace virga
