// -mem-path <path> as StratoVirt defines it: guest RAM in a file. A
// directory (a hugetlbfs mount, say) gets a new file the VMM unlinks at
// once; a path that does not exist is created and unlinked the same way;
// an existing file is used as it is: sized to guest RAM when empty, and
// refused when smaller. Without -mem-share the file is mapped private, and
// one that already holds data is refused: the guest would start on its
// bytes, and the pages it gives back would read as them again. On
// hugetlbfs, guest RAM must be a whole number of its pages, and the host
// must have that many free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "memory/file_backing.h"

namespace virga {

struct MemPathInfo {
  uint64_t page_size;
  bool hugetlbfs;
};

// What -mem-path `path` would give `size` bytes of guest RAM; throws
// std::runtime_error with the reason (the caller names the flag).
MemPathInfo CheckMemPath(const std::string& path, uint64_t size, bool shared);

// Opens (or creates) the file; errors start "-mem-path: ".
std::unique_ptr<FileBacking> OpenMemPath(const std::string& path, uint64_t size, bool shared);

}  // namespace virga
