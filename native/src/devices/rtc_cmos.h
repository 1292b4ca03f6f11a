// MC146818 RTC/CMOS at ports 0x70/0x71. Linux reads wall-clock time from it
// at boot; without one its probe spins on the update-in-progress bit of a
// floating bus (seconds of boot time). Time comes from the host's clock,
// plus whatever offset the guest sets by writing the time registers.
#pragma once

#include <cstdint>
#include <ctime>
#include <mutex>

#include "devices/bus.h"
#include "state/byte_stream.h"

namespace virga {

class RtcCmos : public BusDevice {
 public:
  static constexpr uint16_t kBasePort = 0x70;

  // `offset` 0 = index port (bit 7 masks NMI), 1 = data port.
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;
  // The guest's offset from the host's clock is saved, not the time: a
  // restored guest reads the real time, shifted as it had set it.
  void SaveState(state::ByteWriter& out);
  void RestoreState(state::ByteReader& in);

 private:
  uint8_t ReadRegister(uint8_t index);
  void WriteRegister(uint8_t index, uint8_t value);
  uint8_t Encode(int value) const;
  int Decode(uint8_t value) const;
  struct tm GuestTime() const;

  std::mutex lock_;
  uint8_t index_ = 0;
  uint8_t status_a_ = 0x26;  // 32.768 kHz time base, 1024 Hz periodic rate
  uint8_t status_b_ = 0x02;  // 24-hour mode, BCD
  time_t offset_seconds_ = 0;
  uint8_t nvram_[128] = {};
};

}  // namespace virga
