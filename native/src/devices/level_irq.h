// A level-triggered interrupt line for a device whose interrupt status
// the driver reads and acknowledges (virtio-mmio): up while the status
// holds something, as QEMU's virtio-mmio line is. KVM keeps the line
// (an irqfd with a resample fd) up from the first assertion until the
// guest's EOI of the IOAPIC pin, then lowers it and signals the resample
// fd; a signal while it is up costs nothing, because the guest has not
// yet finished the interrupt that will read the status. At the EOI the
// line comes up again if the status still holds something.
//
// The line cannot be lowered from here when the driver acknowledges the
// status; it falls at the EOI that follows, which a level-triggered pin
// needs anyway before it can interrupt again.
#pragma once

#include <functional>
#include <mutex>
#include <utility>

namespace virga {

class LevelIrq {
 public:
  // `assert_line` raises the line (writes the irqfd); `pending` says
  // whether the device's interrupt status holds something now.
  LevelIrq(std::function<void()> assert_line, std::function<bool()> pending)
      : assert_(std::move(assert_line)), pending_(std::move(pending)) {}

  // The status just gained bits: up, unless it is already.
  void Raise() {
    std::lock_guard guard(lock_);
    if (up_) return;
    up_ = true;
    assert_();
  }

  // The line is down in KVM: the guest ended the interrupt (the resample
  // fd fired), or KVM's view is new (a restored irqchip, a reset). Up
  // again if the status still holds something. Read under the lock, so a
  // Raise that found the line up is never lost: its bits were set before
  // it looked, and are seen here.
  void Lowered() {
    std::lock_guard guard(lock_);
    up_ = pending_();
    if (up_) assert_();
  }

 private:
  const std::function<void()> assert_;
  const std::function<bool()> pending_;
  std::mutex lock_;
  bool up_ = false;
};

}  // namespace virga
