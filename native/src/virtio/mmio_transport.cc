#include "virtio/mmio_transport.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

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

constexpr uint32_t kStatusDriverOk = 4;
constexpr uint32_t kStatusFeaturesOk = 8;
constexpr uint32_t kStatusNeedsReset = 64;
constexpr uint32_t kInterruptUsedBuffer = 1;
constexpr uint32_t kInterruptConfigChange = 2;

void SetLow(uint64_t* field, uint32_t value) { *field = (*field & ~0xffffffffULL) | value; }
void SetHigh(uint64_t* field, uint32_t value) { *field = (*field & 0xffffffffULL) | (uint64_t{value} << 32); }
}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory, const IrqLine* irq)
    : device_(std::move(device)), memory_(memory), irq_(irq) {
  for (uint16_t i = 0; i < device_->queue_count(); ++i) {
    queues_.emplace_back(device_->queue_max_size());
    UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd.valid()) throw ErrnoError("eventfd for virtqueue");
    notify_fds_.push_back(std::move(fd));
  }
}

void MmioTransport::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  if (offset == kRegInterruptStatus && len == 4) {
    uint32_t value = interrupt_status_.load(std::memory_order_acquire);
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
      if (value < notify_fds_.size()) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(notify_fds_[value].get(), &one, sizeof(one));
      }
      return;
    }
    if (offset == kRegInterruptAck) {
      interrupt_status_.fetch_and(~value, std::memory_order_acq_rel);
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

Queue* MmioTransport::SelectedQueue() { return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr; }

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
      return device_features_sel_ == 0   ? static_cast<uint32_t>(device_->features())
             : device_features_sel_ == 1 ? static_cast<uint32_t>(device_->features() >> 32)
                                         : 0;
    case kRegQueueNumMax:
      return queue ? queue->max_size() : 0;
    case kRegQueueReady:
      return queue && queue->ready() ? 1 : 0;
    case kRegInterruptStatus:
      return interrupt_status_.load(std::memory_order_acquire);
    case kRegStatus:
      return status_;
    case kRegConfigGeneration:
      return config_generation_.load(std::memory_order_acquire);
    default:
      return 0;
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  Queue* queue = SelectedQueue();
  // Queue layout may change only before the driver says DRIVER_OK.
  bool queue_writable = queue != nullptr && !(status_ & kStatusDriverOk);
  switch (offset) {
    case kRegDeviceFeaturesSel:
      device_features_sel_ = value;
      break;
    case kRegDriverFeatures:
      if (status_ & kStatusFeaturesOk) break;
      if (driver_features_sel_ == 0) SetLow(&driver_features_, value);
      if (driver_features_sel_ == 1) SetHigh(&driver_features_, value);
      break;
    case kRegDriverFeaturesSel:
      driver_features_sel_ = value;
      break;
    case kRegQueueSel:
      queue_sel_ = value;
      break;
    case kRegQueueNum:
      if (queue_writable) queue->set_size(static_cast<uint16_t>(value));
      break;
    case kRegQueueReady:
      if (queue_writable) queue->set_ready(value == 1);
      break;
    case kRegStatus:
      SetStatus(value);
      break;
    case kRegQueueDescLow:
      if (queue_writable) SetLow(&queue->desc_table, value);
      break;
    case kRegQueueDescHigh:
      if (queue_writable) SetHigh(&queue->desc_table, value);
      break;
    case kRegQueueDriverLow:
      if (queue_writable) SetLow(&queue->avail_ring, value);
      break;
    case kRegQueueDriverHigh:
      if (queue_writable) SetHigh(&queue->avail_ring, value);
      break;
    case kRegQueueDeviceLow:
      if (queue_writable) SetLow(&queue->used_ring, value);
      break;
    case kRegQueueDeviceHigh:
      if (queue_writable) SetHigh(&queue->used_ring, value);
      break;
    default:
      break;
  }
}

void MmioTransport::SetStatus(uint32_t status) {
  if (status == 0) {
    ResetLocked();
    return;
  }
  if ((status & kStatusFeaturesOk) && !(status_ & kStatusFeaturesOk)) {
    // Refuse a feature set we did not offer, or a driver that is not virtio 1.x.
    bool subset = (driver_features_ & ~device_->features()) == 0;
    if (!subset || !(driver_features_ & kFeatureVersion1)) status &= ~kStatusFeaturesOk;
  }
  if ((status & kStatusDriverOk) && !activated_.load()) {
    for (const auto& queue : queues_) {
      if (queue.ready() && !queue.IsValid(*memory_)) {
        status_ = status | kStatusNeedsReset;
        return;
      }
    }
    status_ = status;
    for (auto& queue : queues_) {
      queue.set_event_idx((driver_features_ & kFeatureEventIdx) != 0);
      queue.set_indirect((driver_features_ & kFeatureIndirectDesc) != 0);
    }
    ActiveQueues active{memory_, &queues_,
                        [this](uint16_t) { RaiseInterrupt(kInterruptUsedBuffer); },
                        [this] { RaiseInterrupt(kInterruptConfigChange); }};
    device_->Activate(active, driver_features_);
    activated_.store(true, std::memory_order_release);
    return;
  }
  status_ = status;
}

void MmioTransport::ResetLocked() {
  // The device stops first (waiting for a request in flight on its I/O
  // thread), so nothing touches the queues while they are cleared.
  activated_.store(false, std::memory_order_release);
  device_->Reset();
  for (auto& queue : queues_) queue.Reset();
  status_ = 0;
  driver_features_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  interrupt_status_.store(0, std::memory_order_release);
}

void MmioTransport::RaiseInterrupt(uint32_t bits) {
  // The status bit is visible before the edge that makes the guest read it.
  interrupt_status_.fetch_or(bits, std::memory_order_acq_rel);
  irq_->Trigger();
}

void MmioTransport::OnNotify(uint16_t queue) {
  // Queue setup is frozen from DRIVER_OK until a reset, and a reset waits
  // for the device to stop, so reading it here without lock_ is safe.
  if (!activated_.load(std::memory_order_acquire) || queue >= queues_.size() || !queues_[queue].ready()) return;
  device_->ProcessQueue(queue);
}

void MmioTransport::Reset() {
  std::lock_guard guard(lock_);
  ResetLocked();
}

void MmioTransport::SignalConfigChange() {
  std::lock_guard guard(lock_);
  config_generation_.fetch_add(1, std::memory_order_acq_rel);
  if (status_ & kStatusDriverOk) RaiseInterrupt(kInterruptConfigChange);
}

void MmioTransport::SaveState(state::ByteWriter& out) {
  std::lock_guard guard(lock_);
  out.U32(device_->device_id());
  out.U32(status_);
  out.U32(device_features_sel_);
  out.U32(driver_features_sel_);
  out.U64(driver_features_);
  out.U32(queue_sel_);
  out.U32(interrupt_status_.load());
  out.U32(config_generation_.load());
  out.Bool(activated_.load());
  out.U32(static_cast<uint32_t>(queues_.size()));
  for (uint16_t q = 0; q < queues_.size(); ++q) {
    queues_[q].SaveState(out, activated_.load() ? device_->HeldChains(q) : 0);
  }
  device_->SaveState(out);
}

void MmioTransport::RestoreState(state::ByteReader& in) {
  std::lock_guard guard(lock_);
  uint32_t id = in.U32();
  if (id != device_->device_id()) {
    throw state::StateError(in.what() + ": holds virtio device type " + std::to_string(id) + ", this slot has type " +
                            std::to_string(device_->device_id()));
  }
  status_ = in.U32();
  device_features_sel_ = in.U32();
  driver_features_sel_ = in.U32();
  driver_features_ = in.U64();
  if (driver_features_ & ~device_->features()) {
    throw state::StateError(in.what() + ": the driver's features are not all offered by this device");
  }
  queue_sel_ = in.U32();
  interrupt_status_.store(in.U32());
  config_generation_.store(in.U32());
  bool activated = in.Bool();
  uint32_t count = in.U32();
  if (count != queues_.size()) {
    throw state::StateError(in.what() + ": " + std::to_string(count) + " queues saved, the device has " +
                            std::to_string(queues_.size()));
  }
  for (auto& queue : queues_) {
    queue.RestoreState(in);
    // Not saved with the queue: it follows from the features the driver accepted.
    queue.set_indirect((driver_features_ & kFeatureIndirectDesc) != 0);
  }
  if (activated) {
    for (const auto& queue : queues_) {
      if (queue.ready() && !queue.IsValid(*memory_)) {
        throw state::StateError(in.what() + ": a queue lies outside guest memory");
      }
    }
    ActiveQueues active{memory_, &queues_,
                        [this](uint16_t) { RaiseInterrupt(kInterruptUsedBuffer); },
                        [this] { RaiseInterrupt(kInterruptConfigChange); }};
    device_->Activate(active, driver_features_);
    activated_.store(true);
  }
  device_->RestoreState(in);
}

void MmioTransport::KickQueues() {
  if (!activated_.load()) return;
  uint64_t one = 1;
  for (const auto& fd : notify_fds_) [[maybe_unused]] ssize_t n = ::write(fd.get(), &one, sizeof(one));
}

}  // namespace virga::virtio
