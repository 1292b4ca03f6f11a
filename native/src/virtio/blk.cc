#include "virtio/blk.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/error.h"

namespace virga::virtio {

namespace {
constexpr uint64_t kSectorSize = 512;

constexpr uint64_t kFeatureSegMax = 1ULL << 2;
constexpr uint64_t kFeatureReadOnly = 1ULL << 5;
constexpr uint64_t kFeatureFlush = 1ULL << 9;

constexpr uint32_t kRequestIn = 0;
constexpr uint32_t kRequestOut = 1;
constexpr uint32_t kRequestFlush = 4;
constexpr uint32_t kRequestGetId = 8;

constexpr uint8_t kStatusOk = 0;
constexpr uint8_t kStatusIoErr = 1;
constexpr uint8_t kStatusUnsupported = 2;

constexpr uint32_t kSegMax = 126;  // queue size minus header and status descriptors
constexpr size_t kDirectAlignment = 4096;

struct __attribute__((packed)) RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
}  // namespace

Block::Block() = default;

Block::Block(const BlockBackendConfig& config) : read_only_(config.read_only), direct_(config.direct) {
  int flags = (config.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (config.direct ? O_DIRECT : 0);
  file_.Reset(::open(config.path.c_str(), flags));
  if (!file_.valid()) throw ErrnoError("failed to open disk " + config.path);
  struct stat st {};
  if (::fstat(file_.get(), &st) < 0) throw ErrnoError("failed to stat disk " + config.path);
  uint64_t bytes = 0;
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(file_.get(), BLKGETSIZE64, &bytes) < 0) throw ErrnoError("BLKGETSIZE64 " + config.path);
  } else if (S_ISREG(st.st_mode)) {
    bytes = static_cast<uint64_t>(st.st_size);
  } else {
    throw VmmError("disk " + config.path + " is neither a regular file nor a block device");
  }
  capacity_sectors_ = bytes / kSectorSize;
}

uint64_t Block::features() const {
  uint64_t features = kFeatureVersion1 | kFeatureSegMax | kFeatureFlush;
  if (read_only_) features |= kFeatureReadOnly;
  return features;
}

void Block::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_blk_config: capacity (le64), size_max (le32), seg_max (le32).
  uint8_t config[16] = {};
  std::memcpy(config, &capacity_sectors_, 8);
  uint32_t seg_max = kSegMax;
  std::memcpy(config + 12, &seg_max, 4);
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
}

void Block::Activate(const ActiveQueues& active, uint64_t) {
  active_ = active;
  activated_ = true;
}

void Block::Reset() { activated_ = false; }

void Block::ProcessQueue(uint16_t index) {
  if (!activated_) return;
  Queue& queue = (*active_.queues)[index];
  bool used_any = false;
  while (auto chain = queue.Pop(*active_.memory)) {
    uint32_t written = 0;
    uint8_t status = HandleRequest(*chain, &written);
    // The status byte is the last device-writable byte of the chain.
    if (!chain->segments.empty()) {
      const DescriptorSegment& last = chain->segments.back();
      if (last.device_writable && last.length >= 1) {
        active_.memory->WriteObj(last.address + last.length - 1, status);
        written += 1;
      }
    }
    queue.PushUsed(*active_.memory, chain->head, written);
    used_any = true;
  }
  if (used_any && queue.ShouldInterrupt(*active_.memory)) active_.signal_used(index);
}

uint8_t Block::HandleRequest(const DescriptorChain& chain, uint32_t* written) {
  if (chain.segments.size() < 2) return kStatusIoErr;
  const DescriptorSegment& head = chain.segments.front();
  RequestHeader header{};
  if (head.device_writable || head.length < sizeof(header) || !active_.memory->ReadObj(head.address, &header)) {
    return kStatusIoErr;
  }
  switch (header.type) {
    case kRequestIn:
      return Transfer(header.sector, chain, true, written);
    case kRequestOut:
      // Read-only disks fail writes with the virtio error status, even from
      // a driver that ignored VIRTIO_BLK_F_RO.
      if (read_only_ || !file_.valid()) return kStatusIoErr;
      return Transfer(header.sector, chain, false, written);
    case kRequestFlush:
      if (!file_.valid()) return kStatusIoErr;
      return ::fdatasync(file_.get()) == 0 ? kStatusOk : kStatusIoErr;
    case kRequestGetId: {
      // Serial number: up to 20 bytes into the first writable data segment.
      const DescriptorSegment& data = chain.segments[1];
      if (!data.device_writable) return kStatusIoErr;
      char id[20] = "virga-blk";
      uint32_t n = data.length < sizeof(id) ? data.length : sizeof(id);
      active_.memory->Write(data.address, id, n);
      *written = n;
      return kStatusOk;
    }
    default:
      return kStatusUnsupported;
  }
}

uint8_t Block::Transfer(uint64_t sector, const DescriptorChain& chain, bool to_guest, uint32_t* written) {
  if (!file_.valid()) return kStatusIoErr;
  // Data segments are everything between the header and the status byte.
  std::vector<iovec> iov;
  uint64_t total = 0;
  for (size_t i = 1; i < chain.segments.size(); ++i) {
    const DescriptorSegment& seg = chain.segments[i];
    uint64_t length = seg.length;
    if (i == chain.segments.size() - 1) {
      if (length == 0) return kStatusIoErr;
      length -= 1;  // the status byte shares the last descriptor or has its own
      if (length == 0) break;
    }
    if (seg.device_writable != to_guest) return kStatusIoErr;
    uint8_t* host = active_.memory->Translate(seg.address, length);
    if (host == nullptr) return kStatusIoErr;
    iov.push_back({host, length});
    total += length;
  }
  if (total % kSectorSize != 0) return kStatusIoErr;
  if (sector > capacity_sectors_ || total / kSectorSize > capacity_sectors_ - sector) return kStatusIoErr;
  off_t offset = static_cast<off_t>(sector * kSectorSize);

  bool aligned = true;
  if (direct_) {
    for (const auto& v : iov) {
      if (reinterpret_cast<uintptr_t>(v.iov_base) % kDirectAlignment != 0 || v.iov_len % kSectorSize != 0) {
        aligned = false;
      }
    }
  }
  if (aligned) {
    size_t done = 0;
    while (done < total) {
      // Advance the iovec past what the previous partial transfer moved.
      std::vector<iovec> rest;
      size_t skip = done;
      for (const auto& v : iov) {
        if (skip >= v.iov_len) {
          skip -= v.iov_len;
          continue;
        }
        rest.push_back({static_cast<uint8_t*>(v.iov_base) + skip, v.iov_len - skip});
        skip = 0;
      }
      ssize_t n = to_guest ? ::preadv(file_.get(), rest.data(), static_cast<int>(rest.size()), offset + done)
                           : ::pwritev(file_.get(), rest.data(), static_cast<int>(rest.size()), offset + done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return kStatusIoErr;
      done += static_cast<size_t>(n);
    }
  } else {
    // O_DIRECT needs aligned host buffers: bounce through one.
    std::unique_ptr<uint8_t, decltype(&std::free)> bounce(
        static_cast<uint8_t*>(std::aligned_alloc(kDirectAlignment, (total + kDirectAlignment - 1) & ~(kDirectAlignment - 1))),
        &std::free);
    if (!bounce) return kStatusIoErr;
    if (!to_guest) {
      size_t at = 0;
      for (const auto& v : iov) {
        std::memcpy(bounce.get() + at, v.iov_base, v.iov_len);
        at += v.iov_len;
      }
    }
    ssize_t n = to_guest ? ::pread(file_.get(), bounce.get(), total, offset)
                         : ::pwrite(file_.get(), bounce.get(), total, offset);
    if (n != static_cast<ssize_t>(total)) return kStatusIoErr;
    if (to_guest) {
      size_t at = 0;
      for (const auto& v : iov) {
        std::memcpy(v.iov_base, bounce.get() + at, v.iov_len);
        at += v.iov_len;
      }
    }
  }
  if (to_guest) *written = static_cast<uint32_t>(total);
  return kStatusOk;
}

}  // namespace virga::virtio
