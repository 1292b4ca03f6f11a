// The host side of VFIO pass-through (Documentation/driver-api/vfio.rst):
// finding the host function `-device vfio-pci` names and checking it is
// bound to vfio-pci, and the VM's one container, which holds the IOMMU
// groups of its functions (each must be viable: every function in it
// bound to vfio-pci or to no driver) and maps all of guest RAM for their
// DMA (type 1 v2 IOMMU, guest-physical address = I/O virtual address).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/fd.h"
#include "devices/pci/vfio_device.h"
#include "memory/guest_memory.h"

namespace virga::pci {

// "DDDD:BB:SS.F" (or "BB:SS.F", domain 0) in lower case, or "" when `text`
// is not a PCI address.
std::string CanonicalHostAddress(const std::string& text);

struct HostFunction {
  std::string address;  // DDDD:BB:SS.F
  uint32_t group = 0;   // its IOMMU group
};

// `name` is a host address (host=) or a sysfs directory (sysfsdev=). Throws,
// naming the function, when it is not there, has no IOMMU group, or is not
// bound to vfio-pci. `sysfs`: where sysfs is mounted (tests use a tree of
// their own).
HostFunction LocateHostFunction(const std::string& name, bool is_sysfs_path, const std::string& sysfs = "/sys");

// Made with std::make_shared: each open group keeps its container open.
class VfioContainer : public std::enable_shared_from_this<VfioContainer> {
 public:
  // Opens `<dev>/vfio`, throwing by name when VFIO is not on this host.
  explicit VfioContainer(const GuestMemory* memory, const std::string& dev = "/dev/vfio");
  // Opens the function's group (once per group; the first also sets the
  // IOMMU and maps guest RAM) and then the function. The device holds its
  // group open: when the last device of a group closes, the group leaves
  // the container, and when the last group has left, the kernel drops the
  // IOMMU and its DMA mappings. Nothing stays open when this throws.
  std::unique_ptr<VfioDevice> OpenDevice(const HostFunction& function, const std::string& sysfs = "/sys");

 private:
  struct Group;
  void MapGuestRam();

  const GuestMemory* memory_;
  std::string dev_;
  UniqueFd container_;
  std::map<uint32_t, std::weak_ptr<Group>> groups_;
  bool iommu_set_ = false;
};

}  // namespace virga::pci
