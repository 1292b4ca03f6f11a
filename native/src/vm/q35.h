// The q35 board (docs/q35.md): a PCIe root complex, pcie.0, with the host
// bridge at 00:00.0, configuration through ECAM (described by the MCFG)
// and ports 0xcf8/0xcfc, and the host bridge with its windows in the DSDT.
// The rest of the machine (RAM, vCPUs, COM1, RTC, power button, reset) is
// the core's, as on the microvm. Not built yet, and refused by name:
// devices on pcie.0 other than the host bridge, root ports, hot-plug,
// snapshots and migration.
#pragma once

#include <memory>

#include "devices/pci/root_bus.h"
#include "vm/board.h"

namespace virga {

class Q35Board : public Board {
 public:
  const char* name() const override { return "q35"; }
  void CreateDevices(BoardContext& context, const MachineLayout* saved) override;
  void DescribeAcpi(acpi::AcpiLayout* layout) const override;
  void RequireSavable() const override;

 private:
  std::shared_ptr<pci::RootBus> root_;
};

}  // namespace virga
