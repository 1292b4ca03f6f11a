// virtio-pci, modern (virtio 1.x, 4.1 "Virtio Over PCI Bus"): a PCI
// function 1af4:(1040 + device id), revision 1, with vendor capabilities
// that place the common configuration, the ISR, the device configuration
// and the notify registers in memory BAR 0, a window onto the BARs through
// configuration space (VIRTIO_PCI_CAP_PCI_CFG, for firmware drivers), and
// MSI-X (its table and PBA in BAR 1) for interrupts: a vector per queue and one for configuration
// changes, as the driver assigns them; INTx (pin A, level-triggered) for a
// driver that does not enable MSI-X. Status, features, queues and
// the device itself are virtio/transport.h's, shared with virtio-mmio.
//
// Queue q's notify register is at BAR 0 + kNotifyOffset + q * 4; the board
// makes each an ioeventfd and moves it with the BAR (SetNotifyMoved).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "devices/pci/device.h"
#include "devices/pci/msix.h"
#include "memory/guest_memory.h"
#include "virtio/transport.h"

namespace virga::virtio {

class PciTransport : public pci::PciDevice, public Transport {
 public:
  static constexpr uint16_t kVendorId = 0x1af4;
  static constexpr uint16_t kDeviceIdBase = 0x1040;
  static constexpr int kRegistersBar = 0;
  static constexpr uint64_t kRegistersBarSize = 0x4000;
  static constexpr uint64_t kCommonOffset = 0x0000;
  static constexpr uint64_t kCommonSize = 0x38;
  static constexpr uint64_t kIsrOffset = 0x1000;
  static constexpr uint64_t kDeviceConfigOffset = 0x2000;
  static constexpr uint64_t kDeviceConfigSize = 0x1000;
  static constexpr uint64_t kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyMultiplier = 4;
  static constexpr int kMsixBar = 1;
  static constexpr uint64_t kMsixBarSize = 0x1000;
  static constexpr uint32_t kMsixPbaOffset = 0x800;
  static constexpr uint16_t kNoVector = 0xffff;

  // Where the notify registers start now (0: not mapped), on each move.
  using NotifyMoved = std::function<void(uint64_t from, uint64_t to)>;

  // `route` and `fire` deliver MSI-X vectors (pci::Msix); there are
  // vectors_for(device) of them.
  PciTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, pci::Msix::Route route,
               pci::Msix::Fire fire);
  static uint16_t VectorsFor(const VirtioDevice& device) { return static_cast<uint16_t>(device.queue_count() + 1); }

  uint32_t ReadConfig(uint32_t offset, uint32_t len) override;
  void WriteConfig(uint32_t offset, uint32_t len, uint32_t value) override;
  void ResetFunction() override;
  // The configuration space, MSI-X (table, pending bits), the vectors the
  // driver assigned, then virtio/transport.h's state.
  void SaveFunction(state::ByteWriter& out) override;
  void RestoreFunction(state::ByteReader& in) override;
  // Set before the guest runs.
  void SetNotifyMoved(NotifyMoved moved) { notify_moved_ = std::move(moved); }
  // INTx (pin A): `assert` raises the function's level-triggered line; set
  // before the guest runs. Used while MSI-X is off: the line stays up
  // until the driver reads the ISR, which clears it (4.1.4.5).
  void SetIntx(std::function<void()> assert_line) { intx_ = std::move(assert_line); }
  // The line should be up: an interrupt is pending in the ISR, MSI-X is off
  // and the command register allows INTx (the board asks at each EOI).
  bool IntxPending();

  // BAR 0 and BAR 1 as the guest reads and writes them (offsets within each).
  void ReadRegisters(uint64_t offset, uint8_t* data, uint32_t len);
  void WriteRegisters(uint64_t offset, const uint8_t* data, uint32_t len);
  pci::Msix& msix() { return msix_; }

 protected:
  void BarMoved(int index, uint64_t from, uint64_t to) override;

 private:
  void Deliver(uint32_t bits, uint16_t queue) override;
  void ResetRegistersLocked() override;
  void AddCapabilities();
  // The common configuration structure as it reads now.
  void ReadCommon(uint64_t offset, uint8_t* data, uint32_t len);
  void WriteCommon(uint64_t offset, uint64_t value, uint32_t len);
  uint16_t CheckedVector(uint64_t value) const;
  // An access of the configuration-access capability's data field: the
  // BAR access its window describes, or nothing (false) for another one.
  bool CfgWindow(uint32_t offset, uint32_t len, bool write, uint32_t* value);

  uint32_t cfg_window_ = 0;  // the VIRTIO_PCI_CAP_PCI_CFG capability's offset

  pci::Msix msix_;
  NotifyMoved notify_moved_;
  std::function<void()> intx_;
  // Read by the I/O thread raising an interrupt, written by the driver.
  std::atomic<uint16_t> config_vector_{kNoVector};
  std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
};

}  // namespace virga::virtio
