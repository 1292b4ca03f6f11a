#include "devices/pci/config_space.h"

#include <cstring>

#include "common/error.h"

namespace virga::pci {

namespace {
bool ValidAccess(uint32_t offset, uint32_t len) {
  return (len == 1 || len == 2 || len == 4) && offset < kConfigSize && kConfigSize - offset >= len;
}
}  // namespace

ConfigSpace::ConfigSpace(const PciId& id) {
  Set(kVendorId, 2, id.vendor);
  Set(kDeviceId, 2, id.device);
  Set(kRevision, 1, id.revision);
  Set(kClassCode, 3, id.class_code);
  Set(kHeaderType, 1, 0);
  Set(kSubsystemVendorId, 2, id.subsystem_vendor);
  Set(kSubsystemId, 2, id.subsystem);
  SetMask(kCommand, 2, kCommandWritable);
  // Cache line size and latency timer are plain storage for the guest.
  SetMask(0x0c, 2, 0xffff);
  SetMask(kInterruptLine, 1, 0xff);
}

void ConfigSpace::Set(uint32_t offset, uint32_t len, uint64_t value) {
  for (uint32_t i = 0; i < len; ++i) bytes_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

void ConfigSpace::SetMask(uint32_t offset, uint32_t len, uint64_t mask) {
  for (uint32_t i = 0; i < len; ++i) writable_[offset + i] = static_cast<uint8_t>(mask >> (8 * i));
}

uint32_t ConfigSpace::Read(uint32_t offset, uint32_t len) const {
  if (!ValidAccess(offset, len)) return 0xffffffff;
  uint32_t value = 0;
  for (uint32_t i = 0; i < len; ++i) value |= static_cast<uint32_t>(bytes_[offset + i]) << (8 * i);
  return value;
}

void ConfigSpace::Write(uint32_t offset, uint32_t len, uint32_t value) {
  if (!ValidAccess(offset, len)) return;
  for (uint32_t i = 0; i < len; ++i) {
    uint8_t mask = writable_[offset + i];
    uint8_t byte = static_cast<uint8_t>(value >> (8 * i));
    bytes_[offset + i] = static_cast<uint8_t>((bytes_[offset + i] & ~mask) | (byte & mask));
  }
}

void ConfigSpace::AddMemoryBar(int index, uint64_t size, bool is_64bit, bool prefetchable) {
  if (index < 0 || index + (is_64bit ? 1 : 0) >= kBarCount || size < 16 || (size & (size - 1)) != 0) {
    throw VmmError("PCI BAR " + std::to_string(index) + ": bad index or size " + std::to_string(size));
  }
  uint32_t offset = kBar0 + 4 * static_cast<uint32_t>(index);
  uint32_t flags = (is_64bit ? 0x4u : 0u) | (prefetchable ? 0x8u : 0u);
  uint64_t mask = ~(size - 1);
  Set(offset, 4, flags);
  SetMask(offset, 4, mask & 0xfffffff0u);
  if (is_64bit) {
    Set(offset + 4, 4, 0);
    SetMask(offset + 4, 4, mask >> 32);
  }
  bar_64bit_[index] = is_64bit;
  bar_size_[index] = size;
}

uint32_t ConfigSpace::AddCapability(uint8_t id, const std::vector<uint8_t>& body, const std::vector<uint8_t>& writable) {
  uint32_t offset = next_capability_;
  // Capabilities live in the conventional 256 bytes, dword-aligned.
  if (offset + 2 + body.size() > 0x100) throw VmmError("PCI capabilities do not fit in 256 bytes");
  Set(offset, 1, id);
  Set(offset + 1, 1, 0);
  for (size_t i = 0; i < body.size(); ++i) {
    bytes_[offset + 2 + i] = body[i];
    writable_[offset + 2 + i] = i < writable.size() ? writable[i] : 0;
  }
  if (last_capability_ == 0) {
    Set(kCapabilitiesPointer, 1, offset);
    Set(kStatus, 2, Read(kStatus, 2) | kStatusCapabilities);
  } else {
    Set(last_capability_ + 1, 1, offset);
  }
  last_capability_ = offset;
  next_capability_ = (offset + 2 + static_cast<uint32_t>(body.size()) + 3) & ~3u;
  return offset;
}

void ConfigSpace::Restore(state::ByteReader& in) {
  std::array<uint8_t, kConfigSize> saved{};
  in.Bytes(saved.data(), saved.size());
  struct Field {
    const char* name;
    uint32_t offset, len;
  };
  // What says which function this is; the rest is guest-written or follows from it.
  for (const Field& f : {Field{"vendor id", kVendorId, 2}, Field{"device id", kDeviceId, 2},
                         Field{"revision", kRevision, 1}, Field{"class code", kClassCode, 3},
                         Field{"header type", kHeaderType, 1}, Field{"subsystem vendor id", kSubsystemVendorId, 2},
                         Field{"subsystem id", kSubsystemId, 2}, Field{"capabilities pointer", kCapabilitiesPointer, 1}}) {
    if (std::memcmp(saved.data() + f.offset, bytes_.data() + f.offset, f.len) != 0) {
      throw state::StateError(in.what() + ": its " + f.name + " differs from this function's");
    }
  }
  bytes_ = saved;
}

uint64_t ConfigSpace::BarAddress(int index) const {
  uint32_t offset = kBar0 + 4 * static_cast<uint32_t>(index);
  uint64_t address = Read(offset, 4) & 0xfffffff0u;
  if (bar_64bit_[index]) address |= static_cast<uint64_t>(Read(offset + 4, 4)) << 32;
  return address;
}

}  // namespace virga::pci
