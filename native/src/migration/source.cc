#include "migration/source.h"

#include "common/error.h"
#include "migration/pages.h"

namespace virga::migration {

namespace {
using Clock = std::chrono::steady_clock;

// A rest this small (1 MiB) goes in the downtime rather than another round.
constexpr uint64_t kFewPages = 256;

uint64_t Ms(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
std::string Text(const std::vector<uint8_t>& payload) { return std::string(payload.begin(), payload.end()); }
}  // namespace

Source::Source(Machine& machine, std::string uri, Parameters parameters, std::string vmm_version, Notify notify)
    : machine_(machine),
      uri_(std::move(uri)),
      parameters_(parameters),
      vmm_version_(std::move(vmm_version)),
      notify_(std::move(notify)),
      started_(Clock::now()) {
  thread_ = std::thread([this] { Run(); });
}

Source::~Source() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

void Source::Cancel() {
  if (finished_.load()) return;
  cancelled_.store(true);
  std::lock_guard guard(channel_lock_);
  if (channel_) channel_->Abort();
}

Json Source::Info() const {
  std::lock_guard guard(stats_lock_);
  bool running = status_ == "setup" || status_ == "active" || status_ == "device";
  Json::Object ram{{"transferred", Json(transferred_)},
                   {"remaining", Json(remaining_)},
                   {"total", Json(machine_.memory().size())},
                   {"duplicate", Json(duplicate_)},
                   {"normal", Json(normal_)},
                   {"normal-bytes", Json(normal_ * kPageSize)},
                   {"dirty-pages-rate", Json(static_cast<uint64_t>(dirty_rate_))},
                   {"mbps", Json(mbps_)},
                   {"dirty-sync-count", Json(rounds_)}};
  Json::Object out{{"status", Json(status_)},
                   {"total-time", Json(running ? Ms(Clock::now() - started_) : total_ms_)},
                   {"setup-time", Json(setup_ms_)},
                   {"expected-downtime", Json(expected_downtime_ms_)},
                   {"ram", Json(std::move(ram))}};
  if (status_ == "completed") out["downtime"] = Json(downtime_ms_);
  if (!converged_by_.empty()) out["x-virga-converged-by"] = Json(converged_by_);
  out["x-virga-phases"] = Json(Json::Object{{"bulk", Json(bulk_ms_)},
                                            {"rounds", Json(rounds_ms_)},
                                            {"pause", Json(pause_ms_)},
                                            {"last-pages", Json(last_pages_ms_)},
                                            {"state", Json(state_ms_)},
                                            {"confirm", Json(confirm_ms_)}});
  return Json(std::move(out));
}

void Source::Pace(uint64_t bytes) {
  {
    std::lock_guard guard(stats_lock_);
    transferred_ += bytes;
  }
  if (cancelled_.load()) throw VmmError("the migration was cancelled");
  if (parameters_.max_bandwidth == 0) return;
  // Hold the average since the pass began to the limit.
  paced_bytes_ += bytes;
  double allowed_s = static_cast<double>(paced_bytes_) / static_cast<double>(parameters_.max_bandwidth);
  auto due = paced_since_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(allowed_s));
  if (due > Clock::now()) std::this_thread::sleep_until(due);
}

uint64_t Source::CollectDirty(std::vector<std::vector<uint64_t>>* bitmaps) {
  uint64_t count = 0;
  bitmaps->clear();
  for (size_t i = 0; i < machine_.memory().regions().size(); ++i) {
    bitmaps->emplace_back();
    machine_.CollectDirty(i, &bitmaps->back());
    for (uint64_t word : bitmaps->back()) count += static_cast<uint64_t>(__builtin_popcountll(word));
  }
  return count;
}

void Source::Run() {
  std::string end = "completed", error;
  try {
    Migrate();
  } catch (const std::exception& e) {
    bool cancelled = cancelled_.load();
    end = cancelled ? "cancelled" : "failed";
    if (!cancelled) error = e.what();
    {
      std::lock_guard guard(channel_lock_);
      if (channel_ && !cancelled) {
        // The destination exits with this reason rather than a bare EOF.
        try {
          channel_->Send(MessageType::kCancel, error.data(), error.size());
        } catch (const std::exception&) {
        }
      }
      if (channel_) channel_->Abort();
    }
    try {
      machine_.StopDirtyLog();
    } catch (const std::exception&) {
    }
    if (paused_for_copy_) {
      machine_.Resume();
      notify_("resumed", "");
    }
  }
  {
    std::lock_guard guard(stats_lock_);
    status_ = end;
    total_ms_ = Ms(Clock::now() - started_);
  }
  finished_.store(true);
  notify_(end, error);
}

void Source::Migrate() {
  UniqueFd fd = Connect(uri_, 10000);
  {
    std::lock_guard guard(channel_lock_);
    if (cancelled_.load()) throw VmmError("the migration was cancelled");
    channel_ = std::make_unique<Channel>(std::move(fd));
  }
  Channel& channel = *channel_;
  channel.Send(MessageType::kHello, EncodeHello(vmm_version_, machine_.CurrentLayout()));
  Message reply = channel.Receive(30000, 1 << 20);
  if (reply.type == MessageType::kRefuse) throw VmmError("the destination refused: " + Text(reply.payload));
  if (reply.type != MessageType::kReady) throw VmmError("the destination answered the hello unexpectedly");
  {
    std::lock_guard guard(stats_lock_);
    setup_ms_ = Ms(Clock::now() - started_);
    status_ = "active";
  }
  notify_("active", "");

  // All of RAM, with the dirty log already on: what the guest changes
  // meanwhile goes again in the next round.
  machine_.StartDirtyLog();
  std::vector<std::vector<uint64_t>> dirty;
  CollectDirty(&dirty);
  auto pace = [this](uint64_t bytes) { Pace(bytes); };
  auto send_round = [&](const std::vector<std::vector<uint64_t>>* bitmaps) {
    SendCounters counters;
    paced_since_ = Clock::now();
    paced_bytes_ = 0;
    for (size_t i = 0; i < machine_.memory().regions().size(); ++i) {
      static const std::vector<uint64_t> kEverything;
      SendPages(channel, machine_.memory(), i, bitmaps ? (*bitmaps)[i] : kEverything, &counters, pace);
    }
    std::lock_guard guard(stats_lock_);
    normal_ += counters.normal;
    duplicate_ += counters.duplicate;
    return counters.bytes;
  };
  auto round_start = Clock::now();
  uint64_t round_bytes = send_round(nullptr);
  double round_seconds = Seconds(Clock::now() - round_start);
  {
    std::lock_guard guard(stats_lock_);
    bulk_ms_ = Ms(Clock::now() - round_start);
  }
  auto rounds_start = Clock::now();
  // What the last pass sent (the full pass: all of RAM).
  uint64_t previous_pages = machine_.memory().size() / kPageSize;

  for (uint32_t round = 1;; ++round) {
    uint64_t pages = CollectDirty(&dirty);
    // The link's speed as the last round saw it.
    double rate = round_seconds > 0 && round_bytes > 0 ? static_cast<double>(round_bytes) / round_seconds : 1e9;
    uint64_t expected_ms = static_cast<uint64_t>(static_cast<double>(pages * (kPageSize + 8)) / rate * 1000);
    {
      std::lock_guard guard(stats_lock_);
      rounds_ = round;
      remaining_ = pages * kPageSize;
      expected_downtime_ms_ = expected_ms;
      mbps_ = rate * 8 / 1e6;
      if (round_seconds > 0) dirty_rate_ = static_cast<double>(pages) / round_seconds;
      // Within the limit, another round is still worth its few ms while
      // the rest is more than a few pages and at most half the last pass:
      // the guest runs during it, and the downtime only copies what it
      // wrote meanwhile.
      bool worth_another = pages > kFewPages && pages * 2 <= previous_pages && round <= parameters_.max_rounds;
      if (expected_ms <= parameters_.downtime_limit_ms && !worth_another) converged_by_ = "downtime-limit";
      if (converged_by_.empty() && round > parameters_.max_rounds) converged_by_ = "round-limit";
      if (!converged_by_.empty()) break;
    }
    previous_pages = pages;
    round_start = Clock::now();
    round_bytes = send_round(&dirty);
    round_seconds = Seconds(Clock::now() - round_start);
  }

  // The last copy, with the guest stopped: its pages and its state.
  auto paused_at = Clock::now();
  // A guest someone paused already stays paused if the migration fails.
  paused_for_copy_ = !machine_.paused();
  machine_.Pause();
  auto phase_start = Clock::now();
  {
    std::lock_guard guard(stats_lock_);
    rounds_ms_ = Ms(paused_at - rounds_start);
    pause_ms_ = Ms(phase_start - paused_at);
    status_ = "device";
  }
  // Ends a part of the downtime: its length into `field`.
  auto phase_done = [&](uint64_t* field) {
    auto now = Clock::now();
    std::lock_guard guard(stats_lock_);
    *field = Ms(now - phase_start);
    phase_start = now;
  };
  notify_("paused", "");
  // What the last round collected and did not send (it met the limit), and
  // what the guest wrote after that, before the pause.
  std::vector<std::vector<uint64_t>> last;
  CollectDirty(&last);
  for (size_t r = 0; r < dirty.size(); ++r) {
    for (size_t w = 0; w < dirty[r].size(); ++w) dirty[r][w] |= last[r][w];
  }
  send_round(&dirty);
  machine_.DumpForMigration("source");
  phase_done(&last_pages_ms_);
  machine_.StopDirtyLog();
  std::vector<uint8_t> state = machine_.SaveState(vmm_version_);
  channel.Send(MessageType::kState, state);
  Pace(state.size());
  phase_done(&state_ms_);
  Message done = channel.Receive(30000, 1 << 20);
  phase_done(&confirm_ms_);
  if (done.type == MessageType::kError) throw VmmError("the destination failed: " + Text(done.payload));
  if (done.type != MessageType::kDone) throw VmmError("the destination did not confirm the state");
  std::lock_guard guard(stats_lock_);
  downtime_ms_ = Ms(Clock::now() - paused_at);
  remaining_ = 0;
}

}  // namespace virga::migration
