// Virga's ACPI hardware-reduced sleep control register (one I/O port):
// SLP_EN with SLP_TYP 5 (S5) powers the machine off.
#pragma once

#include "devices/bus.h"
#include "vm/exit_reason.h"

namespace virga {

class SleepControl : public BusDevice {
 public:
  explicit SleepControl(ExitRequest on_poweroff) : on_poweroff_(std::move(on_poweroff)) {}

  void Read(uint64_t, uint8_t* data, uint32_t len) override {
    for (uint32_t i = 0; i < len; ++i) data[i] = 0;
  }
  void Write(uint64_t, const uint8_t* data, uint32_t len) override {
    if (len == 0) return;
    constexpr uint8_t kSlpEn = 1 << 5;
    constexpr uint8_t kSlpTypS5 = 5;
    uint8_t value = data[0];
    if ((value & kSlpEn) && ((value >> 2) & 0x7) == kSlpTypS5) on_poweroff_({ExitKind::kGuestShutdown, ""});
  }

 private:
  ExitRequest on_poweroff_;
};

}  // namespace virga
