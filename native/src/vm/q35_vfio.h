// The q35 board's pass-through functions (vfio-pci, docs/q35.md "VFIO"):
// the VM's one VFIO container (opened with the first function; it maps
// guest RAM for their DMA), and for each function its MSI vectors (a GSI,
// a KVM route and an irqfd each) and the KVM memory slots its mappable
// BARs take where the guest puts them. Create builds a function from a
// parsed {host|sysfsdev, id}, ready for any bus: the command line's go on
// pcie.0 with BARs placed as firmware would (PlaceBars); a hot-plugged one
// behind a root port gets its BARs from the guest.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "devices/irq.h"
#include "devices/pci/vfio_container.h"
#include "devices/pci/vfio_pci_function.h"
#include "kvm/gsi_routes.h"
#include "vm/board.h"
#include "vm/machine_config.h"

namespace virga {

class Q35Vfio {
 public:
  Q35Vfio(kvm::GsiRoutes* routes, std::string dev = "/dev/vfio", std::string sysfs = "/sys")
      : routes_(routes), dev_(std::move(dev)), sysfs_(std::move(sysfs)) {}

  // Throws, naming the device, when /dev/vfio or the host function is
  // missing, the function is not bound to vfio-pci, or its IOMMU group is
  // not viable.
  std::shared_ptr<pci::VfioPciFunction> Create(BoardContext& context, const PciDeviceConfig& config);
  // Firmware's part for a function on pcie.0: each BAR at the next free
  // address of the root bus's window past the virtio functions' share,
  // aligned to its size; throws, naming the device, when the window is full.
  void PlaceBars(pci::VfioPciFunction& function, const std::string& id);
  // The ids of the functions passed through (snapshots and migration refuse them).
  const std::vector<std::string>& ids() const { return ids_; }

 private:
  kvm::GsiRoutes* routes_;
  std::string dev_;
  std::string sysfs_;
  std::unique_ptr<pci::VfioContainer> container_;
  std::vector<std::unique_ptr<IrqLine>> vectors_;
  std::vector<std::string> ids_;
  // KVM memory slots for BARs, six a function, past guest RAM's.
  uint32_t next_slot_ = 32;
  uint64_t next_bar_ = 0;
};

}  // namespace virga
