// MSI-X (PCI Local Bus 3.0, 6.8.2): a function's capability, and its
// vector table and pending-bit array (PBA), which live behind one of its
// memory BARs. A vector fires only while MSI-X is enabled and neither the
// function nor the vector is masked; otherwise its pending bit is set and
// it fires when unmasked, as the spec requires. Delivery is the owner's:
// `route` learns a vector's message whenever the guest changes it (the
// board makes it a KVM GSI route), `fire` raises it (that route's irqfd).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "devices/pci/config_space.h"
#include "state/byte_stream.h"

namespace virga::pci {

constexpr uint8_t kCapabilityMsix = 0x11;

struct MsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  bool operator==(const MsiMessage& o) const { return address == o.address && data == o.data; }
};

class Msix {
 public:
  static constexpr uint32_t kEntrySize = 16;
  using Route = std::function<void(uint16_t vector, const MsiMessage& message)>;
  using Fire = std::function<void(uint16_t vector)>;

  Msix(uint16_t vectors, Route route, Fire fire);

  // Adds the capability to `config`: the table at `table_offset` and the
  // PBA at `pba_offset` of BAR `bar` (8-byte aligned, inside the BAR).
  void AddCapability(ConfigSpace& config, int bar, uint32_t table_offset, uint32_t pba_offset);
  // After a configuration write: the enable and function-mask bits.
  void ConfigWritten(const ConfigSpace& config);

  // The table and PBA as the guest reads and writes them (offsets within each).
  void ReadTable(uint64_t offset, uint8_t* data, uint32_t len);
  void WriteTable(uint64_t offset, const uint8_t* data, uint32_t len);
  void ReadPba(uint64_t offset, uint8_t* data, uint32_t len);
  uint32_t table_bytes() const { return static_cast<uint32_t>(entries_.size()) * kEntrySize; }
  uint32_t pba_bytes() const { return ((static_cast<uint32_t>(entries_.size()) + 63) / 64) * 8; }

  // Raises `vector` (from a device's I/O thread).
  void Signal(uint16_t vector);
  bool enabled() const;
  // Machine reset: disabled, every vector masked and not pending.
  void Reset();
  // The vector table and pending bits (the enable and function-mask bits
  // are in the configuration space). Restore hands every programmed
  // vector's message to `route` again, so the board's KVM routes are the
  // saved guest's, then takes the control bits from `config`.
  void Save(state::ByteWriter& out) const;
  void Restore(state::ByteReader& in, const ConfigSpace& config);

 private:
  struct Entry {
    uint32_t address_low = 0, address_high = 0, data = 0;
    uint32_t control = 1;  // bit 0: masked
    bool pending = false;
    MsiMessage message() const { return {uint64_t{address_high} << 32 | address_low, data}; }
  };
  bool Deliverable(const Entry& entry) const { return enabled_ && !function_masked_ && !(entry.control & 1); }
  void FirePendingLocked();
  uint32_t ReadDword(uint64_t offset) const;
  void WriteDword(uint64_t offset, uint32_t value);

  Route route_;
  Fire fire_;
  uint32_t capability_ = 0;
  mutable std::mutex lock_;
  std::vector<Entry> entries_;
  bool enabled_ = false;
  bool function_masked_ = false;
};

}  // namespace virga::pci
