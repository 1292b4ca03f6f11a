// Guest RAM in a file: a memfd (-mem-share) or a file on a file system
// (-mem-path, see memory/mem_path.h), mapped shared, so another process
// can map the same RAM, or private. Either way MADV_DONTNEED alone would
// bring the file's bytes back: giving pages back punches holes in the file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/fd.h"
#include "memory/ram_backing.h"

namespace virga {

class FileBacking : public RamBacking {
 public:
  struct Options {
    bool shared = false;
    uint64_t page_size = 4096;
    bool hugetlbfs = false;
    bool starts_zeroed = true;
    std::string flag;     // what errors name: "-mem-share", "-mem-path /dev/hugepages"
    std::string refusal;  // snapshot_refusal()
  };
  // `fd` is open for reading and writing and holds at least guest RAM's size.
  FileBacking(UniqueFd fd, Options options);

  uint64_t page_size() const override { return options_.page_size; }
  bool starts_zeroed() const override { return options_.starts_zeroed; }
  void Map(const std::vector<MemoryRegion>& regions) override;
  bool Drop(const MemoryRegion& region, uint64_t offset, uint64_t len) const override;
  std::string snapshot_refusal() const override { return options_.refusal; }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  Options options_;
  std::vector<uint64_t> file_offsets_;  // per region
};

// -mem-share without -mem-path: `size` bytes of a memfd, shared, so
// another process can map guest RAM (/proc/<pid>/fd/<n>, "memfd:virga-guest-ram").
std::unique_ptr<FileBacking> MakeSharedMemory(uint64_t size);

}  // namespace virga
