#include "virtio/transport.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"

namespace virga::virtio {

Transport::Transport(std::shared_ptr<VirtioDevice> device, const GuestMemory* memory)
    : device_(std::move(device)), memory_(memory) {
  for (uint16_t i = 0; i < device_->queue_count(); ++i) {
    queues_.emplace_back(device_->queue_max_size());
    UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd.valid()) throw ErrnoError("eventfd for virtqueue");
    notify_fds_.push_back(std::move(fd));
  }
}

uint32_t Transport::DeviceFeatureWord() const {
  uint64_t features = device_->features();
  return device_features_sel_ == 0   ? static_cast<uint32_t>(features)
         : device_features_sel_ == 1 ? static_cast<uint32_t>(features >> 32)
                                     : 0;
}

void Transport::WriteDriverFeatureWord(uint32_t value) {
  if (status_ & kStatusFeaturesOk) return;
  if (driver_features_sel_ == 0) SetLow(&driver_features_, value);
  if (driver_features_sel_ == 1) SetHigh(&driver_features_, value);
}

Queue* Transport::SelectedQueue() { return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr; }

Queue* Transport::WritableQueue() {
  // Queue layout may change only before the driver says DRIVER_OK.
  return status_ & kStatusDriverOk ? nullptr : SelectedQueue();
}

ActiveQueues Transport::MakeActiveQueues() {
  return ActiveQueues{memory_, &queues_, [this](uint16_t queue) { RaiseInterrupt(kInterruptUsedBuffer, queue); },
                      [this] { RaiseInterrupt(kInterruptConfigChange, 0); }};
}

void Transport::SetStatus(uint32_t status) {
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
    device_->Activate(MakeActiveQueues(), driver_features_);
    activated_.store(true, std::memory_order_release);
    return;
  }
  status_ = status;
}

void Transport::ResetLocked() {
  // The device stops first (waiting for a request in flight on its I/O
  // thread), so nothing touches the queues while they are cleared.
  activated_.store(false, std::memory_order_release);
  device_->Reset();
  for (auto& queue : queues_) queue.Reset();
  status_ = 0;
  driver_features_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  interrupt_status_.store(0, std::memory_order_release);
  ResetRegistersLocked();
}

void Transport::RaiseInterrupt(uint32_t bits, uint16_t queue) {
  // The status bit is visible before the interrupt that makes the guest read it.
  interrupt_status_.fetch_or(bits, std::memory_order_acq_rel);
  Deliver(bits, queue);
}

void Transport::NotifyFromGuest(uint32_t queue) {
  if (queue >= notify_fds_.size()) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(notify_fds_[queue].get(), &one, sizeof(one));
}

void Transport::OnNotify(uint16_t queue) {
  // Queue setup is frozen from DRIVER_OK until a reset, and a reset waits
  // for the device to stop, so reading it here without lock_ is safe.
  if (!activated_.load(std::memory_order_acquire) || queue >= queues_.size() || !queues_[queue].ready()) return;
  device_->ProcessQueue(queue);
}

void Transport::ServeNotifications(EventLoop& loop) {
  for (uint16_t q = 0; q < notify_fds_.size(); ++q) {
    int fd = notify_fds_[q].get();
    loop.Add(fd, EPOLLIN, [this, fd, q](uint32_t) {
      uint64_t count;
      // Drain the eventfd; one pass over the queue serves every notification.
      [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof(count));
      OnNotify(q);
    });
  }
}

void Transport::Reset() {
  std::lock_guard guard(lock_);
  ResetLocked();
}

void Transport::SignalConfigChange() {
  std::lock_guard guard(lock_);
  config_generation_.fetch_add(1, std::memory_order_acq_rel);
  if (status_ & kStatusDriverOk) RaiseInterrupt(kInterruptConfigChange, 0);
}

void Transport::SaveState(state::ByteWriter& out) {
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

void Transport::RestoreState(state::ByteReader& in) {
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
    device_->Activate(MakeActiveQueues(), driver_features_);
    activated_.store(true);
  }
  device_->RestoreState(in);
}

void Transport::KickQueues() {
  if (!activated_.load()) return;
  uint64_t one = 1;
  for (const auto& fd : notify_fds_) [[maybe_unused]] ssize_t n = ::write(fd.get(), &one, sizeof(one));
}

}  // namespace virga::virtio
