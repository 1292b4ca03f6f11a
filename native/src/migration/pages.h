// Guest pages on the migration stream (docs/migration.md). A batch names its
// RAM region and a run of page indices; a page that is all zeros travels as
// its index with a flag instead of 4 KiB.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "memory/guest_memory.h"
#include "migration/channel.h"

namespace virga::migration {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kZeroPage = 1ULL << 63;

struct SendCounters {
  uint64_t normal = 0;     // pages sent whole
  uint64_t duplicate = 0;  // zero pages sent as a marker
  uint64_t bytes = 0;
};

// Sends the pages of `region` whose bits are set in `bitmap` (all pages
// when it is empty), in batches; `keep_going` is asked between batches and
// may sleep to hold a bandwidth limit.
void SendPages(Channel& channel, const GuestMemory& memory, size_t region, const std::vector<uint64_t>& bitmap,
               SendCounters* counters, const std::function<void(uint64_t bytes)>& between_batches);

// Writes a Pages message's pages into guest memory; throws on a malformed
// batch (an index outside the region, short data). `written` records the
// pages given data so far (a bit per page, per region): a zero page that
// was never written is zero already and costs nothing.
void ReceivePages(const std::vector<uint8_t>& payload, const GuestMemory& memory,
                  std::vector<std::vector<uint64_t>>* written);

}  // namespace virga::migration
