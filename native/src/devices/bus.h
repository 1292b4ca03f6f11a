// Port-I/O and MMIO dispatch: vCPU exits find the device owning an address.
// Devices lock themselves; the bus only maps ranges.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>

namespace virga {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual void Read(uint64_t offset, uint8_t* data, uint32_t len) = 0;
  virtual void Write(uint64_t offset, const uint8_t* data, uint32_t len) = 0;
};

class Bus {
 public:
  // Throws if the range overlaps one already mapped.
  void Insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device);
  // Unmaps the range that starts at `base` (a PCI BAR the guest moved);
  // false when none starts there.
  bool Remove(uint64_t base);
  // False when nothing is mapped at `address`.
  bool Read(uint64_t address, uint8_t* data, uint32_t len) const;
  bool Write(uint64_t address, const uint8_t* data, uint32_t len) const;

 private:
  struct Range {
    uint64_t size;
    std::shared_ptr<BusDevice> device;
  };
  std::shared_ptr<BusDevice> Find(uint64_t address, uint64_t* offset) const;

  mutable std::shared_mutex lock_;  // ranges change only at hot-plug time
  std::map<uint64_t, Range> ranges_;
};

}  // namespace virga
