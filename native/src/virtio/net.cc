#include "virtio/net.h"

#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace virga::virtio {

namespace {
constexpr uint64_t kFeatureCsum = 1ULL << 0;
constexpr uint64_t kFeatureGuestCsum = 1ULL << 1;
constexpr uint64_t kFeatureMac = 1ULL << 5;
constexpr uint64_t kFeatureGuestTso4 = 1ULL << 7;
constexpr uint64_t kFeatureGuestTso6 = 1ULL << 8;
constexpr uint64_t kFeatureHostTso4 = 1ULL << 11;
constexpr uint64_t kFeatureHostTso6 = 1ULL << 12;
constexpr uint64_t kFeatureMrgRxbuf = 1ULL << 15;
constexpr uint64_t kFeatureStatus = 1ULL << 16;

constexpr uint16_t kStatusLinkUp = 1;

// struct virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size,
// csum_start, csum_offset, num_buffers. With VIRTIO_F_VERSION_1 it is 12
// bytes whether or not MRG_RXBUF is negotiated; the tap reads and writes
// the same layout once told its size.
constexpr int kHeaderSize = 12;
constexpr size_t kNumBuffersOffset = 10;
constexpr uint8_t kHeaderNeedsCsum = 1;  // flags: VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr size_t kGsoTypeOffset = 1;     // VIRTIO_NET_HDR_GSO_NONE is 0
// The largest frame a tap hands over: a 64 KiB GSO packet plus headers.
constexpr size_t kFrameBytes = kHeaderSize + 65536 + 256;
// Frames handled per wake before the guest is interrupted, so a busy tap
// still lets the guest see its first packets early.
constexpr int kRxBatch = 64;

// Copies data into the device-writable segments of a chain from byte
// `offset` on; returns how many bytes fit.
size_t WriteIntoChain(const GuestMemory& memory, const DescriptorChain& chain, size_t offset, const uint8_t* data,
                      size_t len) {
  size_t copied = 0;
  for (const DescriptorSegment& seg : chain.segments) {
    if (!seg.device_writable) continue;
    if (offset >= seg.length) {
      offset -= seg.length;
      continue;
    }
    size_t n = std::min<size_t>(len - copied, seg.length - offset);
    if (!memory.Write(seg.address + offset, data + copied, n)) return copied;
    copied += n;
    offset = 0;
    if (copied == len) break;
  }
  return copied;
}

// The header's gso_type (its second byte) is not VIRTIO_NET_HDR_GSO_NONE:
// the guest handed a TSO frame of up to 64 KiB rather than one segment.
bool IsGsoFrame(const std::vector<iovec>& iov) {
  size_t offset = kGsoTypeOffset;
  for (const iovec& part : iov) {
    if (offset < part.iov_len) return static_cast<const uint8_t*>(part.iov_base)[offset] != 0;
    offset -= part.iov_len;
  }
  return false;
}

size_t WritableBytes(const DescriptorChain& chain) {
  size_t total = 0;
  for (const DescriptorSegment& seg : chain.segments) {
    if (seg.device_writable) total += seg.length;
  }
  return total;
}
}  // namespace

Net::Net(std::array<uint8_t, 6> mac, std::unique_ptr<Tap> tap, std::shared_ptr<EventLoop> loop)
    : loop_(std::move(loop)) {
  SetMacs(mac, mac);
  frame_.resize(kFrameBytes);
  if (tap) Attach(std::move(tap));
}

Net::~Net() {
  std::lock_guard guard(io_lock_);
  if (watching_ && tap_) loop_->Remove(tap_->fd());
}

uint64_t Net::features() const {
  // The same set with or without a tap: the guest negotiates once, at boot,
  // and a tap hot-plugged later must still match (taps all take these).
  return kFeatureVersion1 | kFeatureEventIdx | kFeatureIndirectDesc | kFeatureMac | kFeatureStatus | kFeatureMrgRxbuf | kFeatureCsum | kFeatureGuestCsum |
         kFeatureHostTso4 | kFeatureHostTso6 | kFeatureGuestTso4 | kFeatureGuestTso6;
}

void Net::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_net_config: mac[6], status (le16).
  uint8_t config[8] = {};
  std::array<uint8_t, 6> mac = guest_mac();
  std::memcpy(config, mac.data(), 6);
  uint16_t status = link_up() ? kStatusLinkUp : 0;
  std::memcpy(config + 6, &status, 2);
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
}

void Net::Activate(const ActiveQueues& active, uint64_t driver_features) {
  std::lock_guard guard(io_lock_);
  active_ = active;
  driver_features_ = driver_features;
  activated_ = true;
  if (tap_) {
    ApplyOffloadsLocked();
    WatchTapLocked(true);
  }
}

void Net::Reset() {
  std::lock_guard guard(io_lock_);
  activated_ = false;
  frame_len_ = 0;
  frame_chains_.clear();
  tx_blocked_ = false;
  WatchTapLocked(false);
}

uint16_t Net::HeldChains(uint16_t queue) const {
  std::lock_guard guard(io_lock_);
  // Buffers holding part of a frame: the frame itself is not saved (the
  // restored guest just never got it, as if the wire had dropped it).
  return queue == kRxQueue ? static_cast<uint16_t>(frame_chains_.size()) : 0;
}

std::array<uint8_t, 6> Net::Unpack(uint64_t packed) {
  std::array<uint8_t, 6> mac{};
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(packed >> (8 * i));
  return mac;
}

void Net::SetMacs(const std::array<uint8_t, 6>& guest, const std::array<uint8_t, 6>& wire) {
  auto pack = [](const std::array<uint8_t, 6>& mac) {
    uint64_t packed = 0;
    for (int i = 0; i < 6; ++i) packed |= uint64_t{mac[i]} << (8 * i);
    return packed;
  };
  std::lock_guard guard(io_lock_);
  guest_mac_.store(pack(guest), std::memory_order_release);
  wire_mac_.store(pack(wire), std::memory_order_release);
  translating_.store(guest != wire, std::memory_order_release);
}

bool Net::driver_ready() const {
  std::lock_guard guard(io_lock_);
  return activated_;
}

NetCounters Net::counters() const {
  return {rx_frames_.load(),        tx_frames_.load(),        rx_bytes_.load(),      tx_bytes_.load(),
          rx_dropped_.load(),       tx_dropped_.load(),       tx_notifications_.load(),
          rx_notifications_.load(), tx_interrupts_.load(),    rx_interrupts_.load(),
          tx_gso_frames_.load(),    tx_blocked_count_.load()};
}

void Net::Attach(std::unique_ptr<Tap> tap) {
  std::lock_guard guard(io_lock_);
  tap->SetHeaderSize(kHeaderSize);
  tap_ = std::move(tap);
  if (activated_) {
    ApplyOffloadsLocked();
    WatchTapLocked(true);
  }
  link_up_.store(true, std::memory_order_release);
}

std::unique_ptr<Tap> Net::Detach() {
  std::lock_guard guard(io_lock_);
  link_up_.store(false, std::memory_order_release);
  if (watching_ && tap_) loop_->Remove(tap_->fd());
  watching_ = false;
  tx_blocked_ = false;
  if (activated_ && !frame_chains_.empty()) {
    // Buffers holding part of a frame go back empty: the guest drops them.
    Queue& queue = (*active_.queues)[kRxQueue];
    for (const DescriptorChain& chain : frame_chains_) queue.PushUsed(*active_.memory, chain.head, 0);
    active_.signal_used(kRxQueue);
  }
  frame_chains_.clear();
  frame_len_ = 0;
  return std::move(tap_);
}

void Net::ApplyOffloadsLocked() {
  unsigned flags = 0;
  if (driver_features_ & kFeatureGuestCsum) {
    flags |= TUN_F_CSUM;
    // The tap refuses segmentation offloads without checksum offload.
    if (driver_features_ & kFeatureGuestTso4) flags |= TUN_F_TSO4;
    if (driver_features_ & kFeatureGuestTso6) flags |= TUN_F_TSO6;
  }
  tap_->SetOffloads(flags);
}

void Net::WatchTapLocked(bool readable) {
  // Level-triggered: while the guest has no receive buffers the tap stays
  // readable, so it is unwatched until the guest posts some.
  want_readable_ = readable;
  UpdateWatchLocked();
}

void Net::UpdateWatchLocked() {
  if (!tap_) return;
  uint32_t events = (want_readable_ ? static_cast<uint32_t>(EPOLLIN) : 0u) |
                    (tx_blocked_ ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  if (!watching_) {
    if (events == 0) return;
    loop_->Add(tap_->fd(), events, [this](uint32_t ready) { OnTapEvent(ready); });
    watching_ = true;
  } else if (events != watched_events_) {
    loop_->Modify(tap_->fd(), events);
  }
  watched_events_ = events;
}

void Net::OnTapEvent(uint32_t events) {
  std::lock_guard guard(io_lock_);
  bool transmitted = false;
  if (events & EPOLLOUT) {
    tx_blocked_ = false;
    UpdateWatchLocked();
    if (activated_) transmitted = TransmitLocked();
  }
  bool received = (transmitted || (events & ~static_cast<uint32_t>(EPOLLOUT))) && ReceiveLocked();
  if (transmitted) InterruptIfWantedLocked(kTxQueue);
  if (received) InterruptIfWantedLocked(kRxQueue);
}

void Net::ProcessQueue(uint16_t queue) {
  std::lock_guard guard(io_lock_);
  if (!activated_) return;
  bool transmitted = false;
  if (queue == kTxQueue) {
    tx_notifications_.fetch_add(1, std::memory_order_relaxed);
    transmitted = TransmitLocked();
  }
  if (queue == kRxQueue) rx_notifications_.fetch_add(1, std::memory_order_relaxed);
  // After a transmit, what the host answered at once (a local TCP peer
  // acknowledges inside the tap write itself) is already waiting: it goes
  // to the guest in the same pass, with the transmit's completions, rather
  // than one more I/O-thread wakeup and interrupt later. The guest's TCP
  // sees its ACK as soon as its frame is known to be sent.
  bool received = (queue == kRxQueue || transmitted) && ReceiveLocked();
  if (transmitted) InterruptIfWantedLocked(kTxQueue);
  if (received) InterruptIfWantedLocked(kRxQueue);
}

bool Net::DeliverPendingLocked(Queue& queue, bool* used_any) {
  const GuestMemory& memory = *active_.memory;
  bool mergeable = (driver_features_ & kFeatureMrgRxbuf) != 0;
  size_t delivered = 0;
  for (const DescriptorChain& chain : frame_chains_) delivered += WritableBytes(chain);
  delivered = std::min(delivered, frame_len_);
  while (delivered < frame_len_) {
    std::optional<DescriptorChain> chain = queue.Pop(memory);
    if (!chain) return false;
    size_t room = WritableBytes(*chain);
    if (!mergeable && room < frame_len_) {
      // Without mergeable buffers a frame must fit one chain.
      queue.PushUsed(memory, chain->head, 0);
      *used_any = true;
      rx_dropped_.fetch_add(1, std::memory_order_relaxed);
      frame_len_ = 0;
      return true;
    }
    size_t n = WriteIntoChain(memory, *chain, 0, frame_.data() + delivered, frame_len_ - delivered);
    if (n == 0) {
      queue.PushUsed(memory, chain->head, 0);
      *used_any = true;
      continue;
    }
    delivered += n;
    frame_chains_.push_back(std::move(*chain));
  }
  // The first buffer's header says how many buffers the frame took.
  uint16_t buffers = static_cast<uint16_t>(frame_chains_.size());
  uint8_t le[2] = {static_cast<uint8_t>(buffers & 0xff), static_cast<uint8_t>(buffers >> 8)};
  WriteIntoChain(memory, frame_chains_.front(), kNumBuffersOffset, le, 2);
  size_t left = frame_len_;
  for (const DescriptorChain& chain : frame_chains_) {
    uint32_t used = static_cast<uint32_t>(std::min(left, WritableBytes(chain)));
    queue.PushUsed(memory, chain.head, used);
    left -= used;
  }
  *used_any = true;
  rx_frames_.fetch_add(1, std::memory_order_relaxed);
  rx_bytes_.fetch_add(frame_len_ - kHeaderSize, std::memory_order_relaxed);
  frame_chains_.clear();
  frame_len_ = 0;
  return true;
}

bool Net::ReceiveLocked() {
  if (!activated_ || !tap_) return false;
  Queue& queue = (*active_.queues)[kRxQueue];
  if (!queue.ready()) return false;
  bool used_any = false;
  int batch = 0;
  for (;;) {
    if (frame_len_ > 0 && !DeliverPendingLocked(queue, &used_any)) {
      WatchTapLocked(false);  // until the guest posts buffers (RX notify)
      break;
    }
    ssize_t n = ::read(tap_->fd(), frame_.data(), frame_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      WatchTapLocked(true);
      break;
    }
    if (n <= kHeaderSize) continue;
    frame_len_ = static_cast<size_t>(n);
    if (translating_.load(std::memory_order_relaxed)) {
      RewriteIncoming(frame_.data() + kHeaderSize, frame_len_ - kHeaderSize, {guest_mac(), wire_mac()},
                      (frame_[0] & kHeaderNeedsCsum) != 0);
    }
    if (++batch == kRxBatch) {
      if (used_any) InterruptIfWantedLocked(kRxQueue);
      used_any = false;
      batch = 0;
    }
  }
  return used_any;
}

void Net::RewriteTransmitLocked(std::vector<iovec>* iov, size_t total) {
  size_t copy = kHeaderSize + std::min(total - kHeaderSize, kMacRewriteSpan);
  tx_rewritten_.resize(copy);
  size_t done = 0, index = 0;
  for (; index < iov->size() && done < copy; ++index) {
    iovec& seg = (*iov)[index];
    size_t n = std::min(seg.iov_len, copy - done);
    std::memcpy(tx_rewritten_.data() + done, seg.iov_base, n);
    done += n;
    if (n < seg.iov_len) {
      // The rest of this segment goes from guest memory as before.
      seg.iov_base = static_cast<uint8_t*>(seg.iov_base) + n;
      seg.iov_len -= n;
      break;
    }
  }
  // A segmentation-offload frame is TCP: only its Ethernet header names us.
  bool gso = tx_rewritten_[kGsoTypeOffset] != 0;
  size_t span = std::min(copy - kHeaderSize, gso ? kMacRewriteEthernetSpan : kMacRewriteSpan);
  RewriteOutgoing(tx_rewritten_.data() + kHeaderSize, span, {guest_mac(), wire_mac()},
                  (tx_rewritten_[0] & kHeaderNeedsCsum) != 0);
  iov->erase(iov->begin(), iov->begin() + static_cast<long>(index));
  iov->insert(iov->begin(), {tx_rewritten_.data(), copy});
}

bool Net::TransmitLocked() {
  if (tx_blocked_) return false;  // the tap says when it has room
  Queue& queue = (*active_.queues)[kTxQueue];
  const GuestMemory& memory = *active_.memory;
  bool used_any = false;
  std::vector<iovec> iov;
  while (auto chain = queue.Pop(memory)) {
    iov.clear();
    size_t total = 0;
    bool valid = !chain->segments.empty();
    for (const DescriptorSegment& seg : chain->segments) {
      uint8_t* host = seg.device_writable ? nullptr : memory.Translate(seg.address, seg.length);
      if (host == nullptr) {
        valid = false;
        break;
      }
      iov.push_back({host, seg.length});
      total += seg.length;
    }
    bool sent = false;
    if (valid && total > kHeaderSize && tap_ != nullptr && link_up()) {
      if (translating_.load(std::memory_order_relaxed)) RewriteTransmitLocked(&iov, total);
      // Zero copy: the tap takes the header and frame from guest memory.
      ssize_t n;
      do {
        n = ::writev(tap_->fd(), iov.data(), static_cast<int>(iov.size()));
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // Dropping it would make TCP back off; it waits in the ring instead.
        queue.Unpop();
        tx_blocked_ = true;
        tx_blocked_count_.fetch_add(1, std::memory_order_relaxed);
        UpdateWatchLocked();
        break;
      }
      sent = n == static_cast<ssize_t>(total);
    }
    if (sent) {
      tx_frames_.fetch_add(1, std::memory_order_relaxed);
      if (IsGsoFrame(iov)) tx_gso_frames_.fetch_add(1, std::memory_order_relaxed);
      tx_bytes_.fetch_add(total - kHeaderSize, std::memory_order_relaxed);
    } else {
      tx_dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    queue.PushUsed(memory, chain->head, 0);
    used_any = true;
  }
  return used_any;
}

void Net::InterruptIfWantedLocked(uint16_t queue) {
  if (!(*active_.queues)[queue].ShouldInterrupt(*active_.memory)) return;
  (queue == kTxQueue ? tx_interrupts_ : rx_interrupts_).fetch_add(1, std::memory_order_relaxed);
  active_.signal_used(queue);
}

}  // namespace virga::virtio
