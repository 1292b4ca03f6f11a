#include "vm/q35.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "devices/pci/host_bridge.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "vm/microvm_devices.h"

namespace virga {

namespace {

std::string PciAddr(uint32_t slot, uint32_t function) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%x.%u", slot, function);
  return text;
}

const char* DriverName(PciDeviceConfig::Kind kind) {
  switch (kind) {
    case PciDeviceConfig::Kind::kBlock: return "virtio-blk-pci";
    case PciDeviceConfig::Kind::kNet: return "virtio-net-pci";
    case PciDeviceConfig::Kind::kBalloon: return "virtio-balloon-pci";
    case PciDeviceConfig::Kind::kVfio: return "vfio-pci";
  }
  return "?";
}

// A function as the command line describes it; the board fills in what
// its devices report now (disk size, the MAC the guest read).
MachineLayout::PciFunction Outline(const PciDeviceConfig& config) {
  MachineLayout::PciFunction f;
  f.slot = config.slot;
  f.function = config.function;
  f.driver = DriverName(config.kind);
  f.id = config.id;
  f.disk.present = config.kind == PciDeviceConfig::Kind::kBlock;
  f.disk.read_only = f.disk.present && config.file.read_only;
  f.nic.present = config.kind == PciDeviceConfig::Kind::kNet;
  if (config.mac) f.nic.mac = *config.mac;
  f.deflate_on_oom = config.kind == PciDeviceConfig::Kind::kBalloon && config.balloon.deflate_on_oom;
  f.free_page_reporting = config.kind == PciDeviceConfig::Kind::kBalloon && config.balloon.free_page_reporting;
  return f;
}

// A function in a root port's slot is known by the port's address on
// pcie.0: its id names the bus, but ids are free to differ.
void PlaceOn(const std::string& bus, const std::vector<PciRootPortConfig>& ports, MachineLayout::PciFunction* f) {
  for (const PciRootPortConfig& port : ports) {
    if (port.id != bus) continue;
    f->behind_port = true;
    f->port_slot = port.slot;
    f->port_function = port.function;
    f->bus = bus;
  }
}

MachineLayout::PciFunction OutlinePort(const PciRootPortConfig& port) {
  MachineLayout::PciFunction f;
  f.slot = port.slot;
  f.function = port.function;
  f.driver = "pcie-root-port";
  f.id = port.id;
  f.port = port.port;
  return f;
}

void SortByAddress(std::vector<MachineLayout::PciFunction>* functions) {
  std::sort(functions->begin(), functions->end(), [](const auto& a, const auto& b) { return a.place() < b.place(); });
}

const MachineLayout::PciFunction* FindFunction(const MachineLayout& layout, const MachineLayout::PciFunction& at) {
  for (const auto& f : layout.pci) {
    if (f.place() == at.place()) return &f;
  }
  return nullptr;
}

}  // namespace

Q35Board::Q35Board(const MachineConfig& config, Emit on_event) : config_(config), emit_(std::move(on_event)) {}

Q35Board::~Q35Board() = default;

void Q35Board::CreateDevices(BoardContext& context, const MachineLayout* saved) {
  vm_ = &context.vm;
  memory_ = &context.memory;
  root_ = std::make_shared<pci::RootBus>(&context.mmio);
  root_->Attach(0, 0, std::make_shared<pci::HostBridge>());
  routes_ = std::make_unique<kvm::GsiRoutes>(&context.vm);
  vfio_ = std::make_unique<Q35Vfio>(vm_, memory_, routes_.get());
  // A guest looks at functions 1-7 of a slot only when function 0 says there are more.
  std::set<uint32_t> multifunction;
  for (const PciDeviceConfig& device : config_.pci_devices) {
    if (device.bus == "pcie.0" && device.function != 0) multifunction.insert(device.slot);
  }
  for (const PciRootPortConfig& port : config_.root_ports) {
    if (port.function != 0) multifunction.insert(port.slot);
  }
  // Bus numbers in address order, as firmware's scan would give them.
  std::vector<PciRootPortConfig> ports = config_.root_ports;
  std::sort(ports.begin(), ports.end(), [](const PciRootPortConfig& a, const PciRootPortConfig& b) {
    return a.slot * pci::kFunctions + a.function < b.slot * pci::kFunctions + b.function;
  });
  for (size_t i = 0; i < ports.size(); ++i) AddRootPort(context, ports[i], static_cast<uint8_t>(i + 1));
  for (const PciDeviceConfig& device : config_.pci_devices) {
    bool first = device.bus == "pcie.0" && device.function == 0 && multifunction.count(device.slot);
    if (device.kind == PciDeviceConfig::Kind::kVfio) {
      AddVfio(device, device.multifunction || first);
    } else {
      AddColdPlugged(device, device.multifunction || first, saved);
    }
  }
  // On pcie.0 once their slots are filled: what a reset returns them to.
  for (const PciRootPortConfig& config : ports) {
    const std::shared_ptr<pci::RootPort>& port = ports_.at(config.id).port;
    if (config.multifunction || (config.function == 0 && multifunction.count(config.slot))) port->SetMultiFunction();
    try {
      root_->Attach(config.slot, config.function, port);
    } catch (const VmmError& e) {
      throw VmmError("device " + config.id, e);
    }
  }
  context.mmio.Insert(x86::kPciEcamBase, (uint64_t{x86::kPciLastBus} + 1) * pci::kEcamBytesPerBus,
                      std::make_shared<pci::EcamWindow>(root_));
  config_ports_ = std::make_shared<pci::ConfigPorts>(root_, context.report_exit);
  context.pio.Insert(pci::ConfigPorts::kBase, pci::ConfigPorts::kSize, config_ports_);
}

void Q35Board::AddRootPort(BoardContext& context, const PciRootPortConfig& config, uint8_t bus) {
  Port port;
  port.bus = bus;
  port.window = kRootPortWindows + uint64_t{bus - 1u} * kRootPortWindowSize;
  port.addr = PciAddr(config.slot, config.function);
  port.slot = config.slot;
  uint32_t gsi = routes_->AllocateMsi();
  port.irq = std::make_unique<IrqLine>(gsi);
  context.vm.RegisterIrqfd(port.irq->fd(), gsi);
  kvm::GsiRoutes* routes = routes_.get();
  IrqLine* irq = port.irq.get();
  port.port = std::make_shared<pci::RootPort>(
      pci::RootPort::Options{config.port, bus, static_cast<uint32_t>(port.window),
                             static_cast<uint32_t>(kRootPortWindowSize)},
      &context.mmio, [routes, gsi](const pci::MsiMessage& m) { routes->SetMsi(gsi, m.address, m.data); },
      [irq] { irq->Trigger(); });
  ports_.emplace(config.id, std::move(port));
}

uint32_t Q35Board::MacPlace(const std::string& bus, uint32_t slot, uint32_t function) const {
  // pcie.0's functions by devfn; behind root port n, 256 + n.
  auto port = ports_.find(bus);
  return port != ports_.end() ? pci::kSlots * pci::kFunctions + port->second.bus : slot * pci::kFunctions + function;
}

void Q35Board::AddColdPlugged(const PciDeviceConfig& config, bool multifunction, const MachineLayout* saved) {
  // A device's thread is its loop: made here, started with the others.
  auto loop = std::make_shared<EventLoop>();
  std::shared_ptr<virtio::VirtioDevice> device;
  Kind kind = Kind::kBalloon;
  switch (config.kind) {
    case PciDeviceConfig::Kind::kBlock:
      kind = Kind::kBlock;
      try {
        device = std::make_shared<virtio::Block>(BlockFile::Open(config.file));
      } catch (const VmmError& e) {
        throw VmmError("disk " + config.id, e);
      }
      backends_.RecordBlock(config.backend, config.file, config.id);
      break;
    case PciDeviceConfig::Kind::kNet: {
      kind = Kind::kNet;
      std::unique_ptr<Tap> tap;
      try {
        tap = config.fd >= 0 ? Tap::Adopt(UniqueFd(config.fd), "fd=" + std::to_string(config.fd))
                             : Tap::Open(config.ifname);
      } catch (const VmmError& e) {
        throw VmmError("netdev " + config.backend, e);
      }
      backends_.RecordNet(config.backend, tap->ifname(), config.id);
      // A NIC keeps the MAC its guest read at boot: mac=, else a restored guest's, else derived.
      MacAddress mac = DerivedMac(config_.identity, MacPlace(config.bus, config.slot, config.function));
      MachineLayout::PciFunction here = Outline(config);
      PlaceOn(config.bus, config_.root_ports, &here);
      const MachineLayout::PciFunction* before = saved != nullptr ? FindFunction(*saved, here) : nullptr;
      if (config.mac) {
        mac = *config.mac;
      } else if (before != nullptr && before->nic.present) {
        mac = before->nic.mac;
      }
      device = std::make_shared<virtio::Net>(mac, std::move(tap), loop);
      break;
    }
    case PciDeviceConfig::Kind::kBalloon:
      balloon_ = std::make_shared<virtio::Balloon>(config.balloon,
                                                   [this](uint32_t actual) { OnBalloonActual(actual); });
      balloon_id_ = config.id;
      device = balloon_;
      break;
    case PciDeviceConfig::Kind::kVfio:
      throw VmmError("device " + config.id + ": a vfio-pci function is not a virtio device");
  }
  auto port = ports_.find(config.bus);
  uint64_t base = port != ports_.end()
                      ? port->second.window
                      : x86::kPciMmioBase + uint64_t{config.slot * pci::kFunctions + config.function} * kBarStride;
  // Behind a root port, pin A of its slot 0 reaches pcie.0 as the port's own pin A (the bridge swizzle).
  uint32_t intx_gsi = IntxGsi(port != ports_.end() ? port->second.slot : config.slot, 0);
  Function function = MakeFunction(device, loop, base, intx_gsi);
  function.config = config;
  function.id = config.id;
  function.bus = config.bus;
  function.addr = PciAddr(config.slot, config.function);
  function.kind = kind;
  function.backend = config.backend;
  if (kind == Kind::kBalloon) balloon_transport_ = function.transport.get();
  if (multifunction) function.transport->SetMultiFunction();
  try {
    if (port != ports_.end()) {
      port->second.port->ColdPlug(function.transport);
    } else {
      root_->Attach(config.slot, config.function, function.transport);
    }
  } catch (const VmmError& e) {
    throw VmmError("device " + config.id, e);
  }
  io_threads_.Add(function.loop);
  functions_.push_back(std::move(function));
}

Q35Board::Function Q35Board::MakeFunction(std::shared_ptr<virtio::VirtioDevice> device,
                                          std::shared_ptr<EventLoop> loop, uint64_t base, uint32_t intx_gsi) {
  Function function;
  function.device = device;
  function.loop = std::move(loop);
  for (uint16_t v = 0; v < virtio::PciTransport::VectorsFor(*device); ++v) {
    function.gsis.push_back(routes_->AllocateMsi());
    function.vectors.push_back(std::make_unique<IrqLine>(function.gsis.back()));
    vm_->RegisterIrqfd(function.vectors.back()->fd(), function.gsis.back());
  }
  kvm::GsiRoutes* routes = routes_.get();
  std::vector<IrqLine*> lines;
  for (const auto& line : function.vectors) lines.push_back(line.get());
  std::vector<uint32_t> gsis = function.gsis;
  function.transport = std::make_shared<virtio::PciTransport>(
      device, memory_,
      [routes, gsis](uint16_t vector, const pci::MsiMessage& message) {
        routes->SetMsi(gsis[vector], message.address, message.data);
      },
      [lines](uint16_t vector) { lines[vector]->Trigger(); });

  virtio::PciTransport* transport = function.transport.get();
  kvm::Vm* vm = vm_;
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
  // INTx for a driver without MSI-X: a level line, asserted again at each
  // EOI while the ISR still holds something (a line shared by several
  // functions stays up while any of them is pending).
  function.intx = std::make_unique<IrqLine>(intx_gsi);
  function.resample.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!function.resample.valid()) throw ErrnoError("eventfd for an INTx resample");
  vm_->RegisterResampleIrqfd(function.intx->fd(), function.intx->gsi(), function.resample.get());
  IrqLine* intx = function.intx.get();
  transport->SetIntx([intx] { intx->Trigger(); });
  int resample = function.resample.get();
  function.loop->Add(resample, EPOLLIN, [resample, transport, intx](uint32_t) {
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(resample, &count, sizeof(count));
    if (transport->IntxPending()) intx->Trigger();
  });
  // What firmware leaves in the interrupt line register; guests with ACPI read the _PRT instead.
  transport->WriteConfig(pci::kInterruptLine, 1, function.intx->gsi());
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
  transport->AssignBar(virtio::PciTransport::kRegistersBar, base);
  transport->AssignBar(virtio::PciTransport::kMsixBar, base + virtio::PciTransport::kRegistersBarSize);
  return function;
}

void Q35Board::AddVfio(const PciDeviceConfig& config, bool multifunction) {
  auto port = ports_.find(config.bus);
  bool in_port = port != ports_.end();
  std::shared_ptr<pci::VfioPciFunction> function =
      in_port ? vfio_->Create(config, port->second.window, kRootPortWindowSize, config.bus) : vfio_->Create(config);
  if (multifunction) function->SetMultiFunction();
  try {
    if (in_port) {
      port->second.port->ColdPlug(function);
    } else {
      root_->Attach(config.slot, config.function, function);
    }
  } catch (const VmmError& e) {
    throw VmmError("device " + config.id, e);
  }
  Function entry;
  entry.config = config;
  entry.id = config.id;
  entry.bus = config.bus;
  entry.addr = PciAddr(config.slot, config.function);
  entry.kind = Kind::kVfio;
  entry.vfio = function;
  entry.host = function->host();
  functions_.push_back(std::move(entry));
}

void Q35Board::DescribeAcpi(acpi::AcpiLayout* layout) const {
  layout->pci = acpi::PciHost{x86::kPciEcamBase, static_cast<uint8_t>(x86::kPciLastBus),
                              static_cast<uint32_t>(x86::kPciMmioBase), static_cast<uint32_t>(x86::kPciMmioSize),
                              kIntxFirstGsi};
}

void Q35Board::Start(bool paused) { io_threads_.Start(paused); }

void Q35Board::Pause() { io_threads_.Pause(); }

void Q35Board::Resume() { io_threads_.Resume(); }

void Q35Board::Stop() { io_threads_.Stop(); }

void Q35Board::Reset() { root_->Reset(); }

void Q35Board::RequireSavable() const {
  // Before any other reason: a passed-through device's state is in the host's hardware.
  std::vector<std::string> passed = vfio_ ? vfio_->ids() : std::vector<std::string>();
  if (!passed.empty()) {
    throw VmmError("vfio-pci device '" + passed.front() +
                   "' is passed through: a VM with VFIO devices cannot be snapshotted or migrated");
  }
  // Half unplugged, the device is neither the guest's nor gone: a
  // destination could not put it back in that state from its command line.
  {
    std::lock_guard guard(lock_);
    for (const auto& [id, port] : ports_) {
      if (!port.port->unplug_pending()) continue;
      std::string device;
      for (const Function& f : functions_) {
        if (f.bus == id) device = f.id;
      }
      throw VmmError("the VM cannot be saved or migrated: device '" + device + "' in root port '" + id +
                     "' is being unplugged; wait for DEVICE_DELETED");
    }
  }
  // Before CreateDevices (a restore checks first) there are no functions to ask yet.
  std::string refusal = root_ ? root_->SaveRefusal() : std::string();
  if (!refusal.empty()) throw VmmError("the VM cannot be saved or migrated: PCI function " + refusal);
}

void Q35Board::FillConfigLayout(MachineLayout* layout) const {
  layout->machine = name();
  for (const PciRootPortConfig& port : config_.root_ports) layout->pci.push_back(OutlinePort(port));
  for (const PciDeviceConfig& device : config_.pci_devices) {
    MachineLayout::PciFunction f = Outline(device);
    PlaceOn(device.bus, config_.root_ports, &f);
    if (f.disk.present) {
      struct stat st {};
      if (::stat(device.file.path.c_str(), &st) == 0) f.disk.bytes = static_cast<uint64_t>(st.st_size) / 512 * 512;
    }
    // A derived MAC yields to the saved guest's.
    f.nic.mac_given = device.mac.has_value();
    layout->pci.push_back(f);
  }
  SortByAddress(&layout->pci);
}

void Q35Board::FillLayout(MachineLayout* layout) const {
  layout->machine = name();
  for (const PciRootPortConfig& port : config_.root_ports) layout->pci.push_back(OutlinePort(port));
  // Hot-plugged functions too: a destination has them on its command line.
  std::lock_guard guard(lock_);
  for (const Function& function : functions_) {
    MachineLayout::PciFunction f = Outline(function.config);
    PlaceOn(function.bus, config_.root_ports, &f);
    if (auto block = std::dynamic_pointer_cast<virtio::Block>(function.device)) {
      f.disk.bytes = block->capacity_sectors() * 512;
      f.disk.read_only = block->read_only();
    }
    if (auto net = std::dynamic_pointer_cast<virtio::Net>(function.device)) f.nic.mac = net->guest_mac();
    layout->pci.push_back(f);
  }
  SortByAddress(&layout->pci);
}

void Q35Board::AdoptIncoming(const MachineLayout& source) {
  std::lock_guard guard(lock_);
  for (const Function& function : functions_) {
    MachineLayout::PciFunction here = Outline(function.config);
    PlaceOn(function.bus, config_.root_ports, &here);
    const auto* f = FindFunction(source, here);
    auto net = std::dynamic_pointer_cast<virtio::Net>(function.device);
    if (net && f != nullptr && f->nic.present) net->SetMacs(f->nic.mac, f->nic.mac);
  }
}

void Q35Board::Save(state::StateFileWriter& file) const {
  root_->Save(file);
  state::ByteWriter ports;
  config_ports_->Save(ports);
  file.Section("PCIP", ports);
}

void Q35Board::Load(const state::StateFile& file) {
  RequireSavable();
  root_->Load(file);
  state::ByteReader ports = file.Section("PCIP");
  config_ports_->Restore(ports);
  ports.ExpectEnd();
  // What the driver posted before the snapshot is served once the I/O threads
  // run; a pending INTx is asserted again (KVM's line state is not saved).
  for (const Function& function : functions_) {
    if (!function.transport) continue;
    function.transport->KickQueues();
    if (function.transport->IntxPending()) function.intx->Trigger();
  }
}

}  // namespace virga
