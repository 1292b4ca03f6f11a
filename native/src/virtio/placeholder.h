// An unfilled NIC slot: device id 0, which drivers skip, until virtio-net
// and hot-plug fill it.
#pragma once

#include <cstring>

#include "virtio/device.h"

namespace virga::virtio {

class Placeholder : public VirtioDevice {
 public:
  uint32_t device_id() const override { return 0; }
  uint64_t features() const override { return kFeatureVersion1; }
  uint16_t queue_count() const override { return 0; }
  uint16_t queue_max_size() const override { return 0; }
  void ReadConfig(uint64_t, uint8_t* data, uint32_t len) override { std::memset(data, 0, len); }
  void WriteConfig(uint64_t, const uint8_t*, uint32_t) override {}
  void Activate(const ActiveQueues&, uint64_t) override {}
  void ProcessQueue(uint16_t) override {}
  void Reset() override {}
};

}  // namespace virga::virtio
