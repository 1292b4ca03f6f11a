#include "devices/pci/root_bus.h"

#include <cstdio>

#include "common/error.h"

namespace virga::pci {

namespace {

uint32_t Load(const uint8_t* data, uint32_t len) {
  uint32_t value = 0;
  for (uint32_t i = 0; i < len && i < 4; ++i) value |= static_cast<uint32_t>(data[i]) << (8 * i);
  return value;
}

void Store(uint8_t* data, uint32_t len, uint32_t value) {
  for (uint32_t i = 0; i < len; ++i) data[i] = i < 4 ? static_cast<uint8_t>(value >> (8 * i)) : 0xff;
}

}  // namespace

void RootBus::Attach(uint32_t slot, uint32_t function, std::shared_ptr<PciDevice> device) {
  if (slot >= kSlots || function >= kFunctions) {
    throw VmmError("addr: " + std::to_string(slot) + "." + std::to_string(function) +
                   " is out of range (slots 0-31, functions 0-7)");
  }
  std::lock_guard guard(lock_);
  auto& entry = functions_[slot * kFunctions + function];
  if (entry) throw VmmError("addr: slot " + std::to_string(slot) + "." + std::to_string(function) + " is occupied");
  device->CapturePowerOn();
  entry = std::move(device);
}

void RootBus::Reset() {
  std::lock_guard guard(lock_);
  for (const auto& device : functions_) {
    if (!device) continue;
    device->ResetFunction();
    if (mmio_ == nullptr) continue;
    device->UpdateBarMappings(*mmio_);
    for (const auto& child : device->Children()) child->UpdateBarMappings(*mmio_);
  }
}

namespace {
std::string Address(uint32_t bus, uint32_t devfn) {
  char text[16];
  std::snprintf(text, sizeof(text), "%02x:%02x.%u", bus, devfn >> 3, devfn & 7);
  return text;
}
}  // namespace

void RootBus::Save(state::StateFileWriter& file) const {
  std::lock_guard guard(lock_);
  for (uint32_t devfn = 0; devfn < functions_.size(); ++devfn) {
    if (!functions_[devfn]) continue;
    state::ByteWriter out;
    out.U32(0);
    out.U32(devfn);
    functions_[devfn]->SaveFunction(out);
    file.Section("PCIF", out);
  }
}

void RootBus::Load(const state::StateFile& file) {
  std::lock_guard guard(lock_);
  size_t n = 0;
  for (uint32_t devfn = 0; devfn < functions_.size(); ++devfn) {
    if (!functions_[devfn]) continue;
    if (n >= file.Count("PCIF")) throw state::StateError("it has no PCI function " + Address(0, devfn));
    state::ByteReader in = file.Section("PCIF", n++);
    uint32_t bus = in.U32();
    uint32_t saved = in.U32();
    if (bus != 0 || saved != devfn) {
      throw state::StateError("it has PCI function " + Address(bus, saved & 0xff) + " where this machine has " +
                              Address(0, devfn));
    }
    functions_[devfn]->RestoreFunction(in);
    in.ExpectEnd();
    if (mmio_ == nullptr) continue;
    functions_[devfn]->UpdateBarMappings(*mmio_);
    for (const auto& child : functions_[devfn]->Children()) child->UpdateBarMappings(*mmio_);
  }
  if (n != file.Count("PCIF")) {
    throw state::StateError("it holds " + std::to_string(file.Count("PCIF")) + " PCI functions, this machine has " +
                            std::to_string(n));
  }
}

std::string RootBus::SaveRefusal() const {
  std::lock_guard guard(lock_);
  for (uint32_t devfn = 0; devfn < functions_.size(); ++devfn) {
    if (!functions_[devfn]) continue;
    std::string why = functions_[devfn]->SaveRefusal();
    if (!why.empty()) return Address(0, devfn) + ": " + why;
  }
  return {};
}

void ConfigPorts::Save(state::ByteWriter& out) {
  std::lock_guard guard(lock_);
  out.U32(address_);
  out.U8(reset_control_);
}

void ConfigPorts::Restore(state::ByteReader& in) {
  std::lock_guard guard(lock_);
  address_ = in.U32() & 0x80fffffcu;
  reset_control_ = in.U8() & 0x0e;
}

std::shared_ptr<PciDevice> RootBus::Find(uint32_t bus, uint32_t devfn) const {
  if (devfn >= functions_.size()) return nullptr;
  std::lock_guard guard(lock_);
  if (bus == 0) return functions_[devfn];
  // The other buses are behind pcie.0's root ports, by the bus numbers
  // each was given (a port takes only its own lock, never this one).
  for (const auto& bridge : functions_) {
    if (!bridge) continue;
    if (std::shared_ptr<PciDevice> device = bridge->Downstream(bus, devfn)) return device;
  }
  return nullptr;
}

uint32_t RootBus::ReadConfig(uint32_t bus, uint32_t devfn, uint32_t offset, uint32_t len) const {
  std::shared_ptr<PciDevice> device = Find(bus, devfn);
  return device ? device->ReadConfig(offset, len) : 0xffffffff;
}

void RootBus::WriteConfig(uint32_t bus, uint32_t devfn, uint32_t offset, uint32_t len, uint32_t value) const {
  std::shared_ptr<PciDevice> device = Find(bus, devfn);
  if (!device) return;
  device->WriteConfig(offset, len, value);
  // The command register or a BAR: where its registers answer may have moved.
  bool moves = offset < kCommand + 2 ? offset + len > kCommand : offset < kBar0 + 4 * kBarCount && offset + len > kBar0;
  if (moves && mmio_ != nullptr) device->UpdateBarMappings(*mmio_);
}

void EcamWindow::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  uint32_t reg = offset & 0xfff;
  uint32_t value = len <= 4 && (reg & (len - 1)) == 0
                       ? bus_->ReadConfig(static_cast<uint32_t>(offset >> 20), (offset >> 12) & 0xff, reg, len)
                       : 0xffffffff;
  Store(data, len, value);
}

void EcamWindow::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  uint32_t reg = offset & 0xfff;
  // Unaligned or wider than a dword: dropped, as the PCIe spec allows.
  if (len > 4 || (reg & (len - 1)) != 0) return;
  bus_->WriteConfig(static_cast<uint32_t>(offset >> 20), (offset >> 12) & 0xff, reg, len, Load(data, len));
}

void ConfigPorts::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard guard(lock_);
  if (offset == 0 && len == 4) return Store(data, len, address_);
  if (offset == 1 && len == 1) return Store(data, len, reset_control_);
  if (offset < 4 || !(address_ & 0x80000000u)) return Store(data, len, 0xffffffff);
  uint32_t reg = (address_ & 0xfc) + static_cast<uint32_t>(offset - 4);
  Store(data, len, bus_->ReadConfig((address_ >> 16) & 0xff, (address_ >> 8) & 0xff, reg, len));
}

void ConfigPorts::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  uint32_t value = Load(data, len);
  bool reset = false;
  {
    std::lock_guard guard(lock_);
    if (offset == 0 && len == 4) {
      address_ = value & 0x80fffffcu;
    } else if (offset == 1 && len == 1) {
      reset_control_ = value & 0x0e;
      reset = (value & 0x04) != 0;
    } else if (offset >= 4 && (address_ & 0x80000000u)) {
      uint32_t reg = (address_ & 0xfc) + static_cast<uint32_t>(offset - 4);
      bus_->WriteConfig((address_ >> 16) & 0xff, (address_ >> 8) & 0xff, reg, len, value);
    }
  }
  if (reset) on_exit_({ExitKind::kGuestReset, "Q35 reset control register (0xcf9)"});
}

}  // namespace virga::pci
