// A function on a PCI bus, as its bus sees it: configuration reads and
// writes. Devices serialise their own state; the bus only routes.
#pragma once

#include <cstdint>
#include <mutex>

#include "devices/pci/config_space.h"

namespace virga::pci {

class PciDevice {
 public:
  explicit PciDevice(const PciId& id) : config_(id) {}
  virtual ~PciDevice() = default;

  virtual uint32_t ReadConfig(uint32_t offset, uint32_t len) {
    std::lock_guard guard(lock_);
    return config_.Read(offset, len);
  }
  virtual void WriteConfig(uint32_t offset, uint32_t len, uint32_t value) {
    std::lock_guard guard(lock_);
    config_.Write(offset, len, value);
  }

 protected:
  std::mutex lock_;
  ConfigSpace config_;
};

}  // namespace virga::pci
