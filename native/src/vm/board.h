// A machine type's own part (its board): where its devices sit, how the
// guest learns about them (kernel command line, ACPI), their I/O threads,
// and their share of a snapshot. Everything every machine has (KVM VM,
// guest RAM, vCPUs, the legacy devices, power button, lifecycle) is the
// core's, vm/machine.h, which calls these hooks at the matching moments.
#pragma once

#include <string>
#include <vector>

#include "arch/x86_64/acpi/tables.h"
#include "devices/bus.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"
#include "state/state_file.h"
#include "vm/exit_reason.h"
#include "vm/machine_layout.h"

namespace virga {

class HotplugDevices;

// What the core lends a board while it builds its devices.
struct BoardContext {
  kvm::Vm& vm;
  GuestMemory& memory;
  Bus& pio;
  Bus& mmio;
  // A device that ends or resets the guest (a reset register).
  ExitRequest report_exit;
};

class Board {
 public:
  virtual ~Board() = default;
  // The -machine type, as the user names it.
  virtual const char* name() const = 0;

  // Builds the board's devices once guest RAM and the irqchip exist.
  // `saved`: the outline of the machine being restored or migrated in, so
  // devices take what its guest has read already (a NIC's MAC).
  virtual void CreateDevices(BoardContext& context, const MachineLayout* saved) = 0;

  // What the guest is told at each (re)boot: kernel command line
  // additions, and the board's devices in the ACPI tables.
  virtual void ExtendCmdline(std::string* cmdline) const { (void)cmdline; }
  virtual void DescribeAcpi(acpi::AcpiLayout* layout) const { (void)layout; }

  // The board's own I/O threads follow the VM's run state; Reset puts its
  // devices back to power-on state (vCPUs are stopped meanwhile).
  virtual void Start(bool paused) { (void)paused; }
  virtual void Pause() {}
  virtual void Resume() {}
  virtual void Stop() {}
  virtual void Reset() {}

  // Snapshots and live migration. `FillLayout` adds the board's devices to
  // the machine's outline (the core fills memory and vCPUs); `Save` and
  // `Load` carry their state. A board that cannot be saved yet throws,
  // naming itself, from `RequireSavable`.
  virtual void RequireSavable() const {}
  // The outline the command line describes, to compare with a saved one.
  virtual void FillConfigLayout(MachineLayout* layout) const { (void)layout; }
  virtual void FillLayout(MachineLayout* layout) const { (void)layout; }
  virtual void Save(state::StateFileWriter& file) const { (void)file; }
  virtual void Load(const state::StateFile& file) { (void)file; }
  // A live migration's destination: take what the guest has read already
  // (the source's MACs).
  virtual void AdoptIncoming(const MachineLayout& source) { (void)source; }

  // Backends, hot-plug and the balloon for QMP; null on a board without them.
  virtual HotplugDevices* hotplug_devices() { return nullptr; }
};

}  // namespace virga
