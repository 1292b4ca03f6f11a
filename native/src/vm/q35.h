// The q35 board (docs/q35.md): a PCIe root complex, pcie.0, with the host
// bridge at 00:00.0, configuration through ECAM (described by the MCFG)
// and ports 0xcf8/0xcfc, and the host bridge with its windows in the DSDT;
// the command line's virtio-pci functions (blk, net, balloon) on pcie.0,
// each with its own I/O thread, MSI-X through KVM GSI routes and irqfds,
// and an ioeventfd per queue on its notify registers. Their BARs are
// placed in the root bus's window before the guest runs, as firmware
// would. The rest of the machine (RAM, vCPUs, COM1, RTC, power button,
// reset) is the core's, as on the microvm. Snapshots and migration save
// every function generically (configuration space, then what the function
// adds: MSI-X, the virtio transport and device). Not built yet, and
// refused by name: root ports and hot-plug.
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

namespace virga {

class Q35Board : public Board {
 public:
  // Where function slot.fn's BARs go: BAR 0 at the start of its share
  // of the root bus's window, BAR 1 after it.
  static constexpr uint64_t kBarStride = 0x8000;
  // INTx: pin p (0 = INTA#) of slot s is IOAPIC pin kIntxFirstGsi + (s + p) % 4,
  // the usual swizzle, as the DSDT's _PRT tells the guest; free on q35
  // (the microvm's virtio-mmio lines use them, but not on this board).
  static constexpr uint32_t kIntxFirstGsi = 16;
  static uint32_t IntxGsi(uint32_t slot, uint32_t pin) { return kIntxFirstGsi + (slot + pin) % 4; }

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
  void FillConfigLayout(MachineLayout* layout) const override;
  void FillLayout(MachineLayout* layout) const override;
  void Save(state::StateFileWriter& file) const override;
  void Load(const state::StateFile& file) override;
  void AdoptIncoming(const MachineLayout& source) override;

 private:
  struct Function {
    PciDeviceConfig config;
    std::shared_ptr<virtio::Block> block;  // the one of these the function is
    std::shared_ptr<virtio::Net> net;
    std::shared_ptr<EventLoop> loop;
    std::vector<std::unique_ptr<IrqLine>> vectors;  // an irqfd per MSI-X vector
    std::unique_ptr<IrqLine> intx;                   // pin A's level-triggered irqfd
    UniqueFd resample;                               // KVM signals it at the line's EOI
    std::shared_ptr<virtio::PciTransport> transport;
  };

  void AddVirtio(BoardContext& context, const PciDeviceConfig& config, bool multifunction,
                 const MachineLayout* saved);

  const MachineConfig config_;
  std::shared_ptr<pci::RootBus> root_;
  std::shared_ptr<pci::ConfigPorts> config_ports_;
  std::unique_ptr<kvm::GsiRoutes> routes_;
  std::vector<Function> functions_;
  IoThreads io_threads_;
};

}  // namespace virga
