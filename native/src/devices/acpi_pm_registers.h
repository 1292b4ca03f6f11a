// The fixed registers a hardware-reduced ACPI platform exposes through the
// FADT: sleep control (SLP_EN with SLP_TYP 5 = S5 powers off), sleep status,
// and the reset register. Three consecutive I/O ports from 0x600.
#pragma once

#include "devices/bus.h"
#include "vm/exit_reason.h"

namespace virga {

class AcpiPmRegisters : public BusDevice {
 public:
  static constexpr uint64_t kSize = 3;

  explicit AcpiPmRegisters(ExitRequest on_exit) : on_exit_(std::move(on_exit)) {}

  void Read(uint64_t, uint8_t* data, uint32_t len) override {
    // Sleep status reads 0: the machine never wakes from S5, it ends.
    for (uint32_t i = 0; i < len; ++i) data[i] = 0;
  }

  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override {
    if (len == 0) return;
    constexpr uint8_t kSlpEn = 1 << 5;
    constexpr uint8_t kSlpTypS5 = 5;
    constexpr uint64_t kSleepControl = 0;
    constexpr uint64_t kReset = 2;
    uint8_t value = data[0];
    if (offset == kSleepControl && (value & kSlpEn) && ((value >> 2) & 0x7) == kSlpTypS5) {
      on_exit_({ExitKind::kGuestShutdown, "ACPI sleep control: S5"});
    } else if (offset == kReset && value == 0x1) {
      on_exit_({ExitKind::kGuestReset, "ACPI reset register"});
    }
  }

 private:
  ExitRequest on_exit_;
};

}  // namespace virga
