// A host PCI function passed through to the guest (vfio-pci): the guest
// sees the host's configuration space, except what the VMM must own:
//   - the BARs: the guest programs addresses the VMM chose (the sizing
//     protocol answers the host BAR's size); behind each, a page-sized or
//     larger BAR the kernel lets us mmap is put straight into the guest as
//     a KVM memory slot, and every other access is forwarded to the
//     device with pread/pwrite on its region. I/O BARs and the expansion
//     ROM read as absent;
//   - MSI: its capability is emulated, and enabling it hands VFIO one
//     eventfd per vector (KVM irqfds whose GSI routes are the messages the
//     guest wrote), so the device's interrupts reach the vCPU without the
//     VMM; per-vector masking is not offered;
//   - the capability list skips MSI-X and the extended capabilities are
//     hidden (neither is emulated yet), and the interrupt pin reads 0: no
//     INTx yet, so the guest uses MSI;
//   - the header type's multi-function bit is the guest's slot's.
// A machine reset turns MSI off, clears the device's command register,
// resets the function (VFIO_DEVICE_RESET, when it has a reset) and puts
// the emulated registers back.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "devices/pci/device.h"
#include "devices/pci/msix.h"
#include "devices/pci/vfio_device.h"

namespace virga::pci {


class VfioPciFunction : public PciDevice {
 public:
  struct Hooks {
    // The message MSI vector `vector` delivers (address 0: none): the board
    // makes it the KVM route of that vector's GSI.
    std::function<void(uint16_t vector, const MsiMessage& message)> route;
    // One eventfd per vector (msi_vectors() of them), KVM irqfds on those GSIs.
    std::vector<int> vector_fds;
    // Puts BAR memory at `gpa` into the guest (host != null) or takes it out.
    std::function<void(int bar, uint64_t gpa, uint64_t size, void* host)> map_memory;
  };

  // Reads the function's configuration space and BARs; throws, naming it,
  // when it cannot be passed through (a bridge, or no configuration space).
  explicit VfioPciFunction(std::unique_ptr<VfioDeviceIo> io);
  ~VfioPciFunction() override;

  // How many MSI vectors the guest may enable (0: the function has no MSI).
  uint16_t msi_vectors() const { return msi_vectors_; }
  // Before the guest runs.
  void Connect(Hooks hooks);
  const std::string& host() const { return io_->name(); }
  uint64_t BarSize(int index) {
    std::lock_guard guard(lock_);
    return config_.BarSize(index);
  }

  uint32_t ReadConfig(uint32_t offset, uint32_t len) override;
  void WriteConfig(uint32_t offset, uint32_t len, uint32_t value) override;
  void ResetFunction() override;

 protected:
  void BarMoved(int index, uint64_t from, uint64_t to) override;

 private:
  VfioPciFunction(std::unique_ptr<VfioDeviceIo> io, std::vector<uint8_t> host);
  // Where a configuration byte comes from: the device, emulated_, or the
  // base's config_ (BARs, header type).
  enum Source : uint8_t { kDevice = 0, kEmulated, kOwnConfig };
  void Emulate(uint32_t offset, uint32_t len, uint64_t value, uint64_t writable = 0);
  uint32_t EmulatedValue(uint32_t offset, uint32_t len) const;
  void FindCapabilities(const std::vector<uint8_t>& host);
  void MsiWrittenLocked();
  void MsiOffLocked();

  std::shared_ptr<VfioDeviceIo> io_;  // shared with the BAR windows on the MMIO bus
  Hooks hooks_;
  std::array<uint8_t, kConfigSize> source_{};
  std::array<uint8_t, kConfigSize> emulated_{};
  std::array<uint8_t, kConfigSize> writable_{};
  std::array<uint8_t, kConfigSize> emulated_power_on_{};
  std::array<void*, kBarCount> bar_memory_{};
  uint32_t msi_ = 0;  // the MSI capability's offset (0: none)
  uint32_t msi_length_ = 0;
  bool msi_64bit_ = false;
  uint16_t msi_vectors_ = 0;
  uint16_t msi_enabled_vectors_ = 0;  // as handed to VFIO (0: off)
  std::vector<MsiMessage> msi_routes_;
};

}  // namespace virga::pci
