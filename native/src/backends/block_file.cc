#include "backends/block_file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace virga {

std::unique_ptr<BlockFile> BlockFile::Open(const BlockFileConfig& config) {
  const std::string quoted = "'" + config.path + "'";
  // Checked before open: opening a FIFO would block, and a directory opens
  // read-only without complaint.
  struct stat st {};
  if (::stat(config.path.c_str(), &st) != 0) {
    throw VmmError("could not open " + quoted + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) throw VmmError(quoted + " is a directory; expected a regular file or block device");
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    throw VmmError(quoted + " is neither a regular file nor a block device");
  }
  int flags = (config.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (config.direct ? O_DIRECT : 0);
  UniqueFd fd(::open(config.path.c_str(), flags));
  if (!fd.valid()) {
    int err = errno;
    if (err == EINVAL && config.direct) {
      throw VmmError("could not open " + quoted + " with cache.direct: the file system does not support O_DIRECT");
    }
    throw VmmError("could not open " + quoted + (config.read_only ? "" : " for writing") + ": " + std::strerror(err));
  }
  uint64_t bytes = 0;
  if (::fstat(fd.get(), &st) != 0) throw ErrnoError("could not stat " + quoted);
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd.get(), BLKGETSIZE64, &bytes) < 0) throw ErrnoError("BLKGETSIZE64 on " + quoted);
  } else {
    bytes = static_cast<uint64_t>(st.st_size);
  }
  return std::unique_ptr<BlockFile>(new BlockFile(config, std::move(fd), bytes));
}

}  // namespace virga
