#include "virtio/mmio_transport.h"

#include <cstring>

namespace virga::virtio {

namespace {
constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVersion = 2;
constexpr uint32_t kVendorId = 0x56524741;  // "VRGA"

constexpr uint64_t kRegMagic = 0x000;
constexpr uint64_t kRegVersion = 0x004;
constexpr uint64_t kRegDeviceId = 0x008;
constexpr uint64_t kRegVendorId = 0x00c;
constexpr uint64_t kRegDeviceFeatures = 0x010;
constexpr uint64_t kRegDeviceFeaturesSel = 0x014;
constexpr uint64_t kRegDriverFeatures = 0x020;
constexpr uint64_t kRegDriverFeaturesSel = 0x024;
constexpr uint64_t kRegQueueSel = 0x030;
constexpr uint64_t kRegQueueNumMax = 0x034;
constexpr uint64_t kRegQueueNum = 0x038;
constexpr uint64_t kRegQueueReady = 0x044;
constexpr uint64_t kRegInterruptStatus = 0x060;
constexpr uint64_t kRegInterruptAck = 0x064;
constexpr uint64_t kRegStatus = 0x070;
constexpr uint64_t kRegQueueDescLow = 0x080;
constexpr uint64_t kRegQueueDescHigh = 0x084;
constexpr uint64_t kRegQueueDriverLow = 0x090;
constexpr uint64_t kRegQueueDriverHigh = 0x094;
constexpr uint64_t kRegQueueDeviceLow = 0x0a0;
constexpr uint64_t kRegQueueDeviceHigh = 0x0a4;
constexpr uint64_t kRegConfigGeneration = 0x0fc;
constexpr uint64_t kRegConfig = 0x100;
}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, const IrqLine* irq)
    : Transport(std::move(device), memory),
      line_([irq] { irq->Trigger(); }, [this] { return interrupt_status() != 0; }) {}

void MmioTransport::Deliver(uint32_t, uint16_t) { line_.Raise(); }

// The status is clear after a reset; whatever KVM still holds up falls at
// the next EOI, and the next interrupt asserts the line afresh.
void MmioTransport::ResetRegistersLocked() { line_.Lowered(); }

void MmioTransport::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  if (offset == kRegInterruptStatus && len == 4) {
    uint32_t value = interrupt_status();
    std::memcpy(data, &value, 4);
    return;
  }
  std::lock_guard guard(lock_);
  if (offset >= kRegConfig) {
    device_->ReadConfig(offset - kRegConfig, data, len);
    return;
  }
  // Registers are 32-bit; other access sizes read as zero (spec 4.2.2.2).
  uint32_t value = len == 4 ? ReadRegister(offset) : 0;
  std::memcpy(data, &value, len < 4 ? len : 4);
}

void MmioTransport::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (offset < kRegConfig && len == 4) {
    uint32_t value;
    std::memcpy(&value, data, 4);
    if (offset == kQueueNotifyOffset) {
      // Not matched by an ioeventfd (KVM without them, or a queue index
      // beyond the device's): hand it to the I/O thread the same way.
      NotifyFromGuest(value);
      return;
    }
    if (offset == kRegInterruptAck) {
      AcknowledgeInterrupt(value);
      return;
    }
  }
  std::lock_guard guard(lock_);
  if (offset >= kRegConfig) {
    device_->WriteConfig(offset - kRegConfig, data, len);
    return;
  }
  if (len != 4) return;
  uint32_t value;
  std::memcpy(&value, data, 4);
  WriteRegister(offset, value);
}

uint32_t MmioTransport::ReadRegister(uint64_t offset) {
  Queue* queue = SelectedQueue();
  switch (offset) {
    case kRegMagic:
      return kMagic;
    case kRegVersion:
      return kVersion;
    case kRegDeviceId:
      return device_->device_id();
    case kRegVendorId:
      return kVendorId;
    case kRegDeviceFeatures:
      return DeviceFeatureWord();
    case kRegQueueNumMax:
      return queue ? queue->max_size() : 0;
    case kRegQueueReady:
      return queue && queue->ready() ? 1 : 0;
    case kRegInterruptStatus:
      return interrupt_status();
    case kRegStatus:
      return status_;
    case kRegConfigGeneration:
      return config_generation();
    default:
      return 0;
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  Queue* queue = WritableQueue();
  switch (offset) {
    case kRegDeviceFeaturesSel:
      device_features_sel_ = value;
      break;
    case kRegDriverFeatures:
      WriteDriverFeatureWord(value);
      break;
    case kRegDriverFeaturesSel:
      driver_features_sel_ = value;
      break;
    case kRegQueueSel:
      queue_sel_ = value;
      break;
    case kRegQueueNum:
      if (queue) queue->set_size(static_cast<uint16_t>(value));
      break;
    case kRegQueueReady:
      if (queue) queue->set_ready(value == 1);
      break;
    case kRegStatus:
      SetStatus(value);
      break;
    case kRegQueueDescLow:
      if (queue) SetLow(&queue->desc_table, value);
      break;
    case kRegQueueDescHigh:
      if (queue) SetHigh(&queue->desc_table, value);
      break;
    case kRegQueueDriverLow:
      if (queue) SetLow(&queue->avail_ring, value);
      break;
    case kRegQueueDriverHigh:
      if (queue) SetHigh(&queue->avail_ring, value);
      break;
    case kRegQueueDeviceLow:
      if (queue) SetLow(&queue->used_ring, value);
      break;
    case kRegQueueDeviceHigh:
      if (queue) SetHigh(&queue->used_ring, value);
      break;
    default:
      break;
  }
}

}  // namespace virga::virtio
