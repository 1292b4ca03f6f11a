// The q35 board's pass-through functions (vfio-pci, docs/q35.md "VFIO"):
// the VM's VFIO container (opened with the first function, closed with the
// last; it maps guest RAM for their DMA), and for each function its MSI
// vectors (a GSI, a KVM route and an irqfd each) and the KVM memory slots
// its mappable BARs take where the guest puts them. Create builds a
// function from a parsed {host|sysfsdev, id}, ready for any bus, with its
// BARs placed as firmware would: in the root bus's window past the virtio
// functions' share, or in a root port's window. Remove lets go of one
// that left the guest (hot-unplug), so the host function can be passed
// through again.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "devices/irq.h"
#include "devices/pci/vfio_container.h"
#include "devices/pci/vfio_pci_function.h"
#include "kvm/gsi_routes.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "vm/machine_config.h"

namespace virga {

class Q35Vfio {
 public:
  Q35Vfio(kvm::Vm* vm, GuestMemory* memory, kvm::GsiRoutes* routes, std::string dev = "/dev/vfio",
          std::string sysfs = "/sys")
      : vm_(vm), memory_(memory), routes_(routes), dev_(std::move(dev)), sysfs_(std::move(sysfs)) {}
  ~Q35Vfio();

  // Throws, naming the device, when /dev/vfio or the host function is
  // missing, the function is not bound to vfio-pci, its IOMMU group is not
  // viable, it is passed through already, or its BARs do not fit: in the
  // root bus's window (`window_size` 0), or in [window, window +
  // window_size) (a root port's, named `port`). Nothing it opened stays
  // open when it throws.
  std::shared_ptr<pci::VfioPciFunction> Create(const PciDeviceConfig& config, uint64_t window = 0,
                                               uint64_t window_size = 0, const std::string& port = "");
  // Function `id` has left the guest (its BARs are unmapped): its irqfds,
  // routes and memory slots go; its device, group and container close
  // once the last reference to the function is dropped.
  void Remove(const std::string& id);
  // The ids of the functions passed through (snapshots and migration refuse them).
  std::vector<std::string> ids() const;

 private:
  struct Passthrough {
    std::string id;
    std::string host;  // DDDD:BB:SS.F
    std::shared_ptr<pci::VfioPciFunction> function;
    std::vector<std::unique_ptr<IrqLine>> vectors;
    uint32_t first_slot = 0;
  };
  void PlaceBars(pci::VfioPciFunction& function, const std::string& id, uint64_t window, uint64_t window_size,
                 const std::string& port);
  void Release(Passthrough& gone);

  kvm::Vm* vm_;
  GuestMemory* memory_;
  kvm::GsiRoutes* routes_;
  std::string dev_;
  std::string sysfs_;
  // The main thread adds, a vCPU thread (the guest powering a slot off) removes.
  mutable std::mutex lock_;
  std::shared_ptr<pci::VfioContainer> container_;
  std::vector<Passthrough> functions_;
  // The first of each function's six KVM memory slots for BARs (from 32, past guest RAM's).
  std::set<uint32_t> slots_;
  uint64_t next_bar_ = 0;
};

}  // namespace virga
