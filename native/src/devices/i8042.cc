#include "devices/i8042.h"

namespace virga {

namespace {
constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusCommand = 0x08;

constexpr uint8_t kCmdReadControl = 0x20;
constexpr uint8_t kCmdWriteControl = 0x60;
constexpr uint8_t kCmdDisableAux = 0xa7;
constexpr uint8_t kCmdEnableAux = 0xa8;
constexpr uint8_t kCmdTestAux = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdTestKbd = 0xab;
constexpr uint8_t kCmdDisableKbd = 0xad;
constexpr uint8_t kCmdEnableKbd = 0xae;
constexpr uint8_t kCmdAuxLoop = 0xd3;
constexpr uint8_t kCmdWriteAux = 0xd4;
constexpr uint8_t kCmdPulseReset = 0xfe;

constexpr uint8_t kCtrKbdInt = 0x01;
constexpr uint8_t kCtrKbdDisable = 0x10;
constexpr uint8_t kCtrAuxDisable = 0x20;

constexpr uint8_t kKbdAck = 0xfa;
constexpr uint8_t kKbdGetId = 0xf2;
constexpr uint8_t kKbdEcho = 0xee;
constexpr uint8_t kKbdReset = 0xff;
constexpr uint8_t kKbdSelfTestPassed = 0xaa;
constexpr uint8_t kSelfTestPassed = 0x55;
}  // namespace

void I8042::Output(std::initializer_list<uint8_t> bytes) {
  bool was_empty = output_.empty();
  output_.insert(output_.end(), bytes);
  if (was_empty && (control_ & kCtrKbdInt)) keyboard_irq_->Trigger();
}

void I8042::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard guard(lock_);
  uint8_t value = 0;
  if (offset == 0) {
    if (!output_.empty()) {
      value = output_.front();
      output_.pop_front();
      // One byte per interrupt, as the hardware delivers them.
      if (!output_.empty() && (control_ & kCtrKbdInt)) keyboard_irq_->Trigger();
    }
  } else if (offset == 4) {
    value = static_cast<uint8_t>(kStatusSystemFlag | (output_.empty() ? 0 : kStatusOutputFull) |
                                 (pending_command_ ? kStatusCommand : 0));
  }
  data[0] = value;
  for (uint32_t i = 1; i < len; ++i) data[i] = 0;
}

void I8042::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (len == 0) return;
  bool reset = false;
  {
    std::lock_guard guard(lock_);
    if (offset == 4) {
      if (data[0] == kCmdPulseReset) {
        reset = true;
      } else {
        Command(data[0]);
      }
    } else if (offset == 0) {
      Data(data[0]);
    }
  }
  if (reset) on_reset_({ExitKind::kGuestReset, "i8042 reset line"});
}

void I8042::Command(uint8_t command) {
  switch (command) {
    case kCmdReadControl:
      // Controller replies are polled by drivers: no interrupt.
      output_.push_back(control_);
      break;
    case kCmdWriteControl:
    case kCmdWriteAux:
    case kCmdAuxLoop:
      pending_command_ = command;
      break;
    case kCmdSelfTest:
      output_.push_back(kSelfTestPassed);
      break;
    case kCmdTestKbd:
      output_.push_back(0x00);
      break;
    case kCmdTestAux:
      output_.push_back(0xff);  // no auxiliary port
      break;
    case kCmdDisableAux:
      control_ |= kCtrAuxDisable;
      break;
    case kCmdEnableAux:
      control_ &= ~kCtrAuxDisable;
      break;
    case kCmdDisableKbd:
      control_ |= kCtrKbdDisable;
      break;
    case kCmdEnableKbd:
      control_ &= ~kCtrKbdDisable;
      break;
    default:
      break;
  }
}

void I8042::Data(uint8_t value) {
  uint8_t command = pending_command_;
  pending_command_ = 0;
  if (command == kCmdWriteControl) {
    control_ = value;
  } else if (command == kCmdWriteAux || command == kCmdAuxLoop) {
    // Nothing behind the aux port answers, so drivers conclude there is no mouse.
  } else if (value == kKbdReset) {
    Output({kKbdAck, kKbdSelfTestPassed});
  } else if (value == kKbdGetId) {
    Output({kKbdAck, 0xab, 0x83});  // MF2 keyboard
  } else if (value == kKbdEcho) {
    Output({kKbdEcho});
  } else {
    Output({kKbdAck});
  }
}

void I8042::SaveState(state::ByteWriter& out) {
  std::lock_guard guard(lock_);
  out.ByteVector(std::vector<uint8_t>(output_.begin(), output_.end()));
  out.U8(control_);
  out.U8(pending_command_);
}

void I8042::RestoreState(state::ByteReader& in) {
  std::lock_guard guard(lock_);
  std::vector<uint8_t> output = in.ByteVector();
  output_.assign(output.begin(), output.end());
  control_ = in.U8();
  pending_command_ = in.U8();
}

}  // namespace virga
