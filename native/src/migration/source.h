// The source side of live migration (docs/migration.md), on a thread of its
// own so the VM and QMP run on while it works: all of RAM, then rounds of
// the pages dirtied meanwhile until the rest fits the downtime limit (or
// the round limit is reached) and, within the limit, until it is at most
// 1 MiB or stops halving, then a pause, the last pages and the state.
// Cancel or any failure leaves the guest running here, resumed if it had
// been paused for the final copy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/json.h"
#include "migration/channel.h"
#include "vm/machine.h"

namespace virga::migration {

struct Parameters {
  uint64_t downtime_limit_ms = 50;  // QMP.md's default
  uint64_t max_bandwidth = 0;       // bytes per second; 0: as fast as the link goes
  uint32_t max_rounds = 30;         // dirty rounds after the first full pass
};

class Source {
 public:
  // `notify` gets each status change: "active", "paused" (the final copy
  // began), "resumed" (a failure after pausing), and the end: "completed",
  // "failed" or "cancelled" with the reason.
  using Notify = std::function<void(const std::string& status, const std::string& error)>;

  Source(Machine& machine, std::string uri, Parameters parameters, std::string vmm_version, Notify notify);
  ~Source();

  void Cancel();
  bool finished() const { return finished_.load(); }
  // QEMU's query-migrate statistics so far.
  Json Info() const;

 private:
  void Run();
  void Migrate();
  void Pace(uint64_t bytes);
  uint64_t CollectDirty(std::vector<std::vector<uint64_t>>* bitmaps);

  Machine& machine_;
  const std::string uri_;
  const Parameters parameters_;
  const std::string vmm_version_;
  Notify notify_;
  std::unique_ptr<Channel> channel_;
  std::mutex channel_lock_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finished_{false};
  bool paused_for_copy_ = false;  // the thread's own
  std::thread thread_;

  // Statistics (read by Info from the main thread).
  mutable std::mutex stats_lock_;
  std::chrono::steady_clock::time_point started_;
  std::string status_ = "setup";
  uint64_t total_ms_ = 0, setup_ms_ = 0, downtime_ms_ = 0, expected_downtime_ms_ = 0;
  uint64_t transferred_ = 0, remaining_ = 0, normal_ = 0, duplicate_ = 0, rounds_ = 0;
  double mbps_ = 0, dirty_rate_ = 0;
  std::string converged_by_;
  // Where the time went (ms), for query-migrate's x-virga-phases: the full
  // pass, the dirty rounds, and the downtime's parts (pausing the guest,
  // its last pages, saving and sending its state, the destination's
  // confirmation).
  uint64_t bulk_ms_ = 0, rounds_ms_ = 0, pause_ms_ = 0, last_pages_ms_ = 0, state_ms_ = 0, confirm_ms_ = 0;
  uint64_t paced_bytes_ = 0;
  std::chrono::steady_clock::time_point paced_since_;
};

}  // namespace virga::migration
