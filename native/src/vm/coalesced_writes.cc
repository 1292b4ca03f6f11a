#include "vm/coalesced_writes.h"

#include <linux/kvm.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "kvm/flex_array_abi.h"

namespace virga {

namespace {

kvm::CoalescedRingHeader* Header(uint8_t* ring) { return reinterpret_cast<kvm::CoalescedRingHeader*>(ring); }

}  // namespace

CoalescedWrites::CoalescedWrites(void* ring, size_t page_size, const Bus* pio, const Bus* mmio)
    : ring_(static_cast<uint8_t*>(ring)),
      capacity_(static_cast<uint32_t>((page_size - sizeof(kvm::CoalescedRingHeader)) / sizeof(kvm_coalesced_mmio))),
      pio_(pio),
      mmio_(mmio),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
  if (!timer_.valid()) throw ErrnoError("timerfd_create");
  Arm(kActiveTickNs);
}

bool CoalescedWrites::pending() const {
  auto* header = Header(ring_);
  return __atomic_load_n(&header->first, __ATOMIC_RELAXED) != __atomic_load_n(&header->last, __ATOMIC_RELAXED);
}

void CoalescedWrites::Drain() {
  std::lock_guard guard(lock_);
  auto* header = Header(ring_);
  uint32_t first = header->first;
  // KVM fills an entry before it publishes `last`.
  uint32_t last = __atomic_load_n(&header->last, __ATOMIC_ACQUIRE);
  while (first != last) {
    kvm_coalesced_mmio entry;
    std::memcpy(&entry, ring_ + sizeof(kvm::CoalescedRingHeader) + first * sizeof(kvm_coalesced_mmio), sizeof(entry));
    uint32_t len = entry.len > sizeof(entry.data) ? sizeof(entry.data) : entry.len;
    (entry.pio ? pio_ : mmio_)->Write(entry.phys_addr, entry.data, len);
    first = (first + 1) % capacity_;
    // Hand the slot back only after it is read.
    __atomic_store_n(&header->first, first, __ATOMIC_RELEASE);
    if (first == last) last = __atomic_load_n(&header->last, __ATOMIC_ACQUIRE);
  }
}

void CoalescedWrites::NoteExit() {
  exits_.fetch_add(1, std::memory_order_relaxed);
  if (!ticking_fast_.load(std::memory_order_relaxed) && !ticking_fast_.exchange(true)) {
    std::lock_guard guard(arm_lock_);
    if (!soon_armed_) Arm(kActiveTickNs);
  }
}

void CoalescedWrites::DrainSoon() {
  std::lock_guard guard(arm_lock_);
  if (soon_armed_) return;
  soon_armed_ = true;
  ticking_fast_.store(true);
  Arm(kSoonNs);
}

void CoalescedWrites::Arm(long ns) {
  itimerspec once{{0, 0}, {ns / 1'000'000'000, ns % 1'000'000'000}};
  // A failure only delays output to the next exit; nothing to report.
  ::timerfd_settime(timer_.get(), 0, &once, nullptr);
}

void CoalescedWrites::OnTimer() {
  uint64_t expirations;
  [[maybe_unused]] ssize_t n = ::read(timer_.get(), &expirations, sizeof(expirations));
  {
    std::lock_guard guard(arm_lock_);
    soon_armed_ = false;
  }
  if (pending()) Drain();
  uint64_t exits = exits_.load(std::memory_order_relaxed);
  if (exits != exits_at_last_tick_) {
    exits_at_last_tick_ = exits;
    tick_ns_ = kActiveTickNs;
  } else {
    tick_ns_ = std::min(tick_ns_ * 2, kIdleTickNs);
    // From here the next exit re-arms at the fast rate.
    ticking_fast_.store(false);
  }
  std::lock_guard guard(arm_lock_);
  if (!soon_armed_) Arm(tick_ns_);
}

}  // namespace virga
