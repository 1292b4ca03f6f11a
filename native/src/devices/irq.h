// An interrupt line handed to a device: an eventfd the kernel turns into a
// GSI edge (a plain irqfd), or holds up until the guest's EOI (a resample
// irqfd, devices/level_irq.h), so raising it never needs the VM fd or a
// vCPU exit.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "common/error.h"
#include "common/fd.h"

namespace virga {

class IrqLine {
 public:
  explicit IrqLine(uint32_t gsi) : gsi_(gsi), fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!fd_.valid()) throw ErrnoError("eventfd for irq " + std::to_string(gsi));
  }
  uint32_t gsi() const { return gsi_; }
  int fd() const { return fd_.get(); }
  void Trigger() const {
    uint64_t one = 1;
    // A full counter (EAGAIN) already means "pending": nothing is lost.
    [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof(one));
  }

 private:
  uint32_t gsi_;
  UniqueFd fd_;
};

}  // namespace virga
