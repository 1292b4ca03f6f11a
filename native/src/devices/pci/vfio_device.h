// One host PCI function opened through VFIO (Documentation/driver-api/vfio.rst):
// its regions (BARs and configuration space, reached by pread/pwrite at
// each region's offset in the device fd, and mmap for the BARs the kernel
// allows), its interrupts (VFIO_DEVICE_SET_IRQS with one eventfd per
// vector) and its reset. VfioDeviceIo is what the emulated function
// (vfio_pci_function.h) needs of it, so that function is unit-tested
// over a fake without /dev/vfio.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/fd.h"

namespace virga::pci {

// VFIO's region numbers for a PCI function (VFIO_PCI_*_REGION_INDEX).
constexpr uint32_t kVfioBarRegion0 = 0;
constexpr uint32_t kVfioConfigRegion = 7;

struct VfioRegion {
  uint64_t size = 0;  // 0: the function has no such region
  bool mappable = false;
};

class VfioDeviceIo {
 public:
  virtual ~VfioDeviceIo() = default;
  // The host address (DDDD:BB:SS.F), for messages.
  virtual const std::string& name() const = 0;
  virtual VfioRegion Region(uint32_t index) const = 0;
  // False when the kernel refused or cut the access short.
  virtual bool ReadRegion(uint32_t index, uint64_t offset, void* data, uint32_t len) = 0;
  virtual bool WriteRegion(uint32_t index, uint64_t offset, const void* data, uint32_t len) = 0;
  // The region mapped into the VMM (shared, read-write), or null when it
  // cannot be (not mappable, or the kernel refused).
  virtual void* MapRegion(uint32_t index) = 0;
  // MSI: vector i raises eventfds[i]; empty turns MSI off at the device.
  virtual void SetMsi(const std::vector<int>& eventfds) = 0;
  // Function-level reset when the device has one; false otherwise.
  virtual bool Reset() = 0;
};

class VfioDevice : public VfioDeviceIo {
 public:
  // `fd`: from VFIO_GROUP_GET_DEVICE_FD; throws when it is not a PCI
  // function. `group` stays open until the device fd has closed.
  VfioDevice(std::string name, UniqueFd fd, std::shared_ptr<void> group = nullptr);
  ~VfioDevice() override;

  const std::string& name() const override { return name_; }
  VfioRegion Region(uint32_t index) const override;
  bool ReadRegion(uint32_t index, uint64_t offset, void* data, uint32_t len) override;
  bool WriteRegion(uint32_t index, uint64_t offset, const void* data, uint32_t len) override;
  void* MapRegion(uint32_t index) override;
  void SetMsi(const std::vector<int>& eventfds) override;
  bool Reset() override;

 private:
  struct Info {
    VfioRegion region;
    uint64_t offset = 0;  // where the region starts in the device fd
    void* mapped = nullptr;
  };
  std::shared_ptr<void> group_;  // first: destroyed after fd_
  std::string name_;
  UniqueFd fd_;
  bool resettable_ = false;
  uint32_t msi_vectors_ = 0;
  std::vector<Info> regions_;
};

}  // namespace virga::pci
