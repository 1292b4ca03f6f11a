// Just enough of the PC keyboard controller (ports 0x60/0x64) for Linux to
// probe it quickly and for `reboot=k` (command 0xfe pulses CPU reset): a
// keyboard that acknowledges commands (with IRQ 1, since Linux waits for
// keyboard replies by interrupt) and no auxiliary (mouse) device.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>

#include "devices/bus.h"
#include "devices/irq.h"
#include "state/byte_stream.h"
#include "vm/exit_reason.h"

namespace virga {

class I8042 : public BusDevice {
 public:
  static constexpr uint16_t kDataPort = 0x60;
  static constexpr uint16_t kCommandPort = 0x64;

  I8042(ExitRequest on_reset, const IrqLine* keyboard_irq)
      : on_reset_(std::move(on_reset)), keyboard_irq_(keyboard_irq) {}

  // `offset` is relative to port 0x60: 0 = data, 4 = status/command.
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;
  void SaveState(state::ByteWriter& out);
  void RestoreState(state::ByteReader& in);

 private:
  void Command(uint8_t command);
  void Data(uint8_t value);
  void Output(std::initializer_list<uint8_t> bytes);

  ExitRequest on_reset_;
  const IrqLine* keyboard_irq_;
  std::mutex lock_;
  std::deque<uint8_t> output_;
  uint8_t control_ = 0x47;  // kbd int, sys flag, translate (what firmware leaves)
  uint8_t pending_command_ = 0;
};

}  // namespace virga
