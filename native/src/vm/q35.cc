#include "vm/q35.h"

#include "arch/x86_64/layout.h"
#include "common/error.h"
#include "devices/pci/host_bridge.h"

namespace virga {

void Q35Board::CreateDevices(BoardContext& context, const MachineLayout* saved) {
  (void)saved;  // RequireSavable refuses a restore before this runs
  root_ = std::make_shared<pci::RootBus>(&context.mmio);
  root_->Attach(0, 0, std::make_shared<pci::HostBridge>());
  context.mmio.Insert(x86::kPciEcamBase, (uint64_t{x86::kPciLastBus} + 1) * pci::kEcamBytesPerBus,
                      std::make_shared<pci::EcamWindow>(root_));
  context.pio.Insert(pci::ConfigPorts::kBase, pci::ConfigPorts::kSize,
                     std::make_shared<pci::ConfigPorts>(root_, context.report_exit));
}

void Q35Board::DescribeAcpi(acpi::AcpiLayout* layout) const {
  layout->pci = acpi::PciHost{x86::kPciEcamBase, static_cast<uint8_t>(x86::kPciLastBus),
                              static_cast<uint32_t>(x86::kPciMmioBase), static_cast<uint32_t>(x86::kPciMmioSize)};
}

void Q35Board::RequireSavable() const {
  throw VmmError("the q35 machine has no snapshots or live migration yet (docs/q35.md)");
}

}  // namespace virga
