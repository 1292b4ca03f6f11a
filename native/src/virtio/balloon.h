// virtio-balloon (virtio 1.x, 5.5): the host asks for a target size; the
// guest gives pages back (inflate) or takes them again (deflate). Inflated
// pages go back to the host through guest RAM's backing (GuestMemory::
// Discard); a deflated page comes back, zeroed, on its next touch. The guest's
// memory statistics arrive on the stats queue whenever the host asks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "virtio/device.h"

namespace virga::virtio {

struct BalloonConfig {
  bool deflate_on_oom = false;
  bool free_page_reporting = false;
};

struct BalloonStats {
  std::map<uint16_t, uint64_t> values;  // VIRTIO_BALLOON_S_* tag → value
  int64_t updated_unix = 0;             // 0: never reported
};

class Balloon : public VirtioDevice {
 public:
  // Stats tags (virtio 1.x, 5.5.6.3).
  static constexpr uint16_t kStatSwapIn = 0, kStatSwapOut = 1, kStatMajorFaults = 2, kStatMinorFaults = 3,
                            kStatFreeMemory = 4, kStatTotalMemory = 5, kStatAvailableMemory = 6,
                            kStatDiskCaches = 7;

  // `on_actual` runs (on a vCPU thread) when the driver reports a new
  // balloon size, in pages of 4 KiB.
  Balloon(const BalloonConfig& config, std::function<void(uint32_t actual_pages)> on_actual);

  uint32_t device_id() const override { return kDeviceIdBalloon; }
  uint64_t features() const override;
  uint16_t queue_count() const override { return config_.free_page_reporting ? 4 : 3; }
  uint16_t queue_max_size() const override { return 128; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  void WriteConfig(uint64_t offset, const uint8_t* data, uint32_t len) override;
  void Activate(const ActiveQueues& active, uint64_t driver_features) override;
  void ProcessQueue(uint16_t queue) override;
  void Reset() override;
  uint16_t HeldChains(uint16_t queue) const override;
  void SaveState(state::ByteWriter& out) const override;
  void RestoreState(state::ByteReader& in) override;

  // The balloon size the host wants, in 4 KiB pages. The caller raises the
  // configuration-change interrupt afterwards.
  void SetTarget(uint32_t pages) { target_pages_.store(pages, std::memory_order_release); }
  uint32_t target_pages() const { return target_pages_.load(std::memory_order_acquire); }
  uint32_t actual_pages() const { return actual_pages_.load(std::memory_order_acquire); }
  bool driver_ready() const;
  // Hands the stats buffer back so the guest refills it; the new figures
  // arrive a moment later (Stats()).
  void RequestStats();
  BalloonStats Stats() const;

 private:
  enum class Role { kInflate, kDeflate, kStats, kReporting, kNone };
  Role RoleOf(uint16_t queue) const;
  void Inflate(Queue& queue);
  void TakeStats(Queue& queue);
  void Report(Queue& queue);

  const BalloonConfig config_;
  const std::function<void(uint32_t)> on_actual_;
  std::atomic<uint32_t> target_pages_{0};
  std::atomic<uint32_t> actual_pages_{0};

  mutable std::mutex io_lock_;
  ActiveQueues active_{};
  bool activated_ = false;
  uint64_t driver_features_ = 0;
  std::optional<uint16_t> stats_head_;  // the stats buffer the device holds
  uint16_t stats_queue_ = 0;
  BalloonStats stats_;
};

}  // namespace virga::virtio
