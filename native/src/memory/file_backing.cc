#include "memory/file_backing.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>

#include "common/error.h"

namespace virga {

FileBacking::FileBacking(UniqueFd fd, Options options) : fd_(std::move(fd)), options_(std::move(options)) {}

void FileBacking::Map(const std::vector<MemoryRegion>& regions) {
  uint64_t offset = 0;
  for (const MemoryRegion& r : regions) {
    int flags = (options_.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
    // Huge pages are reserved when mapped, so a host short of them fails
    // here, at start, and not with a SIGBUS the first time the guest
    // touches a page none is left for.
    if (!options_.hugetlbfs) flags |= MAP_NORESERVE;
    if (::mmap(r.host, r.size, PROT_READ | PROT_WRITE, flags, fd_.get(), static_cast<off_t>(offset)) == MAP_FAILED) {
      int err = errno;
      if (options_.hugetlbfs && err == ENOMEM) {
        throw VmmError(options_.flag + ": the host has not enough free huge pages for " + std::to_string(r.size >> 20) +
                       " MiB of guest RAM (vm.nr_hugepages)");
      }
      throw ErrnoError(options_.flag + ": failed to map " + std::to_string(r.size >> 20) + " MiB of guest RAM", err);
    }
    file_offsets_.push_back(offset);
    offset += r.size;
  }
}

bool FileBacking::Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const {
  uint8_t* host = region.host + offset;
  // Shared: the pages are the file's; removing them punches the hole.
  if (options_.shared) return ::madvise(host, len, MADV_REMOVE) == 0;
  // Private: what the guest wrote are anonymous copies, which MADV_DONTNEED
  // drops; beneath them are the file's pages (holes: -mem-path refuses a
  // file that holds data without -mem-share, and nothing writes it), which
  // a read may have faulted in: the punch frees those.
  off_t at = static_cast<off_t>(file_offsets_[region.slot] + offset);
  ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, static_cast<off_t>(len));
  return ::madvise(host, len, MADV_DONTNEED) == 0;
}

std::unique_ptr<FileBacking> MakeSharedMemory(uint64_t size) {
  UniqueFd fd(::memfd_create("virga-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) throw ErrnoError("-mem-share: memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw ErrnoError("-mem-share: sizing guest RAM's memfd");
  // Another process that maps guest RAM must not shrink it under the VMM,
  // whose next touch past the new end would be a SIGBUS.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    throw ErrnoError("-mem-share: sealing the size of guest RAM's memfd");
  }
  FileBacking::Options options;
  options.shared = true;
  options.flag = "-mem-share";
  options.refusal = "guest RAM is shared (-mem-share)";
  return std::make_unique<FileBacking>(std::move(fd), options);
}

}  // namespace virga
