#include "vm/q35_vfio.h"

#include <cstdio>

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "devices/pci/root_bus.h"

namespace virga {

namespace {
// The virtio functions take kBarStride (32 KiB) a devfn from the window's
// start (q35.cc); pass-through BARs go after all 256 of those.
constexpr uint64_t kVirtioShare = 256 * 0x8000;
}  // namespace

std::shared_ptr<pci::VfioPciFunction> Q35Vfio::Create(BoardContext& context, const PciDeviceConfig& config) {
  try {
    if (!container_) container_ = std::make_unique<pci::VfioContainer>(&context.memory, dev_);
    bool by_path = config.host.empty();
    pci::HostFunction host = pci::LocateHostFunction(by_path ? config.sysfsdev : config.host, by_path, sysfs_);
    auto function = std::make_shared<pci::VfioPciFunction>(container_->OpenDevice(host, sysfs_));

    pci::VfioPciFunction::Hooks hooks;
    std::vector<uint32_t> gsis;
    for (uint16_t v = 0; v < function->msi_vectors(); ++v) {
      gsis.push_back(routes_->AllocateMsi());
      vectors_.push_back(std::make_unique<IrqLine>(gsis.back()));
      context.vm.RegisterIrqfd(vectors_.back()->fd(), gsis.back());
      hooks.vector_fds.push_back(vectors_.back()->fd());
    }
    kvm::GsiRoutes* routes = routes_;
    hooks.route = [routes, gsis](uint16_t vector, const pci::MsiMessage& message) {
      routes->SetMsi(gsis[vector], message.address, message.data);
    };
    kvm::Vm* vm = &context.vm;
    uint32_t first_slot = next_slot_;
    next_slot_ += pci::kBarCount;
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
    function->Connect(std::move(hooks));
    ids_.push_back(config.id);
    return function;
  } catch (const VmmError& e) {
    throw VmmError("vfio-pci device " + config.id, e);
  }
}

void Q35Vfio::PlaceBars(pci::VfioPciFunction& function, const std::string& id) {
  if (next_bar_ == 0) next_bar_ = x86::kPciMmioBase + kVirtioShare;
  for (int i = 0; i < pci::kBarCount; ++i) {
    uint64_t size = function.BarSize(i);
    if (size == 0) continue;
    uint64_t at = (next_bar_ + size - 1) & ~(size - 1);
    if (at + size > x86::kPciMmioBase + x86::kPciMmioSize) {
      throw VmmError("vfio-pci device " + id + ": BAR " + std::to_string(i) + " (" + std::to_string(size >> 10) +
                     " KiB) does not fit in what is left of the 32-bit PCI window (docs/q35.md)");
    }
    function.AssignBar(i, at);
    next_bar_ = at + size;
  }
}

}  // namespace virga
