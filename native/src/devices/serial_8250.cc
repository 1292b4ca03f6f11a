#include "devices/serial_8250.h"

namespace virga {

namespace {

// Register offsets (DLAB=0 unless noted).
constexpr uint64_t kRbrThr = 0;  // DLL with DLAB
constexpr uint64_t kIer = 1;     // DLM with DLAB
constexpr uint64_t kIirFcr = 2;
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRdi = 0x01;
constexpr uint8_t kIerThri = 0x02;
constexpr uint8_t kIirNoInt = 0x01;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirRdi = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTxIdle = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMsrDcdDsrCts = 0xb0;

// The 16550A's receive FIFO. Input beyond it waits in the backend (pipe,
// pty, socket), so nothing is lost when the guest is slow or not listening.
constexpr size_t kRxFifoSize = 16;

}  // namespace

Serial8250::Serial8250(Chardev* chardev, const IrqLine* irq) : chardev_(chardev), irq_(irq) {}

void Serial8250::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard guard(lock_);
  data[0] = ReadRegister(offset);
  for (uint32_t i = 1; i < len; ++i) data[i] = 0;
  UpdateInterrupt();
}

void Serial8250::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (len == 0) return;
  std::lock_guard guard(lock_);
  WriteRegister(offset, data[0]);
  UpdateInterrupt();
}

uint8_t Serial8250::ModemStatus() const {
  if (!(mcr_ & kMcrLoop)) return kMsrDcdDsrCts;
  // Loopback: outputs feed inputs (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD);
  // Linux's UART probe checks exactly this.
  return static_cast<uint8_t>(((mcr_ & 0x02) << 3) | ((mcr_ & 0x01) << 5) | ((mcr_ & 0x04) << 4) |
                              ((mcr_ & 0x08) << 4));
}

uint8_t Serial8250::InterruptId() const {
  uint8_t fifo = (fcr_ & kFcrEnable) ? kIirFifoEnabled : 0;
  if ((ier_ & kIerRdi) && !rx_.empty()) return fifo | kIirRdi;
  if ((ier_ & kIerThri) && thr_empty_pending_) return fifo | kIirThri;
  return fifo | kIirNoInt;
}

void Serial8250::UpdateInterrupt() {
  // The line is edge-triggered through the IOAPIC: raise it on each new
  // reason to interrupt, not on every register access.
  bool asserted = !(InterruptId() & kIirNoInt) && (mcr_ & 0x08);
  if (asserted && !line_asserted_) irq_->Trigger();
  line_asserted_ = asserted;
}

uint8_t Serial8250::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kRbrThr: {
      if (lcr_ & kLcrDlab) return dll_;
      if (rx_.empty()) return 0;
      uint8_t byte = rx_.front();
      rx_.pop_front();
      if (input_refused_ && rx_.size() < RxCapacity()) {
        input_refused_ = false;
        chardev_->ResumeInput();
      }
      // Next byte pending: let the guest take another interrupt.
      if (!rx_.empty()) line_asserted_ = false;
      return byte;
    }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIirFcr: {
      uint8_t iir = InterruptId();
      // Reading IIR acknowledges a THR-empty interrupt.
      if ((iir & 0x0f) == kIirThri) thr_empty_pending_ = false;
      if ((ier_ & kIerThri) && transmit_waiter_) transmit_waiter_();
      return iir;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return static_cast<uint8_t>((rx_.empty() ? 0 : kLsrDataReady) |
                                  (tx_.empty() ? kLsrThrEmpty | kLsrTxIdle : 0));
    case kMsr:
      return ModemStatus();
    case kScr:
      return scr_;
    default:
      return 0;
  }
}

void Serial8250::WriteRegister(uint64_t offset, uint8_t value) {
  switch (offset) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return;
      }
      if (mcr_ & kMcrLoop) {
        if (rx_.size() < kRxFifoSize) rx_.push_back(value);
      } else if (!tx_.empty()) {
        // A guest that ignores THRE overruns the FIFO and loses the byte, as on hardware.
        if (tx_.size() < kRxFifoSize) tx_.push_back(value);
        return;
      } else if (chardev_->Write(&value, 1) == 0) {
        tx_.push_back(value);
        chardev_->RequestWritable();
        return;
      }
      // Sent: the holding register is empty again at once.
      thr_empty_pending_ = true;
      line_asserted_ = false;
      return;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Enabling THRI while the holder is empty interrupts at once, as on hardware.
      if (!(ier_ & kIerThri) && (value & kIerThri)) thr_empty_pending_ = true;
      if (!(ier_ & kIerRdi) && (value & kIerRdi) && input_refused_) {
        input_refused_ = false;
        chardev_->ResumeInput();
      }
      ier_ = value & 0x0f;
      line_asserted_ = false;
      return;
    case kIirFcr:
      fcr_ = value;
      if (value & kFcrClearRx) rx_.clear();
      if (input_refused_ && rx_.size() < RxCapacity()) {
        input_refused_ = false;
        chardev_->ResumeInput();
      }
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1f;
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;
  }
}

void Serial8250::HoldBackend(bool held) {
  std::lock_guard guard(lock_);
  held_ = held;
  if (held) return;
  if (input_refused_ && rx_.size() < RxCapacity()) {
    input_refused_ = false;
    chardev_->ResumeInput();
  }
  if (!tx_.empty()) chardev_->RequestWritable();
}

void Serial8250::FlushTransmitter() {
  std::lock_guard guard(lock_);
  if (held_) return;  // HoldBackend(false) asks for another chance
  while (!tx_.empty()) {
    uint8_t byte = tx_.front();
    if (chardev_->Write(&byte, 1) == 0) {
      chardev_->RequestWritable();
      return;
    }
    tx_.pop_front();
  }
  thr_empty_pending_ = true;
  line_asserted_ = false;
  UpdateInterrupt();
}

size_t Serial8250::RxCapacity() const { return (fcr_ & kFcrEnable) ? kRxFifoSize : 1; }

size_t Serial8250::ReceiveInput(const uint8_t* data, size_t len) {
  std::lock_guard guard(lock_);
  // Until the driver has enabled the receive interrupt it is not listening
  // (and will clear the FIFO when it initialises the port): keep input
  // in the backend rather than drop it.
  size_t capacity = (ier_ & kIerRdi) && !held_ ? RxCapacity() : 0;
  size_t room = rx_.size() < capacity ? capacity - rx_.size() : 0;
  if (data == nullptr) {
    if (room == 0) input_refused_ = true;
    return room;
  }
  size_t take = len < room ? len : room;
  bool was_empty = rx_.empty();
  rx_.insert(rx_.end(), data, data + take);
  if (was_empty) line_asserted_ = false;
  UpdateInterrupt();
  return take;
}

void Serial8250::SaveState(state::ByteWriter& out) {
  std::lock_guard guard(lock_);
  for (uint8_t r : {ier_, lcr_, mcr_, scr_, fcr_, dll_, dlm_}) out.U8(r);
  out.Bool(thr_empty_pending_);
  out.Bool(line_asserted_);
  out.ByteVector(std::vector<uint8_t>(rx_.begin(), rx_.end()));
  out.ByteVector(std::vector<uint8_t>(tx_.begin(), tx_.end()));
}

void Serial8250::RestoreState(state::ByteReader& in) {
  std::lock_guard guard(lock_);
  for (uint8_t* r : {&ier_, &lcr_, &mcr_, &scr_, &fcr_, &dll_, &dlm_}) *r = in.U8();
  thr_empty_pending_ = in.Bool();
  line_asserted_ = in.Bool();
  std::vector<uint8_t> rx = in.ByteVector(), tx = in.ByteVector();
  if (rx.size() > kRxFifoSize) throw state::StateError(in.what() + ": receive FIFO over its size");
  rx_.assign(rx.begin(), rx.end());
  tx_.assign(tx.begin(), tx.end());
  // No edge is raised again: one not yet taken is pending in the saved
  // IOAPIC and LAPIC state.
}

}  // namespace virga
