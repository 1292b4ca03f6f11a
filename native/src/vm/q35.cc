#include "vm/q35.h"

#include <set>

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "devices/pci/host_bridge.h"

namespace virga {

namespace {

std::shared_ptr<virtio::VirtioDevice> MakeDevice(const PciDeviceConfig& config, const std::string& identity,
                                                 const std::shared_ptr<EventLoop>& loop) {
  switch (config.kind) {
    case PciDeviceConfig::Kind::kBlock:
      try {
        return std::make_shared<virtio::Block>(BlockFile::Open(config.file));
      } catch (const VmmError& e) {
        throw VmmError("disk " + config.id, e);
      }
    case PciDeviceConfig::Kind::kNet: {
      std::unique_ptr<Tap> tap;
      try {
        tap = config.fd >= 0 ? Tap::Adopt(UniqueFd(config.fd), "fd=" + std::to_string(config.fd))
                             : Tap::Open(config.ifname);
      } catch (const VmmError& e) {
        throw VmmError("netdev " + config.backend, e);
      }
      MacAddress mac = config.mac ? *config.mac : DerivedMac(identity, config.slot * pci::kFunctions + config.function);
      return std::make_shared<virtio::Net>(mac, std::move(tap), loop);
    }
    case PciDeviceConfig::Kind::kBalloon:
      // No QMP balloon on q35 yet: the guest's reports go nowhere.
      return std::make_shared<virtio::Balloon>(config.balloon, [](uint32_t) {});
    case PciDeviceConfig::Kind::kVfio:
      break;  // Q35Vfio's
  }
  throw VmmError("unknown PCI device kind");
}

}  // namespace

Q35Board::Q35Board(const MachineConfig& config) : config_(config) {}

Q35Board::~Q35Board() = default;

void Q35Board::CreateDevices(BoardContext& context, const MachineLayout* saved) {
  (void)saved;  // RequireSavable refuses a restore before this runs
  root_ = std::make_shared<pci::RootBus>(&context.mmio);
  root_->Attach(0, 0, std::make_shared<pci::HostBridge>());
  routes_ = std::make_unique<kvm::GsiRoutes>(&context.vm);
  // A guest looks at functions 1-7 of a slot only when function 0 says there are more.
  std::set<uint32_t> multifunction;
  for (const PciDeviceConfig& device : config_.pci_devices) {
    if (device.function != 0) multifunction.insert(device.slot);
  }
  for (const PciDeviceConfig& device : config_.pci_devices) {
    bool multi = device.function == 0 && multifunction.count(device.slot);
    if (device.kind == PciDeviceConfig::Kind::kVfio) {
      AddVfio(context, device, multi);
    } else {
      AddVirtio(context, device, multi);
    }
  }
  context.mmio.Insert(x86::kPciEcamBase, (uint64_t{x86::kPciLastBus} + 1) * pci::kEcamBytesPerBus,
                      std::make_shared<pci::EcamWindow>(root_));
  context.pio.Insert(pci::ConfigPorts::kBase, pci::ConfigPorts::kSize,
                     std::make_shared<pci::ConfigPorts>(root_, context.report_exit));
}

void Q35Board::AddVirtio(BoardContext& context, const PciDeviceConfig& config, bool multifunction) {
  Function function;
  function.loop = std::make_shared<EventLoop>();
  io_threads_.Add(function.loop);
  std::shared_ptr<virtio::VirtioDevice> device = MakeDevice(config, config_.identity, function.loop);
  std::vector<uint32_t> gsis;
  for (uint16_t v = 0; v < virtio::PciTransport::VectorsFor(*device); ++v) {
    gsis.push_back(routes_->AllocateMsi());
    function.vectors.push_back(std::make_unique<IrqLine>(gsis.back()));
    context.vm.RegisterIrqfd(function.vectors.back()->fd(), gsis.back());
  }
  kvm::GsiRoutes* routes = routes_.get();
  std::vector<IrqLine*> lines;
  for (const auto& line : function.vectors) lines.push_back(line.get());
  function.transport = std::make_shared<virtio::PciTransport>(
      device, &context.memory,
      [routes, gsis](uint16_t vector, const pci::MsiMessage& message) {
        routes->SetMsi(gsis[vector], message.address, message.data);
      },
      [lines](uint16_t vector) { lines[vector]->Trigger(); });

  virtio::PciTransport* transport = function.transport.get();
  kvm::Vm* vm = &context.vm;
  transport->ServeNotifications(*function.loop);
  // The notify registers' ioeventfds follow BAR 0 wherever the guest puts it.
  transport->SetNotifyMoved([vm, transport](uint64_t from, uint64_t to) {
    const auto& fds = transport->notify_fds();
    for (uint16_t q = 0; q < fds.size(); ++q) {
      uint64_t offset = uint64_t{q} * virtio::PciTransport::kNotifyMultiplier;
      // The driver writes the queue's index, 16 bits wide (4.1.5.2). On a
      // vCPU thread: a refused ioeventfd leaves the write to exit to the
      // transport, which signals the same eventfd, rather than end the VM.
      try {
        if (from != 0) vm->UnregisterIoeventfd(fds[q].get(), from + offset, 2, q, false);
      } catch (const VmmError&) {
      }
      try {
        if (to != 0) vm->RegisterIoeventfd(fds[q].get(), to + offset, 2, q, false);
      } catch (const VmmError&) {
      }
    }
  });
  uint64_t base = x86::kPciMmioBase + uint64_t{config.slot * pci::kFunctions + config.function} * kBarStride;
  transport->AssignBar(virtio::PciTransport::kRegistersBar, base);
  transport->AssignBar(virtio::PciTransport::kMsixBar, base + virtio::PciTransport::kRegistersBarSize);
  if (multifunction) transport->SetMultiFunction();
  try {
    root_->Attach(config.slot, config.function, function.transport);
  } catch (const VmmError& e) {
    throw VmmError("device " + config.id, e);
  }
  functions_.push_back(std::move(function));
}

void Q35Board::AddVfio(BoardContext& context, const PciDeviceConfig& config, bool multifunction) {
  if (!vfio_) vfio_ = std::make_unique<Q35Vfio>(routes_.get());
  std::shared_ptr<pci::VfioPciFunction> function = vfio_->Create(context, config);
  vfio_->PlaceBars(*function, config.id);
  if (multifunction) function->SetMultiFunction();
  try {
    root_->Attach(config.slot, config.function, function);
  } catch (const VmmError& e) {
    throw VmmError("device " + config.id, e);
  }
}

void Q35Board::DescribeAcpi(acpi::AcpiLayout* layout) const {
  layout->pci = acpi::PciHost{x86::kPciEcamBase, static_cast<uint8_t>(x86::kPciLastBus),
                              static_cast<uint32_t>(x86::kPciMmioBase), static_cast<uint32_t>(x86::kPciMmioSize)};
}

void Q35Board::Start(bool paused) { io_threads_.Start(paused); }

void Q35Board::Pause() { io_threads_.Pause(); }

void Q35Board::Resume() { io_threads_.Resume(); }

void Q35Board::Stop() { io_threads_.Stop(); }

void Q35Board::Reset() { root_->Reset(); }

void Q35Board::RequireSavable() const {
  // Before any other reason, so it stands when q35 learns snapshots: a
  // passed-through device's state is in the host's hardware.
  if (vfio_ && !vfio_->ids().empty()) {
    throw VmmError("vfio-pci device '" + vfio_->ids().front() +
                   "' is passed through: a VM with VFIO devices cannot be snapshotted or migrated");
  }
  throw VmmError("the q35 machine has no snapshots or live migration yet (docs/q35.md)");
}

}  // namespace virga
