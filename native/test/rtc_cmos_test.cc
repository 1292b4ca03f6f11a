#include "devices/rtc_cmos.h"

#include <ctime>

#include "unit_test.h"

namespace virga {
namespace {

uint8_t ReadCmos(RtcCmos& rtc, uint8_t index) {
  rtc.Write(0, &index, 1);
  uint8_t value = 0;
  rtc.Read(1, &value, 1);
  return value;
}

TEST("rtc_cmos: reports the host's UTC date in BCD and never says update-in-progress") {
  RtcCmos rtc;
  time_t now = ::time(nullptr);
  struct tm t {};
  ::gmtime_r(&now, &t);
  uint8_t year = ReadCmos(rtc, 0x09);
  EXPECT_EQ((year >> 4) * 10 + (year & 0xf), t.tm_year % 100);
  EXPECT_EQ(ReadCmos(rtc, 0x0a) & 0x80, 0);
  EXPECT_EQ(ReadCmos(rtc, 0x0d), 0x80);
}

TEST("rtc_cmos: a time the guest sets is kept as an offset from the host clock") {
  RtcCmos rtc;
  uint8_t index = 0x09, value = 0x99;  // year 99 (BCD)
  rtc.Write(0, &index, 1);
  rtc.Write(1, &value, 1);
  EXPECT_EQ(ReadCmos(rtc, 0x09), 0x99);
}

}  // namespace
}  // namespace virga
