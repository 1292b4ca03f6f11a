// virtio-net (virtio 1.x, 5.1) over a tap. A NIC slot is always a virtio-net
// device; without a tap its link is down (docs/devices.md). Frames move on
// the slot's own I/O thread: guest TX is written to the tap straight from
// guest memory (writev), tap frames are read once and copied into the
// guest's receive buffers, several buffers per frame with MRG_RXBUF.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/tap.h"
#include "io/event_loop.h"
#include "virtio/device.h"
#include "virtio/mac_translation.h"

namespace virga::virtio {

struct NetCounters {
  uint64_t rx_frames, tx_frames, rx_bytes, tx_bytes, rx_dropped, tx_dropped;
  // What the throughput depends on, independent of the machine's load:
  // the driver's queue notifications served (ioeventfd wakeups), the
  // used-buffer interrupts raised per queue, the transmitted frames that
  // were TSO (a GSO type in their header), and how often the tap had no
  // room for a frame.
  uint64_t tx_notifications, rx_notifications, tx_interrupts, rx_interrupts, tx_gso_frames, tx_blocked;
};

class Net : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;

  // `loop` is the slot's I/O thread, where the tap's readiness is watched.
  // `mac` is both what the guest reads and what the network sees.
  Net(std::array<uint8_t, 6> mac, std::unique_ptr<Tap> tap, std::shared_ptr<EventLoop> loop);
  ~Net() override;

  uint32_t device_id() const override { return kDeviceIdNet; }
  uint64_t features() const override;
  uint16_t queue_count() const override { return 2; }
  uint16_t queue_max_size() const override { return 256; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  void WriteConfig(uint64_t, const uint8_t*, uint32_t) override {}
  void Activate(const ActiveQueues& active, uint64_t driver_features) override;
  void ProcessQueue(uint16_t queue) override;
  void Reset() override;
  uint16_t HeldChains(uint16_t queue) const override;

  // Hot-plug: the link comes up. The caller raises the configuration-change
  // interrupt afterwards (never while holding a lock of ours).
  void Attach(std::unique_ptr<Tap> tap);
  // Hot-unplug: the link goes down, a frame half delivered is dropped, and
  // the tap is handed back for the caller to close.
  std::unique_ptr<Tap> Detach();

  // The MAC the guest's driver read when it probed, and the one the
  // network sees; frames are rewritten between the two when they differ
  // (mac_translation.h).
  std::array<uint8_t, 6> guest_mac() const { return Unpack(guest_mac_.load(std::memory_order_acquire)); }
  std::array<uint8_t, 6> wire_mac() const { return Unpack(wire_mac_.load(std::memory_order_acquire)); }
  // Before the guest runs (a restore or an incoming migration takes the
  // guest MAC its driver has read already, and the wire MAC it is given).
  void SetMacs(const std::array<uint8_t, 6>& guest, const std::array<uint8_t, 6>& wire);
  bool link_up() const { return link_up_.load(std::memory_order_acquire); }
  bool driver_ready() const;
  NetCounters counters() const;

 private:
  static std::array<uint8_t, 6> Unpack(uint64_t packed);
  void OnTapEvent(uint32_t events);
  // Both return whether they put entries in their used ring that no
  // interrupt has covered yet; the caller raises it (InterruptIfWantedLocked)
  // once the pass is over, so a transmit and the replies it drew are
  // signalled together.
  bool ReceiveLocked();
  bool TransmitLocked();
  // Raises the used-buffer interrupt for `queue` when the driver wants it.
  void InterruptIfWantedLocked(uint16_t queue);
  void WatchTapLocked(bool readable);
  // Registers the tap for what is awaited: readable while the guest has
  // receive buffers, writable while a transmit waits for room.
  void UpdateWatchLocked();
  void ApplyOffloadsLocked();
  // Copies the pending frame into receive buffers; false when the guest
  // has not posted enough of them yet (the frame waits).
  bool DeliverPendingLocked(Queue& queue, bool* used_any);
  // Translating: the chain's header and the start of its frame copied out
  // of guest memory (the guest may still read its buffers) and rewritten;
  // `iov` then takes that copy and the rest of the chain.
  void RewriteTransmitLocked(std::vector<iovec>* iov, size_t total);

  std::atomic<uint64_t> guest_mac_{0}, wire_mac_{0};  // the 6 bytes, low first
  std::atomic<bool> translating_{false};
  const std::shared_ptr<EventLoop> loop_;
  std::atomic<bool> link_up_{false};

  mutable std::mutex io_lock_;
  std::unique_ptr<Tap> tap_;
  bool watching_ = false;  // tap fd registered with the loop
  bool want_readable_ = false;
  uint32_t watched_events_ = 0;  // as registered, to skip unchanged updates
  // The tap refused a frame for lack of room (EAGAIN): transmit stops, the
  // frame stays in the ring, and goes once the tap is writable again.
  bool tx_blocked_ = false;
  ActiveQueues active_{};
  bool activated_ = false;
  uint64_t driver_features_ = 0;
  // The frame read from the tap and not yet fully given to the guest,
  // and the receive buffers already taken for it.
  std::vector<uint8_t> frame_;
  size_t frame_len_ = 0;
  std::vector<DescriptorChain> frame_chains_;
  std::vector<uint8_t> tx_rewritten_;

  std::atomic<uint64_t> rx_frames_{0}, tx_frames_{0}, rx_bytes_{0}, tx_bytes_{0}, rx_dropped_{0}, tx_dropped_{0};
  std::atomic<uint64_t> tx_notifications_{0}, rx_notifications_{0}, tx_interrupts_{0}, rx_interrupts_{0},
      tx_gso_frames_{0}, tx_blocked_count_{0};
};

}  // namespace virga::virtio
