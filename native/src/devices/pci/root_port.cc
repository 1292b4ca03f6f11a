#include "devices/pci/root_port.h"

#include <vector>

#include "common/error.h"

namespace virga::pci {

namespace {

constexpr uint32_t kSlotControl = kRootPortPcieCap + kPcieSlotControl;
constexpr uint32_t kSlotStatus = kRootPortPcieCap + kPcieSlotStatus;
constexpr uint32_t kLinkStatus = kRootPortPcieCap + kPcieLinkStatus;
constexpr uint32_t kMsiControl = kRootPortMsiCap + 2;
constexpr uint32_t kMsiBytes = 14;
// The events the guest clears by writing ones: attention button, power
// fault, MRL sensor, presence, command completed, link state.
constexpr uint16_t kSlotEvents = 0x011f;
constexpr uint16_t kIndicatorsAndPower = kSlotPowerIndicatorMask | 0x00c0 | kSlotPowerOff;

// Writes `value` (`len` bytes) at `reg`, an offset in the capability, into
// `body`, which starts at the capability's byte 2.
void Put(std::vector<uint8_t>& body, uint32_t reg, uint32_t len, uint32_t value) {
  for (uint32_t i = 0; i < len; ++i) body[reg - 2 + i] = static_cast<uint8_t>(value >> (8 * i));
}

// The 16 bits an access of `len` bytes at `offset` wrote to the register at `reg`.
uint16_t WrittenTo(uint32_t reg, uint32_t offset, uint32_t len, uint32_t value) {
  uint16_t written = 0;
  for (uint32_t b = 0; b < 2; ++b) {
    if (reg + b < offset || reg + b >= offset + len) continue;
    written |= static_cast<uint16_t>(((value >> (8 * (reg + b - offset))) & 0xff) << (8 * b));
  }
  return written;
}

}  // namespace

RootPort::RootPort(const Options& options, Bus* mmio, Route route, Fire fire)
    : PciDevice(kRootPortId), mmio_(mmio), route_(std::move(route)), fire_(std::move(fire)) {
  config_.Set(kHeaderType, 1, 0x01);
  // Bus numbers and the memory window, programmed as firmware would; the
  // guest may renumber or move them. No I/O or prefetchable window: their
  // registers read zero whatever is written, which says so.
  config_.Set(kPrimaryBus, 3, uint32_t{options.secondary_bus} << 8 | uint32_t{options.secondary_bus} << 16);
  config_.SetMask(kPrimaryBus, 3, 0xffffff);
  config_.Set(kMemoryBase, 2, (options.window_base >> 16) & 0xfff0);
  config_.Set(kMemoryLimit, 2, ((options.window_base + options.window_size - 1) >> 16) & 0xfff0);
  config_.SetMask(kMemoryBase, 4, 0xfff0fff0);
  // Parity and SERR reporting, ISA and VGA enables, secondary bus reset: storage.
  config_.SetMask(kBridgeControl, 2, 0x004f);

  std::vector<uint8_t> pcie(0x3a), pcie_writable(0x3a);
  // Version 2, a root port, with a slot.
  Put(pcie, 0x02, 2, 0x0142);
  // Role-based error reporting; 128-byte payloads.
  Put(pcie, 0x04, 4, 0x00008000);
  Put(pcie_writable, 0x08, 2, 0x7fff);
  // 2.5 GT/s, x1, reports data link layer link active; its port number.
  Put(pcie, 0x0c, 4, 0x00100011 | uint32_t{options.port} << 24);
  // Link control, less retrain (which takes no time here) and reserved bits.
  Put(pcie_writable, 0x10, 2, 0x0fdb);
  // Link status: 2.5 GT/s, x1, slot clock; link active while powered and occupied.
  Put(pcie, 0x12, 2, 0x1011);
  // Attention button, power controller, attention and power indicators,
  // hot-plug capable, no command-completed support; slot number = port.
  Put(pcie, 0x14, 4, 0x0004005b | uint32_t{options.port} << 19);
  // Slot control: every enable, indicator and power bit but the interlock's.
  Put(pcie_writable, 0x18, 2, 0x17ff);
  Put(pcie_writable, 0x1c, 2, 0x001f);
  // Link capabilities 2: 2.5 GT/s supported; link control 2: target 2.5 GT/s.
  Put(pcie, 0x2c, 4, 0x2);
  Put(pcie, 0x30, 2, 0x1);
  Put(pcie_writable, 0x30, 2, 0x000f);
  if (config_.AddCapability(kCapabilityPcie, pcie, pcie_writable) != kRootPortPcieCap) {
    throw VmmError("root port: PCI Express capability misplaced");
  }

  // MSI, one vector, 64-bit addresses, no per-vector masking.
  std::vector<uint8_t> msi(12), msi_writable(12);
  Put(msi, 0x02, 2, 0x0080);
  Put(msi_writable, 0x02, 2, 0x0001);
  Put(msi_writable, 0x04, 4, 0xfffffffc);
  Put(msi_writable, 0x08, 4, 0xffffffff);
  Put(msi_writable, 0x0c, 2, 0xffff);
  if (config_.AddCapability(kCapabilityMsi, msi, msi_writable) != kRootPortMsiCap) {
    throw VmmError("root port: MSI capability misplaced");
  }
  SetSlotLocked(false);
}

bool RootPort::PoweredLocked() const { return !(Get16(kSlotControl) & kSlotPowerOff); }

void RootPort::SetSlotLocked(bool occupied) {
  uint16_t control = Get16(kSlotControl) & ~kIndicatorsAndPower;
  control |= kSlotAttentionIndicatorOff | (occupied ? kSlotPowerIndicatorOn : kSlotPowerIndicatorOff | kSlotPowerOff);
  Put16(kSlotControl, control);
  Put16(kSlotStatus, occupied ? kSlotPresent : 0);
  uint16_t link = Get16(kLinkStatus) & ~kLinkActive;
  Put16(kLinkStatus, occupied ? link | kLinkActive : link);
}

void RootPort::ColdPlug(std::shared_ptr<PciDevice> device) {
  std::lock_guard guard(lock_);
  if (device_) throw VmmError("the slot is occupied");
  device->CapturePowerOn();
  device_ = std::move(device);
  SetSlotLocked(true);
}

void RootPort::HotPlug(std::shared_ptr<PciDevice> device) {
  std::lock_guard guard(lock_);
  if (removed_) throw VmmError("the slot's previous device is still being unplugged");
  if (device_) throw VmmError("the slot is occupied");
  device->CapturePowerOn();
  device_ = std::move(device);
  // The attention button too, as QEMU's slots do: a driver that has one
  // (Linux's pciehp) takes no presence interrupts and powers the slot on
  // after the button instead (after its 5 s cancel window).
  uint16_t status = Get16(kSlotStatus) | kSlotPresent | kSlotPresenceChanged | kSlotAttentionButtonPressed;
  // A slot the guest left powered: the link comes up at once.
  if (PoweredLocked()) {
    Put16(kLinkStatus, Get16(kLinkStatus) | kLinkActive);
    status |= kSlotLinkChanged;
  }
  Put16(kSlotStatus, status);
  UpdateInterruptLocked();
}

void RootPort::RequestUnplug(Removed removed) {
  std::shared_ptr<PciDevice> gone;
  {
    std::lock_guard guard(lock_);
    if (!device_) throw VmmError("the slot is empty");
    if (removed_) throw VmmError("the guest is still handling the previous unplug");
    if (PoweredLocked()) {
      removed_ = std::move(removed);
      Put16(kSlotStatus, Get16(kSlotStatus) | kSlotAttentionButtonPressed);
      UpdateInterruptLocked();
      return;
    }
    // Never powered on by the guest: nothing to wait for.
    gone = std::move(device_);
    device_.reset();
    Put16(kSlotStatus, (Get16(kSlotStatus) & ~kSlotPresent) | kSlotPresenceChanged);
    UpdateInterruptLocked();
  }
  Unmap(gone);
  removed(std::move(gone));
}

bool RootPort::occupied() {
  std::lock_guard guard(lock_);
  return device_ != nullptr;
}

bool RootPort::unplug_pending() {
  std::lock_guard guard(lock_);
  return static_cast<bool>(removed_);
}

void RootPort::WriteConfig(uint32_t offset, uint32_t len, uint32_t value) {
  std::shared_ptr<PciDevice> gone;
  Removed removed;
  {
    std::lock_guard guard(lock_);
    uint16_t status = Get16(kSlotStatus);
    bool powered = PoweredLocked();
    config_.Write(offset, len, value);
    Put16(kSlotStatus, status & ~(WrittenTo(kSlotStatus, offset, len, value) & kSlotEvents));
    if (PoweredLocked() != powered) gone = PowerChangedLocked(!powered, &removed);
    if (offset < kRootPortMsiCap + kMsiBytes && offset + len > kRootPortMsiCap) RouteMsiLocked();
    UpdateInterruptLocked();
  }
  if (gone) {
    Unmap(gone);
    removed(std::move(gone));
  }
}

std::shared_ptr<PciDevice> RootPort::PowerChangedLocked(bool on, Removed* removed) {
  uint16_t status = Get16(kSlotStatus);
  std::shared_ptr<PciDevice> gone;
  if (!on && removed_) {
    gone = std::move(device_);
    device_.reset();
    *removed = std::move(removed_);
    removed_ = nullptr;
    status = (status & ~kSlotPresent) | kSlotPresenceChanged;
  }
  uint16_t link = Get16(kLinkStatus);
  bool up = on && device_;
  if (up != ((link & kLinkActive) != 0)) {
    Put16(kLinkStatus, link ^ kLinkActive);
    status |= kSlotLinkChanged;
  }
  Put16(kSlotStatus, status);
  return gone;
}

void RootPort::UpdateInterruptLocked() {
  uint16_t control = Get16(kSlotControl);
  // Slot control bits 0-4 enable status bits 0-4; bit 12 enables bit 8.
  uint16_t enabled = (control & 0x001f) | ((control & kSlotLinkChangeEnable) ? kSlotLinkChanged : 0);
  bool level = (Get16(kMsiControl) & 1) && (control & kSlotHotPlugInterruptEnable) && (Get16(kSlotStatus) & enabled);
  if (level && !asserted_) fire_();
  asserted_ = level;
}

void RootPort::RouteMsiLocked() {
  MsiMessage message{uint64_t{config_.Read(kRootPortMsiCap + 8, 4)} << 32 | config_.Read(kRootPortMsiCap + 4, 4),
                     config_.Read(kRootPortMsiCap + 12, 2)};
  if (message == routed_) return;
  routed_ = message;
  route_(message);
}

void RootPort::ResetFunction() {
  std::shared_ptr<PciDevice> gone, child;
  Removed removed;
  {
    std::lock_guard guard(lock_);
    config_ = power_on_;
    // A reset finishes a pending unplug; a hot-plugged device stays, powered.
    if (removed_) {
      gone = std::move(device_);
      device_.reset();
      removed = std::move(removed_);
      removed_ = nullptr;
    }
    SetSlotLocked(device_ != nullptr);
    asserted_ = false;
    RouteMsiLocked();
    child = device_;
  }
  if (child) child->ResetFunction();
  if (gone) {
    Unmap(gone);
    removed(std::move(gone));
  }
}

void RootPort::SaveFunction(state::ByteWriter& out) {
  std::lock_guard guard(lock_);
  // The board refuses first, naming the device; this keeps a half-unplugged slot out of any file.
  if (removed_) throw VmmError("its slot's device is being unplugged");
  config_.Save(out);
  out.Bool(asserted_);
  out.Bool(device_ != nullptr);
  if (device_) device_->SaveFunction(out);
}

void RootPort::RestoreFunction(state::ByteReader& in) {
  std::lock_guard guard(lock_);
  config_.Restore(in);
  asserted_ = in.Bool();
  bool occupied = in.Bool();
  if (occupied != (device_ != nullptr)) {
    throw state::StateError(in.what() + ": the saved root port's slot " + (occupied ? "holds a device" : "is empty") +
                            ", this one's " + (device_ ? "holds one" : "is empty"));
  }
  if (device_) device_->RestoreFunction(in);
  // KVM's route is the board's: it learns the saved guest's message again.
  routed_ = MsiMessage{};
  RouteMsiLocked();
}

void RootPort::Unmap(const std::shared_ptr<PciDevice>& device) {
  // Its power-on state has memory decoding off: its BARs leave the bus.
  device->ResetFunction();
  if (mmio_ != nullptr) device->UpdateBarMappings(*mmio_);
}

std::shared_ptr<PciDevice> RootPort::Downstream(uint32_t bus, uint32_t devfn) {
  std::lock_guard guard(lock_);
  // A powered-off slot has no link, so nothing answers behind it.
  if (devfn != 0 || bus != config_.Read(kSecondaryBus, 1) || !PoweredLocked()) return nullptr;
  return device_;
}

std::vector<std::shared_ptr<PciDevice>> RootPort::Children() {
  std::lock_guard guard(lock_);
  if (!device_) return {};
  return {device_};
}

}  // namespace virga::pci
