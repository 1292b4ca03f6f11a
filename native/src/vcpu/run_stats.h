// What one vCPU's run loop has done: how often KVM_RUN returned and why, and
// where the thread's time went (inside KVM_RUN: the guest and the kernel's
// in-kernel exit handling, halts included; outside: this process handling
// exits). Written by the vCPU thread only, read from any thread (QMP
// query-stats, the -D log): each field is a relaxed atomic, a reader gets
// each value whole. Time inside KVM_RUN also counts the run in progress (an
// idle vCPU halts in the kernel for seconds), so the run total and the entry
// time are read together under a sequence count: never counted twice.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace virga {

struct RunStatsSnapshot {
  uint64_t exits = 0;
  uint64_t io_exits = 0;
  uint64_t mmio_exits = 0;
  // KVM_RUN interrupted by a signal: pause, stop, a kick.
  uint64_t signal_exits = 0;
  uint64_t run_ns = 0;
  uint64_t exit_handling_ns = 0;
  // CLOCK_MONOTONIC of the first entry into the guest; 0 before it.
  uint64_t first_entry_ns = 0;
};

class RunStats {
 public:
  static uint64_t NowNs() {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
  }

  // Around each KVM_RUN: returns the entry time to pass to Returned.
  uint64_t Entering() {
    uint64_t now = NowNs();
    if (returned_at_ != 0) {
      Add(exit_handling_ns_, now - returned_at_);
    } else if (first_entry_ns_.load(std::memory_order_relaxed) == 0) {
      first_entry_ns_.store(now, std::memory_order_relaxed);
    }
    entered_at_.store(now, std::memory_order_relaxed);
    return now;
  }
  void Returned(uint64_t entered_at) {
    sequence_.store(sequence_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    // The run ends inside the odd section, so a reader that read the clock
    // after this sees the section and retries.
    returned_at_ = NowNs();
    Add(run_ns_, returned_at_ - entered_at);
    entered_at_.store(0, std::memory_order_relaxed);
    sequence_.store(sequence_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    Add(exits_, 1);
  }
  // Waiting while paused is neither guest time nor exit handling.
  void Parked() { returned_at_ = 0; }

  void CountIo() { Add(io_exits_, 1); }
  void CountMmio() { Add(mmio_exits_, 1); }
  void CountSignal() { Add(signal_exits_, 1); }

  RunStatsSnapshot Read() const {
    RunStatsSnapshot s;
    s.exits = exits_.load(std::memory_order_relaxed);
    s.io_exits = io_exits_.load(std::memory_order_relaxed);
    s.mmio_exits = mmio_exits_.load(std::memory_order_relaxed);
    s.signal_exits = signal_exits_.load(std::memory_order_relaxed);
    s.run_ns = RunNs();
    // The clock can be read out of order with the sequence check, so a live
    // estimate may run a few nanoseconds past the total the run then ends
    // with; no reader is shown less than an earlier one was.
    uint64_t shown = run_ns_shown_.load(std::memory_order_relaxed);
    while (shown < s.run_ns && !run_ns_shown_.compare_exchange_weak(shown, s.run_ns, std::memory_order_relaxed)) {
    }
    if (shown > s.run_ns) s.run_ns = shown;
    s.exit_handling_ns = exit_handling_ns_.load(std::memory_order_relaxed);
    s.first_entry_ns = first_entry_ns_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  uint64_t RunNs() const {
    for (;;) {
      uint64_t before = sequence_.load(std::memory_order_acquire);
      uint64_t run = run_ns_.load(std::memory_order_relaxed);
      uint64_t entered = entered_at_.load(std::memory_order_relaxed);
      uint64_t now = entered == 0 ? 0 : NowNs();
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((before & 1) == 0 && sequence_.load(std::memory_order_relaxed) == before) {
        return entered == 0 || now < entered ? run : run + (now - entered);
      }
    }
  }

  // One writer: a plain load and store, no locked read-modify-write per exit.
  static void Add(std::atomic<uint64_t>& field, uint64_t amount) {
    field.store(field.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
  }

  std::atomic<uint64_t> exits_{0};
  std::atomic<uint64_t> io_exits_{0};
  std::atomic<uint64_t> mmio_exits_{0};
  std::atomic<uint64_t> signal_exits_{0};
  std::atomic<uint64_t> run_ns_{0};
  std::atomic<uint64_t> exit_handling_ns_{0};
  std::atomic<uint64_t> first_entry_ns_{0};
  // Odd while run_ns_ and entered_at_ change together.
  std::atomic<uint64_t> sequence_{0};
  // When the run in progress began; 0 outside KVM_RUN.
  std::atomic<uint64_t> entered_at_{0};
  // Readers only: the largest run time any reader was given.
  mutable std::atomic<uint64_t> run_ns_shown_{0};
  // vCPU thread only: when KVM_RUN last returned, 0 while parked.
  uint64_t returned_at_ = 0;
};

}  // namespace virga
