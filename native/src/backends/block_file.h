// A disk backend: a raw image file or block device opened for a virtio-blk
// device. -drive and QMP blockdev-add both make one; it stays open (and the
// VMM holds its fd) exactly as long as the backend exists.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/fd.h"

namespace virga {

struct BlockFileConfig {
  std::string path;
  bool read_only = false;
  bool direct = false;  // O_DIRECT: the host page cache is bypassed
};

class BlockFile {
 public:
  // Throws VmmError saying what is wrong with the path ("could not open
  // '/x': No such file or directory", "'/x' is a directory; ...").
  static std::unique_ptr<BlockFile> Open(const BlockFileConfig& config);

  int fd() const { return fd_.get(); }
  const std::string& path() const { return config_.path; }
  bool read_only() const { return config_.read_only; }
  bool direct() const { return config_.direct; }
  uint64_t size_bytes() const { return size_bytes_; }

 private:
  BlockFile(BlockFileConfig config, UniqueFd fd, uint64_t size) : config_(std::move(config)), fd_(std::move(fd)), size_bytes_(size) {}

  BlockFileConfig config_;
  UniqueFd fd_;
  uint64_t size_bytes_;
};

}  // namespace virga
