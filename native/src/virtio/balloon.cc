#include "virtio/balloon.h"

#include <cstring>
#include <ctime>
#include <vector>

namespace virga::virtio {

namespace {
constexpr uint64_t kFeatureStatsVq = 1ULL << 1;
constexpr uint64_t kFeatureDeflateOnOom = 1ULL << 2;
constexpr uint64_t kFeaturePageReporting = 1ULL << 5;

// The balloon's unit, whatever the guest's page size (5.5.6).
constexpr uint64_t kPageShift = 12;

struct __attribute__((packed)) StatEntry {
  uint16_t tag;
  uint64_t value;
};
}  // namespace

Balloon::Balloon(const BalloonConfig& config, std::function<void(uint32_t)> on_actual)
    : config_(config), on_actual_(std::move(on_actual)) {}

uint64_t Balloon::features() const {
  uint64_t features = kFeatureVersion1 | kFeatureEventIdx | kFeatureStatsVq;
  if (config_.deflate_on_oom) features |= kFeatureDeflateOnOom;
  if (config_.free_page_reporting) features |= kFeaturePageReporting;
  return features;
}

void Balloon::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_balloon_config: num_pages, actual (le32 each), then
  // free_page_hint_cmd_id and poison_val, unused here.
  uint8_t config[16] = {};
  uint32_t target = target_pages(), actual = actual_pages();
  std::memcpy(config, &target, 4);
  std::memcpy(config + 4, &actual, 4);
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
}

void Balloon::WriteConfig(uint64_t offset, const uint8_t* data, uint32_t len) {
  // Only `actual` is the driver's to write; it writes it whole.
  if (offset != 4 || len != 4) return;
  uint32_t actual;
  std::memcpy(&actual, data, 4);
  if (actual_pages_.exchange(actual, std::memory_order_acq_rel) != actual) on_actual_(actual);
}

void Balloon::Activate(const ActiveQueues& active, uint64_t driver_features) {
  std::lock_guard guard(io_lock_);
  active_ = active;
  driver_features_ = driver_features;
  activated_ = true;
  stats_head_.reset();
}

void Balloon::Reset() {
  std::lock_guard guard(io_lock_);
  activated_ = false;
  stats_head_.reset();
  // A rebooted guest starts with an empty balloon; its pages were never
  // given back to it, but the guest will touch them again as fresh RAM.
  actual_pages_.store(0, std::memory_order_release);
}

uint16_t Balloon::HeldChains(uint16_t queue) const {
  std::lock_guard guard(io_lock_);
  return stats_head_ && queue == stats_queue_ ? 1 : 0;
}

void Balloon::SaveState(state::ByteWriter& out) const {
  out.U32(target_pages());
  out.U32(actual_pages());
}

void Balloon::RestoreState(state::ByteReader& in) {
  target_pages_.store(in.U32());
  actual_pages_.store(in.U32());
}

bool Balloon::driver_ready() const {
  std::lock_guard guard(io_lock_);
  return activated_;
}

Balloon::Role Balloon::RoleOf(uint16_t queue) const {
  // Queues are numbered in order among those the driver negotiated: the
  // stats queue only exists with STATS_VQ, so reporting moves up without it.
  if (queue == 0) return Role::kInflate;
  if (queue == 1) return Role::kDeflate;
  uint16_t next = 2;
  if (driver_features_ & kFeatureStatsVq) {
    if (queue == next) return Role::kStats;
    ++next;
  }
  if ((driver_features_ & kFeaturePageReporting) && queue == next) return Role::kReporting;
  return Role::kNone;
}

void Balloon::ProcessQueue(uint16_t queue) {
  std::lock_guard guard(io_lock_);
  if (!activated_) return;
  Queue& q = (*active_.queues)[queue];
  switch (RoleOf(queue)) {
    case Role::kInflate:
      Inflate(q);
      break;
    case Role::kDeflate: {
      // Nothing to do (no MUST_TELL_HOST): a deflated page is ordinary RAM
      // again, faulted back in when the guest touches it.
      bool used = false;
      while (auto chain = q.Pop(*active_.memory)) {
        q.PushUsed(*active_.memory, chain->head, 0);
        used = true;
      }
      if (used && q.ShouldInterrupt(*active_.memory)) active_.signal_used(queue);
      break;
    }
    case Role::kStats:
      stats_queue_ = queue;
      TakeStats(q);
      break;
    case Role::kReporting:
      Report(q);
      if (q.ShouldInterrupt(*active_.memory)) active_.signal_used(queue);
      break;
    case Role::kNone:
      break;
  }
}

void Balloon::Inflate(Queue& queue) {
  const GuestMemory& memory = *active_.memory;
  bool used = false;
  while (auto chain = queue.Pop(memory)) {
    // An array of le32 page frame numbers; runs of consecutive frames are
    // discarded in one call.
    uint64_t run_start = 0, run_pages = 0;
    auto flush = [&] {
      if (run_pages) memory.Discard(run_start << kPageShift, run_pages << kPageShift);
      run_pages = 0;
    };
    for (const DescriptorSegment& seg : chain->segments) {
      if (seg.device_writable) continue;
      // Read in place: a copy sized by the descriptor's length would let
      // the guest make us allocate up to 4 GiB per buffer.
      const uint8_t* array = memory.Translate(seg.address, seg.length);
      if (array == nullptr) continue;
      for (uint64_t at = 0; at + 4 <= seg.length; at += 4) {
        uint32_t pfn;
        std::memcpy(&pfn, array + at, 4);
        if (run_pages && pfn == run_start + run_pages) {
          ++run_pages;
          continue;
        }
        flush();
        run_start = pfn;
        run_pages = 1;
      }
    }
    flush();
    queue.PushUsed(memory, chain->head, 0);
    used = true;
  }
  if (used && queue.ShouldInterrupt(memory)) active_.signal_used(0);
}

void Balloon::TakeStats(Queue& queue) {
  const GuestMemory& memory = *active_.memory;
  while (auto chain = queue.Pop(memory)) {
    // A driver posts one buffer at a time; an older one still held is
    // returned so the ring never fills with ours.
    if (stats_head_) queue.PushUsed(memory, *stats_head_, 0);
    BalloonStats fresh;
    for (const DescriptorSegment& seg : chain->segments) {
      if (seg.device_writable) continue;
      // In place, as for inflate: never a copy sized by the guest.
      const uint8_t* array = memory.Translate(seg.address, seg.length);
      if (array == nullptr) continue;
      for (uint64_t at = 0; at + sizeof(StatEntry) <= seg.length; at += sizeof(StatEntry)) {
        StatEntry e;
        std::memcpy(&e, array + at, sizeof(e));
        fresh.values[e.tag] = e.value;
      }
    }
    fresh.updated_unix = static_cast<int64_t>(std::time(nullptr));
    // The driver's first buffer, posted at probe, carries no figures yet.
    if (!fresh.values.empty()) stats_ = std::move(fresh);
    stats_head_ = chain->head;
  }
}

void Balloon::RequestStats() {
  std::lock_guard guard(io_lock_);
  if (!activated_ || !stats_head_) return;
  Queue& queue = (*active_.queues)[stats_queue_];
  queue.PushUsed(*active_.memory, *stats_head_, 0);
  stats_head_.reset();
  active_.signal_used(stats_queue_);
}

BalloonStats Balloon::Stats() const {
  std::lock_guard guard(io_lock_);
  return stats_;
}

void Balloon::Report(Queue& queue) {
  // Free page reporting: each buffer is a run of free guest memory the
  // host may drop until the guest allocates it again.
  const GuestMemory& memory = *active_.memory;
  while (auto chain = queue.Pop(memory)) {
    for (const DescriptorSegment& seg : chain->segments) memory.Discard(seg.address, seg.length);
    queue.PushUsed(memory, chain->head, 0);
  }
}

}  // namespace virga::virtio
