#include "devices/pci/msix.h"

#include "common/error.h"

namespace virga::pci {

namespace {
constexpr uint16_t kControlEnable = 1u << 15;
constexpr uint16_t kControlFunctionMask = 1u << 14;
}  // namespace

Msix::Msix(uint16_t vectors, Route route, Fire fire)
    : route_(std::move(route)), fire_(std::move(fire)), entries_(vectors) {
  if (vectors == 0 || vectors > 2048) throw VmmError("MSI-X: 1 to 2048 vectors, not " + std::to_string(vectors));
}

void Msix::AddCapability(ConfigSpace& config, int bar, uint32_t table_offset, uint32_t pba_offset) {
  uint16_t control = static_cast<uint16_t>(entries_.size() - 1);
  uint32_t table = table_offset | static_cast<uint32_t>(bar);
  uint32_t pba = pba_offset | static_cast<uint32_t>(bar);
  std::vector<uint8_t> body = {static_cast<uint8_t>(control), static_cast<uint8_t>(control >> 8)};
  for (uint32_t word : {table, pba}) {
    for (int i = 0; i < 4; ++i) body.push_back(static_cast<uint8_t>(word >> (8 * i)));
  }
  // Only the enable and function-mask bits are the guest's to change.
  capability_ = config.AddCapability(kCapabilityMsix, body, {0x00, 0xc0});
}

void Msix::ConfigWritten(const ConfigSpace& config) {
  uint16_t control = static_cast<uint16_t>(config.Read(capability_ + 2, 2));
  std::lock_guard guard(lock_);
  enabled_ = (control & kControlEnable) != 0;
  function_masked_ = (control & kControlFunctionMask) != 0;
  FirePendingLocked();
}

bool Msix::enabled() const {
  std::lock_guard guard(lock_);
  return enabled_;
}

void Msix::FirePendingLocked() {
  for (uint16_t v = 0; v < entries_.size(); ++v) {
    Entry& entry = entries_[v];
    if (entry.pending && Deliverable(entry)) {
      entry.pending = false;
      fire_(v);
    }
  }
}

void Msix::Signal(uint16_t vector) {
  std::lock_guard guard(lock_);
  if (vector >= entries_.size()) return;  // "no vector" (0xffff) and beyond: nothing to raise
  Entry& entry = entries_[vector];
  if (Deliverable(entry)) {
    fire_(vector);
  } else {
    entry.pending = true;
  }
}

uint32_t Msix::ReadDword(uint64_t offset) const {
  const Entry& entry = entries_[offset / kEntrySize];
  switch (offset % kEntrySize) {
    case 0: return entry.address_low;
    case 4: return entry.address_high;
    case 8: return entry.data;
    default: return entry.control;
  }
}

void Msix::WriteDword(uint64_t offset, uint32_t value) {
  uint16_t vector = static_cast<uint16_t>(offset / kEntrySize);
  Entry& entry = entries_[vector];
  MsiMessage before = entry.message();
  switch (offset % kEntrySize) {
    case 0: entry.address_low = value & ~3u; break;
    case 4: entry.address_high = value; break;
    case 8: entry.data = value; break;
    default: entry.control = value & 1; break;
  }
  if (!(entry.message() == before)) route_(vector, entry.message());
  if (entry.pending && Deliverable(entry)) {
    entry.pending = false;
    fire_(vector);
  }
}

void Msix::ReadTable(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard guard(lock_);
  // Dword or qword accesses, naturally aligned (6.8.2); others read zero.
  uint64_t value = 0;
  if ((len == 4 || len == 8) && offset % len == 0 && offset + len <= table_bytes()) {
    value = ReadDword(offset);
    if (len == 8) value |= uint64_t{ReadDword(offset + 4)} << 32;
  }
  for (uint32_t i = 0; i < len; ++i) data[i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
}

void Msix::WriteTable(uint64_t offset, const uint8_t* data, uint32_t len) {
  if ((len != 4 && len != 8) || offset % len != 0 || offset + len > table_bytes()) return;
  uint64_t value = 0;
  for (uint32_t i = 0; i < len; ++i) value |= uint64_t{data[i]} << (8 * i);
  std::lock_guard guard(lock_);
  WriteDword(offset, static_cast<uint32_t>(value));
  if (len == 8) WriteDword(offset + 4, static_cast<uint32_t>(value >> 32));
}

void Msix::ReadPba(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard guard(lock_);
  for (uint32_t i = 0; i < len; ++i) {
    uint8_t byte = 0;
    for (uint32_t bit = 0; bit < 8; ++bit) {
      uint64_t vector = (offset + i) * 8 + bit;
      if (vector < entries_.size() && entries_[vector].pending) byte |= static_cast<uint8_t>(1u << bit);
    }
    data[i] = byte;
  }
}

void Msix::Reset() {
  std::lock_guard guard(lock_);
  for (uint16_t v = 0; v < entries_.size(); ++v) {
    MsiMessage before = entries_[v].message();
    entries_[v] = Entry{};
    if (!(before == MsiMessage{})) route_(v, MsiMessage{});
  }
  enabled_ = false;
  function_masked_ = false;
}

void Msix::Save(state::ByteWriter& out) const {
  std::lock_guard guard(lock_);
  out.U32(static_cast<uint32_t>(entries_.size()));
  for (const Entry& e : entries_) {
    for (uint32_t word : {e.address_low, e.address_high, e.data, e.control}) out.U32(word);
    out.Bool(e.pending);
  }
}

void Msix::Restore(state::ByteReader& in, const ConfigSpace& config) {
  {
    std::lock_guard guard(lock_);
    uint32_t count = in.U32();
    if (count != entries_.size()) {
      throw state::StateError(in.what() + ": " + std::to_string(count) + " MSI-X vectors saved, this function has " +
                              std::to_string(entries_.size()));
    }
    for (uint16_t v = 0; v < entries_.size(); ++v) {
      Entry& e = entries_[v];
      for (uint32_t* word : {&e.address_low, &e.address_high, &e.data, &e.control}) *word = in.U32();
      e.pending = in.Bool();
      route_(v, e.message());
    }
  }
  ConfigWritten(config);
}

}  // namespace virga::pci
