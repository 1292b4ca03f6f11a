#include "vm/q35_vfio.h"

#include <cstdio>

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "devices/pci/root_bus.h"

namespace virga {

namespace {
// The virtio functions take kBarStride (32 KiB) a devfn from the window's
// start (q35.cc); pass-through BARs on pcie.0 go after all 256 of those.
constexpr uint64_t kVirtioShare = 256 * 0x8000;
constexpr uint32_t kFirstBarSlot = 32;
}  // namespace

Q35Vfio::~Q35Vfio() = default;

std::shared_ptr<pci::VfioPciFunction> Q35Vfio::Create(const PciDeviceConfig& config, uint64_t window,
                                                      uint64_t window_size, const std::string& port) {
  std::lock_guard guard(lock_);
  Passthrough entry;
  entry.id = config.id;
  bool made_container = false;
  try {
    bool by_path = config.host.empty();
    if (!container_) {
      container_ = std::make_shared<pci::VfioContainer>(memory_, dev_);
      made_container = true;
    }
    pci::HostFunction host = pci::LocateHostFunction(by_path ? config.sysfsdev : config.host, by_path, sysfs_);
    for (const Passthrough& f : functions_) {
      if (f.host == host.address) {
        throw VmmError("host " + host.address + " is passed through already, as device '" + f.id + "'");
      }
    }
    entry.host = host.address;
    entry.function = std::make_shared<pci::VfioPciFunction>(container_->OpenDevice(host, sysfs_));
    PlaceBars(*entry.function, config.id, window, window_size, port);

    pci::VfioPciFunction::Hooks hooks;
    std::vector<uint32_t> gsis;
    for (uint16_t v = 0; v < entry.function->msi_vectors(); ++v) {
      gsis.push_back(routes_->AllocateMsi());
      entry.vectors.push_back(std::make_unique<IrqLine>(gsis.back()));
      vm_->RegisterIrqfd(entry.vectors.back()->fd(), gsis.back());
      hooks.vector_fds.push_back(entry.vectors.back()->fd());
    }
    kvm::GsiRoutes* routes = routes_;
    hooks.route = [routes, gsis](uint16_t vector, const pci::MsiMessage& message) {
      routes->SetMsi(gsis[vector], message.address, message.data);
    };
    entry.first_slot = kFirstBarSlot;
    while (slots_.count(entry.first_slot)) entry.first_slot += pci::kBarCount;
    kvm::Vm* vm = vm_;
    uint32_t first_slot = entry.first_slot;
    std::string name = host.address;
    hooks.map_memory = [vm, first_slot, name](int bar, uint64_t gpa, uint64_t size, void* memory) {
      // On a vCPU thread (the guest moved the BAR): a refused slot leaves
      // the BAR to exits, forwarded to the device, rather than end the VM.
      try {
        vm->SetUserMemoryRegion(first_slot + static_cast<uint32_t>(bar), gpa, memory ? size : 0, memory, 0);
      } catch (const VmmError& e) {
        std::fprintf(stderr, "virga-vmm: vfio-pci %s BAR %d stays trapped: %s\n", name.c_str(), bar, e.what());
      }
    };
    entry.function->Connect(std::move(hooks));
  } catch (const VmmError& e) {
    // Its irqfds go; its device and group close with `entry`.
    Release(entry);
    entry.function.reset();
    if (made_container && functions_.empty()) container_.reset();
    throw VmmError("vfio-pci device " + config.id, e);
  }
  slots_.insert(entry.first_slot);
  std::shared_ptr<pci::VfioPciFunction> function = entry.function;
  functions_.push_back(std::move(entry));
  return function;
}

void Q35Vfio::PlaceBars(pci::VfioPciFunction& function, const std::string& id, uint64_t window,
                        uint64_t window_size, const std::string& port) {
  bool in_port = window_size != 0;
  if (!in_port && next_bar_ == 0) next_bar_ = x86::kPciMmioBase + kVirtioShare;
  uint64_t next = in_port ? window : next_bar_;
  uint64_t end = in_port ? window + window_size : x86::kPciMmioBase + x86::kPciMmioSize;
  for (int i = 0; i < pci::kBarCount; ++i) {
    uint64_t size = function.BarSize(i);
    if (size == 0) continue;
    uint64_t at = (next + size - 1) & ~(size - 1);
    if (at + size > end) {
      throw VmmError("BAR " + std::to_string(i) + " (" + std::to_string(size >> 10) + " KiB) does not fit in " +
                     (in_port ? "root port '" + port + "''s " + std::to_string(window_size >> 20) + " MiB memory window"
                              : std::string("what is left of the 32-bit PCI window")) +
                     " (docs/q35.md)");
    }
    function.AssignBar(i, at);
    next = at + size;
  }
  if (!in_port) next_bar_ = next;
}

void Q35Vfio::Release(Passthrough& gone) {
  for (const auto& line : gone.vectors) {
    // A line whose registration failed has nothing to take back.
    try {
      vm_->UnregisterIrqfd(line->fd(), line->gsi());
    } catch (const VmmError&) {
    }
    routes_->ReleaseMsi(line->gsi());
  }
  gone.vectors.clear();
}

void Q35Vfio::Remove(const std::string& id) {
  std::lock_guard guard(lock_);
  for (auto it = functions_.begin(); it != functions_.end(); ++it) {
    if (it->id != id) continue;
    Release(*it);
    slots_.erase(it->first_slot);
    functions_.erase(it);
    break;
  }
  // The container closes once the last function's device (and group) has.
  if (functions_.empty()) container_.reset();
}

std::vector<std::string> Q35Vfio::ids() const {
  std::lock_guard guard(lock_);
  std::vector<std::string> ids;
  for (const Passthrough& f : functions_) ids.push_back(f.id);
  return ids;
}

}  // namespace virga
