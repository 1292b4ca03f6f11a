// virtio-blk (virtio 1.x, 5.2) over a raw file or block device. An empty
// slot is a disk of capacity 0 that hot-plug fills later.
#pragma once

#include <cstdint>
#include <string>

#include "common/fd.h"
#include "virtio/device.h"

namespace virga::virtio {

struct BlockBackendConfig {
  std::string path;
  bool read_only = false;
  bool direct = false;
};

class Block : public VirtioDevice {
 public:
  Block();  // empty slot
  explicit Block(const BlockBackendConfig& config);

  uint32_t device_id() const override { return kDeviceIdBlock; }
  uint64_t features() const override;
  uint16_t queue_count() const override { return 1; }
  uint16_t queue_max_size() const override { return 256; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  void WriteConfig(uint64_t, const uint8_t*, uint32_t) override {}
  void Activate(const ActiveQueues& active, uint64_t driver_features) override;
  void ProcessQueue(uint16_t queue) override;
  void Reset() override;

  uint64_t capacity_sectors() const { return capacity_sectors_; }
  bool read_only() const { return read_only_; }

 private:
  uint8_t HandleRequest(const DescriptorChain& chain, uint32_t* written);
  uint8_t Transfer(uint64_t sector, const DescriptorChain& chain, bool to_guest, uint32_t* written);

  UniqueFd file_;
  bool read_only_ = false;
  bool direct_ = false;
  uint64_t capacity_sectors_ = 0;
  ActiveQueues active_{};
  bool activated_ = false;
};

}  // namespace virga::virtio
