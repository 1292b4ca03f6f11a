// Guest writes that KVM queued in its coalesced ring instead of exiting.
// Every queued write is replayed to its bus before any exit is handled, so
// devices see the same sequence of accesses as without queueing, only later.
// Only zones whose writes have no urgent effect are queued (the UART's
// transmit register): a port whose write the guest then waits on must exit.
//
// A guest may queue writes and then go idle with no exit to follow, so a
// timer replays the queue: every 20 ms while the guest keeps exiting (a
// UART driver reads LSR or IIR before it writes, so bytes follow exits),
// backing off to once a second when it does not (an idle VM costs one
// wakeup a second; bytes written with no exit near them wait up to that).
// A device whose guest driver waits on an interrupt that follows queued
// writes (the UART's THR-empty, in interrupt-driven output) asks for a
// replay 250 us on instead: else each FIFO's worth would wait for a tick.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "common/fd.h"
#include "devices/bus.h"

namespace virga {

class CoalescedWrites {
 public:
  static constexpr long kActiveTickNs = 20'000'000;
  static constexpr long kIdleTickNs = 1'000'000'000;
  static constexpr long kSoonNs = 250'000;

  // ring: the page KVM maps at KVM_COALESCED_MMIO_PAGE_OFFSET of a vCPU fd.
  CoalescedWrites(void* ring, size_t page_size, const Bus* pio, const Bus* mmio);

  bool pending() const;
  // Replays every queued write in order; safe from any thread.
  void Drain();
  // vCPU threads, after each exit: queued writes may follow it.
  void NoteExit();
  // Any thread: replay within kSoonNs (a guest waits on what follows).
  void DrainSoon();
  // The timer fd for the I/O loop, and what to do when it fires.
  int timer_fd() const { return timer_.get(); }
  void OnTimer();

 private:
  void Arm(long ns);

  uint8_t* ring_;
  uint32_t capacity_;
  const Bus* pio_;
  const Bus* mmio_;
  std::mutex lock_;
  UniqueFd timer_;
  // Guards arming, so a tick or an exit never pushes back a DrainSoon.
  std::mutex arm_lock_;
  bool soon_armed_ = false;
  std::atomic<bool> ticking_fast_{true};
  std::atomic<uint64_t> exits_{0};
  // I/O thread only:
  uint64_t exits_at_last_tick_ = 0;
  long tick_ns_ = kActiveTickNs;
};

}  // namespace virga
