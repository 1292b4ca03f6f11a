#include "devices/rtc_cmos.h"

namespace virga {

namespace {
constexpr uint8_t kSeconds = 0x00;
constexpr uint8_t kMinutes = 0x02;
constexpr uint8_t kHours = 0x04;
constexpr uint8_t kWeekday = 0x06;
constexpr uint8_t kDayOfMonth = 0x07;
constexpr uint8_t kMonth = 0x08;
constexpr uint8_t kYear = 0x09;
constexpr uint8_t kStatusA = 0x0a;
constexpr uint8_t kStatusB = 0x0b;
constexpr uint8_t kStatusC = 0x0c;
constexpr uint8_t kStatusD = 0x0d;
constexpr uint8_t kCentury = 0x32;

constexpr uint8_t kStatusBBinary = 0x04;
constexpr uint8_t kStatusB24Hour = 0x02;
constexpr uint8_t kStatusDValidRam = 0x80;
constexpr uint8_t kStatusAUpdateInProgress = 0x80;
}  // namespace

void RtcCmos::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard guard(lock_);
  data[0] = offset == 1 ? ReadRegister(index_) : index_;
  for (uint32_t i = 1; i < len; ++i) data[i] = 0;
}

void RtcCmos::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (len == 0) return;
  std::lock_guard guard(lock_);
  if (offset == 0) {
    index_ = data[0] & 0x7f;
  } else if (offset == 1) {
    WriteRegister(index_, data[0]);
  }
}

uint8_t RtcCmos::Encode(int value) const {
  if (status_b_ & kStatusBBinary) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

int RtcCmos::Decode(uint8_t value) const {
  if (status_b_ & kStatusBBinary) return value;
  return (value >> 4) * 10 + (value & 0x0f);
}

struct tm RtcCmos::GuestTime() const {
  time_t now = ::time(nullptr) + offset_seconds_;
  struct tm t {};
  ::gmtime_r(&now, &t);
  return t;
}

uint8_t RtcCmos::ReadRegister(uint8_t index) {
  struct tm t = GuestTime();
  switch (index) {
    case kSeconds:
      return Encode(t.tm_sec);
    case kMinutes:
      return Encode(t.tm_min);
    case kHours:
      if (status_b_ & kStatusB24Hour) return Encode(t.tm_hour);
      // 12-hour mode: bit 7 marks PM.
      return static_cast<uint8_t>(Encode(t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12) | (t.tm_hour >= 12 ? 0x80 : 0));
    case kWeekday:
      return Encode(t.tm_wday + 1);
    case kDayOfMonth:
      return Encode(t.tm_mday);
    case kMonth:
      return Encode(t.tm_mon + 1);
    case kYear:
      return Encode(t.tm_year % 100);
    case kCentury:
      return Encode((t.tm_year + 1900) / 100);
    case kStatusA:
      // Never "update in progress": the clock is read from the host atomically.
      return status_a_ & ~kStatusAUpdateInProgress;
    case kStatusB:
      return status_b_;
    case kStatusC:
      return 0;  // no alarm, periodic or update interrupts are raised
    case kStatusD:
      return kStatusDValidRam;
    default:
      return nvram_[index & 0x7f];
  }
}

void RtcCmos::WriteRegister(uint8_t index, uint8_t value) {
  struct tm t = GuestTime();
  bool time_changed = true;
  switch (index) {
    case kSeconds:
      t.tm_sec = Decode(value);
      break;
    case kMinutes:
      t.tm_min = Decode(value);
      break;
    case kHours:
      t.tm_hour = Decode(value & 0x7f);
      break;
    case kDayOfMonth:
      t.tm_mday = Decode(value);
      break;
    case kMonth:
      t.tm_mon = Decode(value) - 1;
      break;
    case kYear:
      t.tm_year = (t.tm_year / 100) * 100 + Decode(value);
      break;
    case kStatusA:
      status_a_ = value & 0x7f;
      time_changed = false;
      break;
    case kStatusB:
      status_b_ = value;
      time_changed = false;
      break;
    case kStatusC:
    case kStatusD:
    case kWeekday:
      time_changed = false;
      break;
    default:
      nvram_[index & 0x7f] = value;
      time_changed = false;
      break;
  }
  if (time_changed) offset_seconds_ = ::timegm(&t) - ::time(nullptr);
}

void RtcCmos::SaveState(state::ByteWriter& out) {
  std::lock_guard guard(lock_);
  out.U8(index_);
  out.U8(status_a_);
  out.U8(status_b_);
  out.U64(static_cast<uint64_t>(static_cast<int64_t>(offset_seconds_)));
  out.Bytes(nvram_, sizeof(nvram_));
}

void RtcCmos::RestoreState(state::ByteReader& in) {
  std::lock_guard guard(lock_);
  index_ = in.U8();
  status_a_ = in.U8();
  status_b_ = in.U8();
  offset_seconds_ = static_cast<time_t>(static_cast<int64_t>(in.U64()));
  in.Bytes(nvram_, sizeof(nvram_));
}

}  // namespace virga
