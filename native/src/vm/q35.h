// The q35 board (docs/q35.md): a PCIe root complex, pcie.0, with the host
// bridge at 00:00.0, configuration through ECAM (described by the MCFG)
// and ports 0xcf8/0xcfc, and the host bridge with its windows in the DSDT;
// the command line's virtio-pci functions (blk, net, balloon) on pcie.0 or
// in a root port's slot, each with its own I/O thread, MSI-X through KVM
// GSI routes and irqfds, and an ioeventfd per queue on its notify
// registers. Their BARs are placed before the guest runs, as firmware
// would: in the root bus's window, or in their root port's. Root ports
// (pcie-root-port) get bus numbers and memory windows the same way, and an
// MSI of their own for slot events. The rest of the machine (RAM, vCPUs,
// COM1, RTC, power button, reset) is the core's, as on the microvm.
//
// QMP's backends and native PCIe hot-plug (vm/q35_hotplug.cc): disks and
// NICs plugged into a root port's slot while the guest runs, and unplugged
// once the guest lets go of them. Snapshots and migration save every
// function generically (configuration space, then what the function adds:
// MSI-X, the virtio transport and device), a root port with the function
// in its slot; a VM with an unplug pending is refused by name. Host
// functions passed through (vfio-pci) are q35_vfio.h's.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/block_file.h"
#include "backends/tap.h"
#include "devices/irq.h"
#include "devices/pci/root_bus.h"
#include "devices/pci/root_port.h"
#include "io/event_loop.h"
#include "kvm/gsi_routes.h"
#include "virtio/balloon.h"
#include "virtio/pci_transport.h"
#include "vm/backend_registry.h"
#include "vm/board.h"
#include "vm/hotplug.h"
#include "vm/io_threads.h"
#include "vm/machine_config.h"
#include "vm/q35_vfio.h"

namespace virga {

class Q35Board : public Board, public HotplugDevices {
 public:
  // Where function slot.fn's BARs go: BAR 0 at the start of its share
  // of the root bus's window, BAR 1 after it.
  static constexpr uint64_t kBarStride = 0x8000;
  // INTx: pin p (0 = INTA#) of slot s is IOAPIC pin kIntxFirstGsi + (s + p) % 4,
  // the usual swizzle, as the DSDT's _PRT tells the guest; free on q35
  // (the microvm's virtio-mmio lines use them, but not on this board).
  static constexpr uint32_t kIntxFirstGsi = 16;
  static uint32_t IntxGsi(uint32_t slot, uint32_t pin) { return kIntxFirstGsi + (slot + pin) % 4; }
  // Root port n (bus n, from 1) has a 2 MiB memory window from here, past
  // the root bus functions' 256 * 32 KiB; its device's BARs start it.
  static constexpr uint64_t kRootPortWindows = 0xc1000000;
  static constexpr uint64_t kRootPortWindowSize = 0x200000;

  Q35Board(const MachineConfig& config, Emit on_event);
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
  HotplugDevices* hotplug_devices() override { return this; }

  // QMP (vm/q35_hotplug.cc).
  void AddBlockBackend(const std::string& node_name, const BlockFileConfig& file) override;
  void RemoveBlockBackend(const std::string& node_name) override;
  void AddNetBackend(const std::string& id, const std::string& ifname, UniqueFd fd,
                     const std::string& fd_label) override;
  void RemoveNetBackend(const std::string& id) override;
  // Into a root port's slot; the guest's hot-plug driver brings it up.
  void AddDevice(const DeviceAddRequest& request) override;
  // Presses the slot's attention button; DEVICE_DELETED follows once the
  // guest has powered the slot off.
  void DeleteDevice(const std::string& id) override;
  void SetBalloonTarget(uint64_t bytes) override;
  Json QueryBalloon() override;
  Json Describe() const override;

 private:
  enum class Kind { kBlock, kNet, kBalloon, kVfio };
  struct Function {
    PciDeviceConfig config;  // as the command line gave it; a hot-plugged one's kind, id and bus
    std::string id;
    std::string bus;      // "pcie.0", or the root port's id
    std::string addr;     // on that bus, "0x3.0"
    Kind kind = Kind::kBlock;
    std::string backend;  // its node-name / netdev id
    std::shared_ptr<EventLoop> loop;
    std::vector<std::unique_ptr<IrqLine>> vectors;  // an irqfd per MSI-X vector
    std::vector<uint32_t> gsis;
    std::shared_ptr<virtio::VirtioDevice> device;
    std::unique_ptr<IrqLine> intx;                   // pin A's level-triggered irqfd
    UniqueFd resample;                               // KVM signals it at the line's EOI
    std::shared_ptr<virtio::PciTransport> transport;  // null for vfio-pci
    std::shared_ptr<pci::VfioPciFunction> vfio;        // vfio-pci's
    std::string host;                                  // vfio-pci: DDDD:BB:SS.F
  };
  struct Port {
    std::shared_ptr<pci::RootPort> port;
    std::unique_ptr<IrqLine> irq;  // its hot-plug MSI's irqfd
    uint8_t bus = 0;
    uint64_t window = 0;
    std::string addr;  // on pcie.0
    uint32_t slot = 0;  // on pcie.0: its INTx pin's swizzle
  };

  void AddRootPort(BoardContext& context, const PciRootPortConfig& config, uint8_t bus);
  void AddColdPlugged(const PciDeviceConfig& config, bool multifunction, const MachineLayout* saved);
  // A virtio function around `device`, served by `loop` (not started):
  // MSI-X vectors with their GSIs and irqfds, notify ioeventfds that follow
  // BAR 0, its BARs from `base`, and INTx on `intx_gsi`.
  Function MakeFunction(std::shared_ptr<virtio::VirtioDevice> device, std::shared_ptr<EventLoop> loop,
                        uint64_t base, uint32_t intx_gsi);
  // What a NIC's default MAC derives from: unique per place.
  uint32_t MacPlace(const std::string& bus, uint32_t slot, uint32_t function) const;
  // The guest powered the slot of device `id` off (or a reset finished
  // its unplug): it leaves, its backend stays for blockdev-del/netdev_del.
  void Removed(const std::string& id);
  // A virtio function's part of that: its I/O thread, irqfds and routes go.
  void RemoveVirtio(Function& gone);
  std::string RootPortNames() const;
  void OnBalloonActual(uint32_t actual_pages);
  void AddVfio(const PciDeviceConfig& config, bool multifunction);
  // device_add vfio-pci into `port` (checked free): nothing stays open when it throws.
  void HotPlugVfio(const DeviceAddRequest& request, Port& port);

  const MachineConfig config_;
  const Emit emit_;
  kvm::Vm* vm_ = nullptr;
  GuestMemory* memory_ = nullptr;
  std::shared_ptr<pci::RootBus> root_;
  std::shared_ptr<pci::ConfigPorts> config_ports_;
  std::unique_ptr<kvm::GsiRoutes> routes_;
  std::map<std::string, Port> ports_;  // by id, the name of the bus behind it
  std::unique_ptr<Q35Vfio> vfio_;
  IoThreads io_threads_;

  // The main thread plugs, a vCPU thread (the guest letting go) unplugs.
  mutable std::mutex lock_;
  std::vector<Function> functions_;
  // A backend stays open after its device leaves, for blockdev-del / netdev_del.
  BackendRegistry backends_{"device_del it first (and wait for DEVICE_DELETED)"};
  std::shared_ptr<virtio::Balloon> balloon_;
  virtio::PciTransport* balloon_transport_ = nullptr;
  std::string balloon_id_;
};

}  // namespace virga
