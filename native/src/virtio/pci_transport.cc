#include "virtio/pci_transport.h"

#include <cstring>
#include <optional>

namespace virga::virtio {

namespace {

constexpr uint8_t kCapabilityVendor = 0x09;
// virtio_pci_cap.cfg_type (4.1.4)
constexpr uint8_t kCapCommon = 1;
constexpr uint8_t kCapNotify = 2;
constexpr uint8_t kCapIsr = 3;
constexpr uint8_t kCapDevice = 4;
constexpr uint8_t kCapPciCfg = 5;
// Fields of the configuration-access capability (4.1.4.9), from its start.
constexpr uint32_t kCfgBar = 4;
constexpr uint32_t kCfgOffset = 8;
constexpr uint32_t kCfgLength = 12;
constexpr uint32_t kCfgData = 16;

// Common configuration fields (4.1.4.3).
constexpr uint64_t kDeviceFeatureSelect = 0x00;
constexpr uint64_t kDeviceFeature = 0x04;
constexpr uint64_t kDriverFeatureSelect = 0x08;
constexpr uint64_t kDriverFeature = 0x0c;
constexpr uint64_t kConfigMsixVector = 0x10;
constexpr uint64_t kNumQueues = 0x12;
constexpr uint64_t kDeviceStatus = 0x14;
constexpr uint64_t kConfigGeneration = 0x15;
constexpr uint64_t kQueueSelect = 0x16;
constexpr uint64_t kQueueSize = 0x18;
constexpr uint64_t kQueueMsixVector = 0x1a;
constexpr uint64_t kQueueEnable = 0x1c;
constexpr uint64_t kQueueNotifyOff = 0x1e;
constexpr uint64_t kQueueDesc = 0x20;
constexpr uint64_t kQueueDriver = 0x28;
constexpr uint64_t kQueueDevice = 0x30;

uint32_t ClassFor(uint32_t device_id) {
  switch (device_id) {
    case kDeviceIdNet: return 0x020000;    // Ethernet controller
    case kDeviceIdBlock: return 0x018000;  // mass storage, other
    default: return 0xff0000;              // unassigned class
  }
}

void Put(std::vector<uint8_t>* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// The body of a virtio_pci_cap after its id and next pointer; `tail`: the
// dword the notify and configuration-access capabilities add.
std::vector<uint8_t> VirtioCap(uint8_t type, uint8_t bar, uint32_t offset, uint32_t length,
                               std::optional<uint32_t> tail = std::nullopt) {
  std::vector<uint8_t> body;
  Put(&body, tail ? 20 : 16, 1);  // cap_len
  Put(&body, type, 1);
  Put(&body, bar, 1);
  Put(&body, 0, 3);  // id, padding
  Put(&body, offset, 4);
  Put(&body, length, 4);
  if (tail) Put(&body, *tail, 4);
  return body;
}

// A BAR's registers, forwarded to the transport.
class BarRegisters : public BusDevice {
 public:
  BarRegisters(PciTransport* transport, bool msix) : transport_(transport), msix_(msix) {}
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override {
    if (!msix_) return transport_->ReadRegisters(offset, data, len);
    if (offset >= PciTransport::kMsixPbaOffset) return transport_->msix().ReadPba(offset - PciTransport::kMsixPbaOffset, data, len);
    transport_->msix().ReadTable(offset, data, len);
  }
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override {
    if (!msix_) return transport_->WriteRegisters(offset, data, len);
    // The PBA is read-only.
    if (offset < PciTransport::kMsixPbaOffset) transport_->msix().WriteTable(offset, data, len);
  }

 private:
  PciTransport* transport_;
  bool msix_;
};

}  // namespace

PciTransport::PciTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, pci::Msix::Route route,
                           pci::Msix::Fire fire)
    : pci::PciDevice(pci::PciId{kVendorId, static_cast<uint16_t>(kDeviceIdBase + device->device_id()),
                                ClassFor(device->device_id()), 1, kVendorId, 0x1100}),
      Transport(device, memory),
      msix_(VectorsFor(*device), std::move(route), std::move(fire)),
      queue_vectors_(new std::atomic<uint16_t>[device->queue_count()]) {
  for (uint16_t q = 0; q < device->queue_count(); ++q) queue_vectors_[q] = kNoVector;
  config_.SetInterruptPin(1);
  AddCapabilities();
  SetBarRegisters(kRegistersBar, std::make_shared<BarRegisters>(this, false));
  SetBarRegisters(kMsixBar, std::make_shared<BarRegisters>(this, true));
}

void PciTransport::AddCapabilities() {
  config_.AddMemoryBar(kRegistersBar, kRegistersBarSize, false, false);
  config_.AddMemoryBar(kMsixBar, kMsixBarSize, false, false);
  config_.AddCapability(kCapabilityVendor, VirtioCap(kCapCommon, kRegistersBar, kCommonOffset, kCommonSize));
  config_.AddCapability(kCapabilityVendor, VirtioCap(kCapIsr, kRegistersBar, kIsrOffset, 1));
  config_.AddCapability(kCapabilityVendor,
                        VirtioCap(kCapDevice, kRegistersBar, kDeviceConfigOffset, kDeviceConfigSize));
  config_.AddCapability(kCapabilityVendor, VirtioCap(kCapNotify, kRegistersBar, kNotifyOffset,
                                                     static_cast<uint32_t>(queues_.size()) * kNotifyMultiplier,
                                                     kNotifyMultiplier));
  // bar, offset and length are the driver's to set; its data field is
  // never stored (CfgWindow turns each access of it into a BAR access).
  std::vector<uint8_t> writable = {0, 0, 0xff, 0, 0, 0};  // cap_len, cfg_type, bar, id, padding
  writable.insert(writable.end(), 8, 0xff);               // offset, length
  cfg_window_ = config_.AddCapability(kCapabilityVendor, VirtioCap(kCapPciCfg, 0, 0, 0, 0), writable);
  msix_.AddCapability(config_, kMsixBar, 0, kMsixPbaOffset);
}

bool PciTransport::CfgWindow(uint32_t offset, uint32_t len, bool write, uint32_t* value) {
  if (offset < cfg_window_ + kCfgData || offset >= cfg_window_ + kCfgData + 4) return false;
  uint32_t bar, at, length;
  {
    std::lock_guard guard(pci::PciDevice::lock_);
    bar = config_.Read(cfg_window_ + kCfgBar, 1);
    at = config_.Read(cfg_window_ + kCfgOffset, 4);
    length = config_.Read(cfg_window_ + kCfgLength, 4);
  }
  // The access is the window's: its width, at its offset (4.1.4.9.1).
  if (offset != cfg_window_ + kCfgData || (length != 1 && length != 2 && length != 4) || len < length) {
    return true;
  }
  uint8_t bytes[4] = {};
  for (uint32_t i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(*value >> (8 * i));
  if (bar == kRegistersBar && at < kRegistersBarSize) {
    write ? WriteRegisters(at, bytes, length) : ReadRegisters(at, bytes, length);
  } else if (bar == kMsixBar && at < kMsixPbaOffset) {
    write ? msix_.WriteTable(at, bytes, length) : msix_.ReadTable(at, bytes, length);
  } else if (bar == kMsixBar && at < kMsixBarSize && !write) {
    msix_.ReadPba(at - kMsixPbaOffset, bytes, length);
  }
  if (!write) {
    *value = 0;
    for (uint32_t i = 0; i < length; ++i) *value |= static_cast<uint32_t>(bytes[i]) << (8 * i);
  }
  return true;
}

uint32_t PciTransport::ReadConfig(uint32_t offset, uint32_t len) {
  uint32_t value = 0;
  if (CfgWindow(offset, len, false, &value)) return value;
  return pci::PciDevice::ReadConfig(offset, len);
}

void PciTransport::WriteConfig(uint32_t offset, uint32_t len, uint32_t value) {
  if (CfgWindow(offset, len, true, &value)) return;
  std::lock_guard guard(pci::PciDevice::lock_);
  config_.Write(offset, len, value);
  msix_.ConfigWritten(config_);
}

void PciTransport::ResetFunction() {
  Transport::Reset();
  msix_.Reset();
  pci::PciDevice::ResetFunction();
}

void PciTransport::SaveFunction(state::ByteWriter& out) {
  {
    std::lock_guard guard(pci::PciDevice::lock_);
    config_.Save(out);
  }
  msix_.Save(out);
  out.U16(config_vector_.load());
  for (uint16_t q = 0; q < queues_.size(); ++q) out.U16(queue_vectors_[q].load());
  Transport::SaveState(out);
}

void PciTransport::RestoreFunction(state::ByteReader& in) {
  {
    std::lock_guard guard(pci::PciDevice::lock_);
    config_.Restore(in);
    msix_.Restore(in, config_);
  }
  config_vector_ = CheckedVector(in.U16());
  for (uint16_t q = 0; q < queues_.size(); ++q) queue_vectors_[q] = CheckedVector(in.U16());
  Transport::RestoreState(in);
}

void PciTransport::BarMoved(int index, uint64_t from, uint64_t to) {
  if (index != kRegistersBar || !notify_moved_) return;
  notify_moved_(from == 0 ? 0 : from + kNotifyOffset, to == 0 ? 0 : to + kNotifyOffset);
}

uint16_t PciTransport::CheckedVector(uint64_t value) const {
  // A vector the function does not have is refused the way 4.1.5.1.2 says: it reads back as NO_VECTOR.
  return value < VectorsFor(*device_) ? static_cast<uint16_t>(value) : kNoVector;
}

void PciTransport::Deliver(uint32_t bits, uint16_t queue) {
  if (!msix_.enabled()) {
    // The ISR bits are set already: the line goes up and stays up until the driver reads them.
    if (intx_ && IntxPending()) intx_();
    return;
  }
  uint16_t vector = bits & kInterruptConfigChange ? config_vector_.load(std::memory_order_acquire)
                                                   : queue_vectors_[queue].load(std::memory_order_acquire);
  msix_.Signal(vector);
}

bool PciTransport::IntxPending() {
  if (interrupt_status() == 0 || msix_.enabled()) return false;
  std::lock_guard guard(pci::PciDevice::lock_);
  return !config_.IntxDisabled();
}

void PciTransport::ResetRegistersLocked() {
  config_vector_ = kNoVector;
  for (uint16_t q = 0; q < queues_.size(); ++q) queue_vectors_[q] = kNoVector;
}

void PciTransport::ReadRegisters(uint64_t offset, uint8_t* data, uint32_t len) {
  std::memset(data, 0, len);
  if (offset >= kIsrOffset && offset < kIsrOffset + 4) {
    // Reading the ISR acknowledges it (4.1.4.5).
    uint32_t isr = offset == kIsrOffset ? TakeInterruptStatus() : 0;
    std::memcpy(data, &isr, len < 4 ? len : 4);
    return;
  }
  std::lock_guard guard(Transport::lock_);
  if (offset < kCommonOffset + kCommonSize) {
    ReadCommon(offset - kCommonOffset, data, len);
  } else if (offset >= kDeviceConfigOffset && offset < kDeviceConfigOffset + kDeviceConfigSize) {
    device_->ReadConfig(offset - kDeviceConfigOffset, data, len);
  }
}

void PciTransport::WriteRegisters(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (offset >= kNotifyOffset && offset < kNotifyOffset + queues_.size() * kNotifyMultiplier) {
    // Not matched by an ioeventfd (a write of another width): the same eventfd.
    NotifyFromGuest(static_cast<uint32_t>((offset - kNotifyOffset) / kNotifyMultiplier));
    return;
  }
  std::lock_guard guard(Transport::lock_);
  if (offset < kCommonOffset + kCommonSize && len <= 8) {
    uint64_t value = 0;
    std::memcpy(&value, data, len);
    WriteCommon(offset - kCommonOffset, value, len);
  } else if (offset >= kDeviceConfigOffset && offset < kDeviceConfigOffset + kDeviceConfigSize) {
    device_->WriteConfig(offset - kDeviceConfigOffset, data, len);
  }
}

void PciTransport::ReadCommon(uint64_t offset, uint8_t* data, uint32_t len) {
  uint8_t image[kCommonSize] = {};
  auto put = [&image](uint64_t at, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) image[at + i] = static_cast<uint8_t>(value >> (8 * i));
  };
  Queue* queue = SelectedQueue();
  put(kDeviceFeatureSelect, device_features_sel_, 4);
  put(kDeviceFeature, DeviceFeatureWord(), 4);
  put(kDriverFeatureSelect, driver_features_sel_, 4);
  put(kDriverFeature,
      driver_features_sel_ == 0 ? static_cast<uint32_t>(driver_features_)
      : driver_features_sel_ == 1 ? static_cast<uint32_t>(driver_features_ >> 32)
                                  : 0,
      4);
  put(kConfigMsixVector, config_vector_.load(), 2);
  put(kNumQueues, queues_.size(), 2);
  put(kDeviceStatus, status_, 1);
  put(kConfigGeneration, config_generation(), 1);
  put(kQueueSelect, queue_sel_, 2);
  if (queue != nullptr) {
    put(kQueueSize, queue->size(), 2);
    put(kQueueMsixVector, queue_vectors_[queue_sel_].load(), 2);
    put(kQueueEnable, queue->ready() ? 1 : 0, 2);
    put(kQueueNotifyOff, queue_sel_, 2);
    put(kQueueDesc, queue->desc_table, 8);
    put(kQueueDriver, queue->avail_ring, 8);
    put(kQueueDevice, queue->used_ring, 8);
  } else {
    put(kQueueMsixVector, kNoVector, 2);
  }
  if (offset + len <= kCommonSize) std::memcpy(data, image + offset, len);
}

void PciTransport::WriteCommon(uint64_t offset, uint64_t value, uint32_t len) {
  Queue* queue = WritableQueue();
  auto u32 = static_cast<uint32_t>(value);
  // A 64-bit queue address, whole or as two 32-bit halves.
  auto address = [&](uint64_t base, uint64_t* field) {
    if (offset == base && len == 8) *field = value;
    else if (offset == base && len == 4) SetLow(field, u32);
    else if (offset == base + 4 && len == 4) SetHigh(field, u32);
  };
  if (offset >= kQueueDesc) {
    if (queue == nullptr) return;
    uint64_t base = offset < kQueueDriver ? kQueueDesc : offset < kQueueDevice ? kQueueDriver : kQueueDevice;
    address(base, base == kQueueDesc ? &queue->desc_table : base == kQueueDriver ? &queue->avail_ring : &queue->used_ring);
    return;
  }
  switch (offset) {
    case kDeviceFeatureSelect:
      if (len == 4) device_features_sel_ = u32;
      break;
    case kDriverFeatureSelect:
      if (len == 4) driver_features_sel_ = u32;
      break;
    case kDriverFeature:
      if (len == 4) WriteDriverFeatureWord(u32);
      break;
    case kConfigMsixVector:
      if (len == 2) config_vector_ = CheckedVector(value);
      break;
    case kDeviceStatus:
      if (len == 1) SetStatus(u32 & 0xff);
      break;
    case kQueueSelect:
      if (len == 2) queue_sel_ = u32;
      break;
    case kQueueSize:
      if (len == 2 && queue) queue->set_size(static_cast<uint16_t>(value));
      break;
    case kQueueMsixVector:
      if (len == 2 && queue) queue_vectors_[queue_sel_] = CheckedVector(value);
      break;
    case kQueueEnable:
      // The driver only ever enables a queue; a reset disables them all (4.1.4.3.2).
      if (len == 2 && queue && value == 1) queue->set_ready(true);
      break;
    default:
      break;
  }
}

}  // namespace virga::virtio
