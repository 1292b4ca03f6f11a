#include "virtio/blk.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

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
// O_DIRECT requests whose guest buffers are not aligned go through a bounce
// buffer of at most this size, so a guest cannot make the VMM allocate by
// the length it claims.
constexpr size_t kBounceBytes = 1 << 20;

struct __attribute__((packed)) RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

// Moves `total` bytes between `iov` and the file at `offset`, resuming
// after short transfers. False on an error or end of file.
bool TransferAll(int fd, std::vector<iovec> iov, uint64_t total, off_t offset, bool to_guest) {
  uint64_t done = 0;
  size_t first = 0;
  while (done < total) {
    ssize_t n = to_guest ? ::preadv(fd, iov.data() + first, static_cast<int>(iov.size() - first), offset + done)
                         : ::pwritev(fd, iov.data() + first, static_cast<int>(iov.size() - first), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<uint64_t>(n);
    // Advance the iovec past what moved.
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}
// Copies `len` bytes between the bounce buffer and the guest segments,
// starting at segment *seg, byte *seg_off, and moves that position on.
void CopyChunk(const std::vector<iovec>& iov, size_t* seg, size_t* seg_off, uint8_t* bounce, size_t len,
               bool into_bounce) {
  for (size_t at = 0; at < len;) {
    const iovec& v = iov[*seg];
    size_t n = std::min(len - at, v.iov_len - *seg_off);
    uint8_t* guest = static_cast<uint8_t*>(v.iov_base) + *seg_off;
    if (into_bounce) std::memcpy(bounce + at, guest, n);
    else std::memcpy(guest, bounce + at, n);
    at += n;
    *seg_off += n;
    if (*seg_off == v.iov_len) {
      ++*seg;
      *seg_off = 0;
    }
  }
}
}  // namespace

Block::Block(std::unique_ptr<BlockFile> file)
    : ro_feature_(file != nullptr && file->read_only()), file_(std::move(file)) {
  if (file_) capacity_sectors_.store(file_->size_bytes() / kSectorSize);
}

uint64_t Block::features() const {
  uint64_t features = kFeatureVersion1 | kFeatureEventIdx | kFeatureIndirectDesc | kFeatureSegMax | kFeatureFlush;
  if (ro_feature_) features |= kFeatureReadOnly;
  return features;
}

bool Block::read_only() const {
  std::lock_guard guard(io_lock_);
  return file_ != nullptr && file_->read_only();
}

void Block::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_blk_config: capacity (le64), size_max (le32), seg_max (le32).
  uint8_t config[16] = {};
  uint64_t capacity = capacity_sectors();
  std::memcpy(config, &capacity, 8);
  uint32_t seg_max = kSegMax;
  std::memcpy(config + 12, &seg_max, 4);
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
}

void Block::Activate(const ActiveQueues& active, uint64_t) {
  std::lock_guard guard(io_lock_);
  active_ = active;
  activated_ = true;
}

void Block::Reset() {
  std::lock_guard guard(io_lock_);
  activated_ = false;
}

void Block::Attach(std::unique_ptr<BlockFile> file) {
  std::lock_guard guard(io_lock_);
  capacity_sectors_.store(file->size_bytes() / kSectorSize, std::memory_order_release);
  file_ = std::move(file);
}

std::unique_ptr<BlockFile> Block::Detach() {
  std::lock_guard guard(io_lock_);
  capacity_sectors_.store(0, std::memory_order_release);
  return std::move(file_);
}

void Block::ProcessQueue(uint16_t index) {
  std::lock_guard guard(io_lock_);
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
  // One interrupt for the whole batch the driver posted.
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
      // a driver that ignored VIRTIO_BLK_F_RO (or saw a writable empty slot
      // that a read-only disk was hot-plugged into).
      if (!file_ || file_->read_only()) return kStatusIoErr;
      return Transfer(header.sector, chain, false, written);
    case kRequestFlush:
      if (!file_) return kStatusIoErr;
      return ::fdatasync(file_->fd()) == 0 ? kStatusOk : kStatusIoErr;
    case kRequestGetId: {
      // Serial number: up to 20 bytes into the data segment between the
      // header and the status byte; a chain of only header + status has no
      // room for it, and the status byte is never written over.
      if (chain.segments.size() < 3) return kStatusIoErr;
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
  if (!file_) return kStatusIoErr;
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
  // The used ring's length is 32 bits: a longer request cannot be reported.
  if (total % kSectorSize != 0 || total > std::numeric_limits<uint32_t>::max() - 1) return kStatusIoErr;
  uint64_t capacity = capacity_sectors();
  if (sector > capacity || total / kSectorSize > capacity - sector) return kStatusIoErr;
  off_t offset = static_cast<off_t>(sector * kSectorSize);

  bool aligned = true;
  if (file_->direct()) {
    for (const auto& v : iov) {
      if (reinterpret_cast<uintptr_t>(v.iov_base) % kDirectAlignment != 0 || v.iov_len % kSectorSize != 0) {
        aligned = false;
      }
    }
  }
  if (aligned) {
    if (!TransferAll(file_->fd(), iov, total, offset, to_guest)) return kStatusIoErr;
  } else {
    // O_DIRECT needs aligned host buffers: bounce through one, a bounded
    // chunk at a time.
    std::unique_ptr<uint8_t, decltype(&std::free)> bounce(
        static_cast<uint8_t*>(std::aligned_alloc(kDirectAlignment, kBounceBytes)), &std::free);
    if (!bounce) return kStatusIoErr;
    size_t seg = 0, seg_off = 0;
    for (uint64_t done = 0; done < total;) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(kBounceBytes, total - done));
      off_t at = offset + static_cast<off_t>(done);
      std::vector<iovec> one = {{bounce.get(), chunk}};
      if (!to_guest) CopyChunk(iov, &seg, &seg_off, bounce.get(), chunk, true);
      if (!TransferAll(file_->fd(), one, chunk, at, to_guest)) return kStatusIoErr;
      if (to_guest) CopyChunk(iov, &seg, &seg_off, bounce.get(), chunk, false);
      done += chunk;
    }
  }
  if (to_guest) {
    // Written behind KVM's back: live migration must send these pages again.
    for (size_t i = 1; i < chain.segments.size(); ++i) {
      active_.memory->MarkDirty(chain.segments[i].address, chain.segments[i].length);
    }
    *written = static_cast<uint32_t>(total);
  }
  return kStatusOk;
}

}  // namespace virga::virtio
