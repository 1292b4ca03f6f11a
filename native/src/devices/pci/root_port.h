// A PCIe root port (`-device pcie-root-port`): a type 1 (PCI-to-PCI
// bridge) function on pcie.0 whose secondary bus has one hot-plug slot,
// device 00.0. It forwards configuration cycles for its secondary bus to
// that device; memory needs no forwarding here (every BAR is on the one
// flat MMIO bus), but the memory window the VMM programs tells the guest
// where the device behind it may put its BARs.
//
// Native PCIe hot-plug (PCIe base spec, 6.7): the slot has an attention
// button, a power controller, power and attention indicators, presence
// detection and data-link-layer-active reporting, and no command-completed
// events (so the guest does not wait for them). Slot events interrupt by
// MSI, one vector, on the rising edge of "hot-plug interrupts enabled and
// an enabled event is pending". Every register lives in the configuration
// space bytes (a save of configuration space covers them); the port's
// other state is the device in the slot, whether its unplug is pending,
// and where that edge stands. A save holds the device in the slot after
// the port's own state; an unplug pending cannot be saved.
//
// Plugging: the slot shows presence and a presence change, and its
// attention button is pressed; the guest powers the slot on, the link
// comes up, and the device appears on the secondary bus. Unplugging: the attention button is pressed; once the
// guest powers the slot off, the device leaves and `removed` runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "devices/bus.h"
#include "devices/pci/device.h"
#include "devices/pci/msix.h"

namespace virga::pci {

constexpr uint8_t kCapabilityPcie = 0x10;
// Red Hat's PCIe root port ids (QEMU's pcie-root-port), class 0604 (PCI bridge).
constexpr PciId kRootPortId{0x1b36, 0x000c, 0x060400};

// Type 1 header registers.
constexpr uint32_t kPrimaryBus = 0x18;
constexpr uint32_t kSecondaryBus = 0x19;
constexpr uint32_t kSubordinateBus = 0x1a;
constexpr uint32_t kMemoryBase = 0x20;
constexpr uint32_t kMemoryLimit = 0x22;
constexpr uint32_t kBridgeControl = 0x3e;

// The root port's capabilities, where it puts them.
constexpr uint32_t kRootPortPcieCap = 0x40;
constexpr uint32_t kRootPortMsiCap = 0x7c;
// PCI Express capability registers (offsets inside the capability).
constexpr uint32_t kPcieLinkStatus = 0x12;
constexpr uint32_t kPcieSlotCapabilities = 0x14;
constexpr uint32_t kPcieSlotControl = 0x18;
constexpr uint32_t kPcieSlotStatus = 0x1a;

// Slot control bits.
constexpr uint16_t kSlotHotPlugInterruptEnable = 0x0020;
constexpr uint16_t kSlotPowerIndicatorMask = 0x0300;
constexpr uint16_t kSlotPowerIndicatorOn = 0x0100;
constexpr uint16_t kSlotPowerIndicatorOff = 0x0300;
constexpr uint16_t kSlotAttentionIndicatorOff = 0x00c0;
constexpr uint16_t kSlotPowerOff = 0x0400;
constexpr uint16_t kSlotLinkChangeEnable = 0x1000;
// Slot status bits.
constexpr uint16_t kSlotAttentionButtonPressed = 0x0001;
constexpr uint16_t kSlotPresenceChanged = 0x0008;
constexpr uint16_t kSlotPresent = 0x0040;
constexpr uint16_t kSlotLinkChanged = 0x0100;
// Link status: data link layer link active.
constexpr uint16_t kLinkActive = 0x2000;

class RootPort : public PciDevice {
 public:
  struct Options {
    uint8_t port = 0;           // port=: the link's port number, also the slot's number
    uint8_t secondary_bus = 0;  // the bus number behind it, as firmware would assign
    uint32_t window_base = 0;   // its memory window (1 MiB aligned)
    uint32_t window_size = 0;
  };
  using Route = std::function<void(const MsiMessage& message)>;
  using Fire = std::function<void()>;
  using Removed = std::function<void(std::shared_ptr<PciDevice> device)>;

  // `mmio`: where the device behind it has its BARs mapped (a device that
  // leaves is unmapped there). `route` learns the MSI message the guest
  // programs, `fire` raises it.
  RootPort(const Options& options, Bus* mmio, Route route, Fire fire);

  // Before the guest runs: the device is present, powered and its link up.
  // Throws when the slot is occupied.
  void ColdPlug(std::shared_ptr<PciDevice> device);
  // A running guest's slot: presence changes, the guest powers it on.
  // Throws when the slot is occupied or still being emptied.
  void HotPlug(std::shared_ptr<PciDevice> device);
  // Presses the attention button; `removed` runs once the guest has
  // powered the slot off (at once when it is off already). Throws when the
  // slot is empty or an unplug is already pending.
  void RequestUnplug(Removed removed);
  bool occupied();
  bool unplug_pending();

  void WriteConfig(uint32_t offset, uint32_t len, uint32_t value) override;
  void ResetFunction() override;
  // The configuration space, the interrupt edge, then the function in the
  // slot (its own state), if any. A restore expects a slot filled as the
  // saved one was (the board put the same device there from its command
  // line) and routes the saved MSI message again.
  void SaveFunction(state::ByteWriter& out) override;
  void RestoreFunction(state::ByteReader& in) override;
  std::shared_ptr<PciDevice> Downstream(uint32_t bus, uint32_t devfn) override;
  std::vector<std::shared_ptr<PciDevice>> Children() override;

 private:
  uint16_t Get16(uint32_t offset) const { return static_cast<uint16_t>(config_.Read(offset, 2)); }
  void Put16(uint32_t offset, uint16_t value) { config_.Set(offset, 2, value); }
  bool PoweredLocked() const;
  // Presence, power, indicators and link as they are with `device_` in it
  // (or not), powered when occupied: power-on and reset state.
  void SetSlotLocked(bool occupied);
  // The slot's power controller changed: the link follows, and a device
  // whose unplug is pending leaves (returned for the caller to unmap).
  std::shared_ptr<PciDevice> PowerChangedLocked(bool on, Removed* removed);
  // Sends the MSI on a rising edge of the hot-plug interrupt condition.
  void UpdateInterruptLocked();
  void RouteMsiLocked();
  void Unmap(const std::shared_ptr<PciDevice>& device);

  Bus* mmio_;
  Route route_;
  Fire fire_;
  std::shared_ptr<PciDevice> device_;
  Removed removed_;  // set while an unplug is pending
  bool asserted_ = false;
  MsiMessage routed_;
};

}  // namespace virga::pci
