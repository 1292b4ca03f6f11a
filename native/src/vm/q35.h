// The q35 board (docs/q35.md): a PCIe root complex, pcie.0, with the host
// bridge at 00:00.0, configuration through ECAM (described by the MCFG)
// and ports 0xcf8/0xcfc, and the host bridge with its windows in the DSDT;
// the command line's virtio-pci functions (blk, net, balloon) on pcie.0,
// each with its own I/O thread, MSI-X through KVM GSI routes and irqfds,
// and an ioeventfd per queue on its notify registers. Their BARs are
// placed in the root bus's window before the guest runs, as firmware
// would. The rest of the machine (RAM, vCPUs, COM1, RTC, power button,
// reset) is the core's, as on the microvm. Not built yet, and refused by
// name: root ports, hot-plug, snapshots and migration. Host functions
// passed through (vfio-pci) are q35_vfio.h's.
#pragma once

#include <memory>
#include <vector>

#include "devices/irq.h"
#include "devices/pci/root_bus.h"
#include "io/event_loop.h"
#include "kvm/gsi_routes.h"
#include "virtio/pci_transport.h"
#include "vm/board.h"
#include "vm/io_threads.h"
#include "vm/machine_config.h"
#include "vm/q35_vfio.h"

namespace virga {

class Q35Board : public Board {
 public:
  // Where function slot.fn's BARs go: BAR 0 at the start of its share
  // of the root bus's window, BAR 1 after it.
  static constexpr uint64_t kBarStride = 0x8000;

  explicit Q35Board(const MachineConfig& config);
  ~Q35Board() override;

  const char* name() const override { return "q35"; }
  void CreateDevices(BoardContext& context, const MachineLayout* saved) override;
  void DescribeAcpi(acpi::AcpiLayout* layout) const override;
  void Start(bool paused) override;
  void Pause() override;
  void Resume() override;
  void Stop() override;
  void Reset() override;
  void RequireSavable() const override;

 private:
  struct Function {
    std::shared_ptr<EventLoop> loop;
    std::vector<std::unique_ptr<IrqLine>> vectors;  // an irqfd per MSI-X vector
    std::shared_ptr<virtio::PciTransport> transport;
  };

  void AddVirtio(BoardContext& context, const PciDeviceConfig& config, bool multifunction);
  void AddVfio(BoardContext& context, const PciDeviceConfig& config, bool multifunction);

  const MachineConfig config_;
  std::shared_ptr<pci::RootBus> root_;
  std::unique_ptr<kvm::GsiRoutes> routes_;
  std::vector<Function> functions_;
  std::unique_ptr<Q35Vfio> vfio_;
  IoThreads io_threads_;
};

}  // namespace virga
