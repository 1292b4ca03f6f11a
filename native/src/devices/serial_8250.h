// 16550A-compatible UART at COM1 (0x3f8, IRQ 4), what `console=ttyS0` drives.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "chardev/chardev.h"
#include "devices/bus.h"
#include "devices/irq.h"
#include "state/byte_stream.h"

namespace virga {

class Serial8250 : public BusDevice {
 public:
  Serial8250(Chardev* chardev, const IrqLine* irq);

  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

  // Input from the backend (I/O thread). With data == nullptr, returns the room left.
  size_t ReceiveInput(const uint8_t* data, size_t len);
  // The backend can take output again: send what the transmitter holds.
  void FlushTransmitter();
  // While held (the VM is paused) the backend neither delivers input nor
  // takes queued output, so the UART's state holds still; both resume on
  // release.
  void HoldBackend(bool held);
  // Registers and both FIFOs (docs/snapshots.md); the VM is paused.
  void SaveState(state::ByteWriter& out);
  void RestoreState(state::ByteReader& in);
  // Called (under the device's lock) when the guest reads IIR with the
  // THR-empty interrupt enabled: its driver is about to write a FIFO's
  // worth and wait for the next such interrupt, which can only follow
  // once those writes reach this device.
  void SetTransmitWaiter(std::function<void()> waiter) { transmit_waiter_ = std::move(waiter); }

 private:
  uint8_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint8_t value);
  uint8_t InterruptId() const;
  void UpdateInterrupt();
  uint8_t ModemStatus() const;
  size_t RxCapacity() const;

  Chardev* chardev_;
  const IrqLine* irq_;
  std::mutex lock_;

  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = 0x08;  // OUT2: PCs gate the UART's interrupt with it
  uint8_t scr_ = 0;
  uint8_t fcr_ = 0;
  uint8_t dll_ = 0x0c;  // 9600 baud divisor
  uint8_t dlm_ = 0;
  bool thr_empty_pending_ = false;
  bool line_asserted_ = false;
  std::deque<uint8_t> rx_;
  // Bytes the backend could not take yet; while any wait, the transmitter
  // reads busy (no THRE) and the guest holds further output.
  std::deque<uint8_t> tx_;
  bool input_refused_ = false;
  bool held_ = false;
  std::function<void()> transmit_waiter_;
};

}  // namespace virga
