// A function on a PCI bus, as its bus sees it: configuration reads and
// writes, and the registers behind its memory BARs, which follow the
// addresses the guest programs. Devices serialise their own state; the
// bus only routes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "devices/bus.h"
#include "devices/pci/config_space.h"

namespace virga::pci {

class PciDevice {
 public:
  explicit PciDevice(const PciId& id) : config_(id), power_on_(id) {}
  virtual ~PciDevice() = default;

  virtual uint32_t ReadConfig(uint32_t offset, uint32_t len) {
    std::lock_guard guard(lock_);
    return config_.Read(offset, len);
  }
  virtual void WriteConfig(uint32_t offset, uint32_t len, uint32_t value) {
    std::lock_guard guard(lock_);
    config_.Write(offset, len, value);
  }

  // Firmware's work before the guest runs: BAR `index` at `address`.
  void AssignBar(int index, uint64_t address) {
    std::lock_guard guard(lock_);
    config_.Write(kBar0 + 4 * static_cast<uint32_t>(index), 4, static_cast<uint32_t>(address));
    if (config_.BarIs64bit(index)) config_.Write(kBar0 + 4 * static_cast<uint32_t>(index) + 4, 4, address >> 32);
  }
  // Header type bit 7: the slot has functions beyond 0 for the guest to scan.
  void SetMultiFunction() {
    std::lock_guard guard(lock_);
    config_.SetMultiFunction();
  }
  // What a machine reset returns the configuration space to (the bus
  // takes it when the function is attached, BARs assigned).
  void CapturePowerOn() {
    std::lock_guard guard(lock_);
    power_on_ = config_;
  }
  // Machine reset (the bus maps the BARs again after).
  virtual void ResetFunction() {
    std::lock_guard guard(lock_);
    config_ = power_on_;
  }

  // Snapshots and migration (docs/q35.md). The configuration space as the
  // guest left it; a function with more state (MSI-X, a virtio transport)
  // adds it after. The bus maps the BARs again after a restore.
  virtual void SaveFunction(state::ByteWriter& out) {
    std::lock_guard guard(lock_);
    config_.Save(out);
  }
  virtual void RestoreFunction(state::ByteReader& in) {
    std::lock_guard guard(lock_);
    config_.Restore(in);
  }
  // Why this function cannot be saved (a passed-through device's state is
  // in its hardware); empty when it can.
  virtual std::string SaveRefusal() const { return {}; }
  // A bridge's view of the buses behind it: the function at `devfn` on
  // bus number `bus` (which it compares with its own bus registers), or
  // nothing. Endpoints have no buses behind them.
  virtual std::shared_ptr<PciDevice> Downstream(uint32_t bus, uint32_t devfn) { return nullptr; }
  // Every function behind this one (a machine reset maps their BARs again).
  virtual std::vector<std::shared_ptr<PciDevice>> Children() { return {}; }

  // Maps each memory BAR with registers where the guest put it, while
  // memory decoding is on; unmaps it otherwise. A BAR the guest placed
  // over another device stays unmapped until it moves (as sizing does,
  // writing all ones, when decoding is left on).
  void UpdateBarMappings(Bus& mmio) {
    std::lock_guard guard(lock_);
    for (int i = 0; i < kBarCount; ++i) {
      if (!bar_registers_[i]) continue;
      uint64_t want = config_.MemoryEnabled() ? config_.BarAddress(i) : 0;
      if (want == mapped_at_[i]) continue;
      uint64_t from = mapped_at_[i];
      if (from != 0) mmio.Remove(from);
      mapped_at_[i] = 0;
      if (want != 0) {
        try {
          mmio.Insert(want, config_.BarSize(i), bar_registers_[i]);
          mapped_at_[i] = want;
        } catch (const std::exception&) {
          // Overlaps: left unmapped, as above.
        }
      }
      if (mapped_at_[i] != from) BarMoved(i, from, mapped_at_[i]);
    }
  }

 protected:
  // BAR `index` now answers at `to` instead of `from` (0: unmapped), with
  // lock_ held: what KVM was told about addresses in it must follow.
  virtual void BarMoved(int index, uint64_t from, uint64_t to) {}
  // The registers behind BAR `index` (declared with config_.AddMemoryBar).
  void SetBarRegisters(int index, std::shared_ptr<BusDevice> registers) { bar_registers_[index] = std::move(registers); }

  std::mutex lock_;
  ConfigSpace config_;
  ConfigSpace power_on_;

 private:
  std::array<std::shared_ptr<BusDevice>, kBarCount> bar_registers_{};
  std::array<uint64_t, kBarCount> mapped_at_{};
};

}  // namespace virga::pci
