// virtio-blk (virtio 1.x, 5.2) over a BlockFile. A slot without a backend
// is a disk of capacity 0; hot-plug attaches one later (docs/devices.md).
// Requests are served on the slot's own I/O thread; `io_lock_` keeps
// attach/detach/reset from changing the backend under a request in flight,
// and is never taken by a vCPU reading the configuration.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "backends/block_file.h"
#include "virtio/device.h"

namespace virga::virtio {

class Block : public VirtioDevice {
 public:
  // `file` may be null (an empty slot). VIRTIO_BLK_F_RO is offered when the
  // disk present at boot is read-only; features never change after that.
  explicit Block(std::unique_ptr<BlockFile> file = nullptr);

  uint32_t device_id() const override { return kDeviceIdBlock; }
  uint64_t features() const override;
  uint16_t queue_count() const override { return 1; }
  uint16_t queue_max_size() const override { return 256; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  void WriteConfig(uint64_t, const uint8_t*, uint32_t) override {}
  void Activate(const ActiveQueues& active, uint64_t driver_features) override;
  void ProcessQueue(uint16_t queue) override;
  void Reset() override;

  // Hot-plug. The caller raises the configuration-change interrupt after.
  void Attach(std::unique_ptr<BlockFile> file);
  // Hot-unplug: waits for a request in flight, then hands the backend back
  // (the caller closes it). Later requests fail with VIRTIO_BLK_S_IOERR.
  std::unique_ptr<BlockFile> Detach();

  uint64_t capacity_sectors() const { return capacity_sectors_.load(std::memory_order_acquire); }
  bool read_only() const;

 private:
  uint8_t HandleRequest(const DescriptorChain& chain, uint32_t* written);
  uint8_t Transfer(uint64_t sector, const DescriptorChain& chain, bool to_guest, uint32_t* written);

  const bool ro_feature_;
  mutable std::mutex io_lock_;
  std::unique_ptr<BlockFile> file_;
  std::atomic<uint64_t> capacity_sectors_{0};
  ActiveQueues active_{};
  bool activated_ = false;
};

}  // namespace virga::virtio
