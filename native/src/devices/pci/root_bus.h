// PCIe root bus pcie.0: 32 slots of 8 functions (and, through the root
// ports among them, the buses behind them), reached through ECAM
// (an MMIO window, 1 MiB per bus number, 4 KiB per function: the MCFG
// describes it) and through the legacy configuration mechanism #1 (an
// address at 0xcf8, data at 0xcfc-0xcff), which firmware and early boot
// code use before they have read ACPI. Absent functions read all ones.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>

#include "devices/bus.h"
#include "devices/pci/device.h"
#include "state/state_file.h"
#include "vm/exit_reason.h"

namespace virga::pci {

constexpr uint32_t kSlots = 32;
constexpr uint32_t kFunctions = 8;
constexpr uint64_t kEcamBytesPerBus = 1 << 20;

class RootBus {
 public:
  // `mmio`: where the functions' BARs are mapped as the guest programs them.
  explicit RootBus(Bus* mmio) : mmio_(mmio) {}

  // Throws when the slot.function is taken or out of range. The
  // function's configuration space as it is now (BARs assigned) is what a
  // machine reset returns it to.
  void Attach(uint32_t slot, uint32_t function, std::shared_ptr<PciDevice> device);
  // Machine reset (vCPUs stopped): every function back to power-on state.
  void Reset();

  // Snapshots: a PCIF section per function present (bus number, devfn,
  // then the function's own state, which for a root port holds the
  // function in its slot), in address order. Load expects the same
  // functions (the machine layout was compared first) and maps each BAR,
  // behind the root ports too, where the saved guest put it.
  void Save(state::StateFileWriter& file) const;
  void Load(const state::StateFile& file);
  // The first function that cannot be saved, and why; empty when all can.
  std::string SaveRefusal() const;

  // bus << 8 | slot << 3 | function, as both mechanisms encode it.
  uint32_t ReadConfig(uint32_t bus, uint32_t devfn, uint32_t offset, uint32_t len) const;
  void WriteConfig(uint32_t bus, uint32_t devfn, uint32_t offset, uint32_t len, uint32_t value) const;

 private:
  std::shared_ptr<PciDevice> Find(uint32_t bus, uint32_t devfn) const;

  Bus* mmio_;
  mutable std::mutex lock_;  // functions change only at plug time
  std::array<std::shared_ptr<PciDevice>, kSlots * kFunctions> functions_{};
};

// ECAM: offset = bus << 20 | devfn << 12 | register.
class EcamWindow : public BusDevice {
 public:
  explicit EcamWindow(std::shared_ptr<RootBus> bus) : bus_(std::move(bus)) {}
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

 private:
  std::shared_ptr<RootBus> bus_;
};

// Ports 0xcf8-0xcff: the address register (dword accesses only, as on the
// chipsets), the data window, and the Q35's reset control at 0xcf9 (bit 2
// resets the machine: Linux's reboot=pci).
class ConfigPorts : public BusDevice {
 public:
  static constexpr uint16_t kBase = 0xcf8;
  static constexpr uint64_t kSize = 8;

  ConfigPorts(std::shared_ptr<RootBus> bus, ExitRequest on_exit) : bus_(std::move(bus)), on_exit_(std::move(on_exit)) {}
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;
  // The address latch (a guest may be between its 0xcf8 and 0xcfc accesses).
  void Save(state::ByteWriter& out);
  void Restore(state::ByteReader& in);

 private:
  std::shared_ptr<RootBus> bus_;
  ExitRequest on_exit_;
  std::mutex lock_;
  uint32_t address_ = 0;
  uint8_t reset_control_ = 0;
};

}  // namespace virga::pci
