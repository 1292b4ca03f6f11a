// One PCI function's configuration space: PCIe's 4 KiB (the conventional
// 256 bytes are its start) as bytes plus a per-byte mask of the bits the
// guest may change, so read-only fields hold whatever the guest writes.
// BARs fall out of the masks: a BAR's low bits (flags, and the bits below
// its size) are read-only, so the sizing protocol (write all ones, read
// back) reads ~(size - 1) | flags as on hardware.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "state/byte_stream.h"

namespace virga::pci {

constexpr uint32_t kConfigSize = 4096;
// Capability ids (PCI Local Bus 3.0, appendix H) more than one function kind uses.
constexpr uint8_t kCapabilityMsi = 0x05;
constexpr uint32_t kVendorId = 0x00;
constexpr uint32_t kDeviceId = 0x02;
constexpr uint32_t kCommand = 0x04;
constexpr uint32_t kStatus = 0x06;
constexpr uint32_t kRevision = 0x08;
constexpr uint32_t kClassCode = 0x09;  // prog-if, subclass, class: 3 bytes
constexpr uint32_t kHeaderType = 0x0e;
constexpr uint32_t kBar0 = 0x10;
constexpr uint16_t kStatusCapabilities = 0x0010;
constexpr uint32_t kFirstCapability = 0x40;
constexpr uint32_t kSubsystemVendorId = 0x2c;
constexpr uint32_t kSubsystemId = 0x2e;
constexpr uint32_t kCapabilitiesPointer = 0x34;
constexpr uint32_t kInterruptLine = 0x3c;
constexpr uint32_t kInterruptPin = 0x3d;
constexpr int kBarCount = 6;

// Command register bits the guest may set: I/O and memory decoding, bus
// mastering, parity and SERR reporting, INTx disable.
constexpr uint16_t kCommandWritable = 0x0001 | 0x0002 | 0x0004 | 0x0040 | 0x0100 | 0x0400;
constexpr uint16_t kCommandMemory = 0x0002;
constexpr uint16_t kCommandIntxDisable = 0x0400;

struct PciId {
  uint16_t vendor;
  uint16_t device;
  uint32_t class_code;  // class << 16 | subclass << 8 | prog-if
  uint8_t revision = 0;
  uint16_t subsystem_vendor = 0;
  uint16_t subsystem = 0;
};

class ConfigSpace {
 public:
  // A type 0 (endpoint) header.
  explicit ConfigSpace(const PciId& id);

  // Reads and writes of 1, 2 or 4 bytes inside the space; other sizes or
  // accesses that cross the end read all ones and write nothing, as a
  // master abort would.
  uint32_t Read(uint32_t offset, uint32_t len) const;
  void Write(uint32_t offset, uint32_t len, uint32_t value);

  // Declares memory BAR `index` of `size` bytes (a power of two, at least
  // 16); a 64-bit BAR takes `index + 1` too.
  void AddMemoryBar(int index, uint64_t size, bool is_64bit, bool prefetchable);
  // The address the guest programmed (0 while unassigned), and the size
  // (0: no such BAR).
  uint64_t BarAddress(int index) const;
  uint64_t BarSize(int index) const { return index >= 0 && index < kBarCount ? bar_size_[index] : 0; }
  bool BarIs64bit(int index) const { return index >= 0 && index < kBarCount && bar_64bit_[index]; }
  void SetMultiFunction() { Set(kHeaderType, 1, Read(kHeaderType, 1) | 0x80); }
  // 1-4: INTA#-INTD#; 0: no INTx.
  void SetInterruptPin(uint8_t pin) { Set(kInterruptPin, 1, pin); }
  bool IntxDisabled() const { return (Read(kCommand, 2) & kCommandIntxDisable) != 0; }
  bool MemoryEnabled() const { return (Read(kCommand, 2) & kCommandMemory) != 0; }

  // Appends a capability (its id, then `body` from the byte after the
  // next pointer) to the list, with `writable` masks for the body's bytes
  // (shorter: the rest read-only); returns its offset.
  uint32_t AddCapability(uint8_t id, const std::vector<uint8_t>& body, const std::vector<uint8_t>& writable = {});

  // Every byte as the guest left it (BARs, command, capabilities' control
  // fields); the masks and BAR sizes are the device's and are rebuilt by
  // constructing it. Restore refuses bytes of another kind of function
  // (its identity fields differ), naming the field.
  void Save(state::ByteWriter& out) const { out.Bytes(bytes_.data(), bytes_.size()); }
  void Restore(state::ByteReader& in);

  // The device's own view: a register's value whatever its mask (status
  // bits the hardware sets), and which of its bits the guest may write.
  void Set(uint32_t offset, uint32_t len, uint64_t value);
  void SetMask(uint32_t offset, uint32_t len, uint64_t mask);

 private:
  std::array<uint8_t, kConfigSize> bytes_{};
  std::array<uint8_t, kConfigSize> writable_{};
  std::array<bool, kBarCount> bar_64bit_{};
  std::array<uint64_t, kBarCount> bar_size_{};
  uint32_t next_capability_ = kFirstCapability;
  uint32_t last_capability_ = 0;
};

}  // namespace virga::pci
