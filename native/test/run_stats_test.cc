#include "vcpu/run_stats.h"

#include <atomic>
#include <thread>

#include "unit_test.h"

namespace virga {
namespace {

TEST("run stats: time inside KVM_RUN counts the run in progress, and a pause adds nothing") {
  RunStats stats;
  uint64_t entered = stats.Entering();
  struct timespec pause_ts {0, 2'000'000};
  nanosleep(&pause_ts, nullptr);
  // Still inside the run: an idle vCPU halts in the kernel for seconds.
  EXPECT_TRUE(stats.Read().run_ns >= 2'000'000);
  EXPECT_EQ(stats.Read().exits, 0u);
  stats.Returned(entered);
  RunStatsSnapshot after = stats.Read();
  EXPECT_EQ(after.exits, 1u);
  EXPECT_TRUE(after.first_entry_ns == entered);
  stats.Parked();
  nanosleep(&pause_ts, nullptr);
  stats.Returned(stats.Entering());
  // The parked time is in neither total.
  EXPECT_TRUE(stats.Read().exit_handling_ns < 1'000'000);
  EXPECT_TRUE(stats.Read().run_ns < after.run_ns + 1'000'000);
}

TEST("run stats: a reader on another thread never sees the run time go backwards") {
  RunStats stats;
  std::atomic<bool> done{false};
  std::thread vcpu([&] {
    for (int i = 0; i < 200000; ++i) {
      uint64_t entered = stats.Entering();
      stats.Returned(entered);
    }
    done = true;
  });
  uint64_t last = 0;
  int reads = 0;
  bool monotonic = true;
  while (!done) {
    uint64_t now = stats.Read().run_ns;
    if (now < last) monotonic = false;
    last = now;
    ++reads;
  }
  vcpu.join();
  EXPECT_TRUE(monotonic);
  EXPECT_TRUE(reads > 0);
  EXPECT_EQ(stats.Read().exits, 200000u);
}

}  // namespace
}  // namespace virga
