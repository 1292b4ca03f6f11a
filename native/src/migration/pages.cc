#include "migration/pages.h"

#include <sys/mman.h>

#include <cstring>

#include "common/error.h"
#include "state/byte_stream.h"

namespace virga::migration {

namespace {

constexpr uint32_t kBatchPages = 256;

bool IsZero(const uint8_t* page) {
  const uint64_t* words = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 0; i < kPageSize / 8; ++i) {
    if (words[i] != 0) return false;
  }
  return true;
}

}  // namespace

void SendPages(Channel& channel, const GuestMemory& memory, size_t region, const std::vector<uint64_t>& bitmap,
               SendCounters* counters, const std::function<void(uint64_t bytes)>& between_batches) {
  const MemoryRegion& r = memory.regions()[region];
  uint64_t pages = r.size / kPageSize;
  std::vector<uint64_t> indices;
  std::vector<uint8_t> data;
  // Whole-RAM passes skip pages that were never touched (zeros) without
  // reading them, which would fault each one in.
  std::vector<unsigned char> resident;
  if (bitmap.empty()) {
    resident.resize(pages);
    if (::mincore(r.host, r.size, resident.data()) != 0) std::fill(resident.begin(), resident.end(), 1);
  }
  auto flush = [&] {
    if (indices.empty()) return;
    state::ByteWriter out;
    out.U32(static_cast<uint32_t>(region));
    out.U32(static_cast<uint32_t>(indices.size()));
    for (uint64_t index : indices) out.U64(index);
    out.Bytes(data.data(), data.size());
    channel.Send(MessageType::kPages, out.data());
    counters->bytes += out.data().size();
    uint64_t sent = out.data().size();
    indices.clear();
    data.clear();
    between_batches(sent);
  };
  for (uint64_t page = 0; page < pages; ++page) {
    if (!bitmap.empty() && !(bitmap[page / 64] & (1ULL << (page % 64)))) continue;
    const uint8_t* host = r.host + page * kPageSize;
    if ((!resident.empty() && !(resident[page] & 1)) || IsZero(host)) {
      indices.push_back(page | kZeroPage);
      ++counters->duplicate;
    } else {
      indices.push_back(page);
      data.insert(data.end(), host, host + kPageSize);
      ++counters->normal;
    }
    if (indices.size() == kBatchPages) flush();
  }
  flush();
}

void ReceivePages(const std::vector<uint8_t>& payload, const GuestMemory& memory,
                  std::vector<std::vector<uint64_t>>* written) {
  if (written->size() != memory.regions().size()) {
    written->clear();
    for (const MemoryRegion& r : memory.regions()) written->emplace_back((r.size / kPageSize + 63) / 64, 0);
  }
  state::ByteReader in(payload.data(), payload.size(), "a page batch");
  uint32_t region = in.U32();
  if (region >= memory.regions().size()) throw VmmError("the source sent pages of an unknown memory region");
  const MemoryRegion& r = memory.regions()[region];
  uint32_t count = in.Count(8);
  std::vector<uint64_t> indices(count);
  for (auto& index : indices) index = in.U64();
  for (uint64_t index : indices) {
    uint64_t page = index & ~kZeroPage;
    if (page >= r.size / kPageSize) throw VmmError("the source sent a page outside guest memory");
    uint64_t gpa = r.guest_base + page * kPageSize;
    uint64_t& word = (*written)[region][page / 64];
    uint64_t bit = 1ULL << (page % 64);
    if (index & kZeroPage) {
      if (word & bit) memory.Zero(gpa, kPageSize);
      word &= ~bit;
    } else {
      uint8_t* host = memory.Translate(gpa, kPageSize);
      in.Bytes(host, kPageSize);
      word |= bit;
    }
  }
  in.ExpectEnd();
}

}  // namespace virga::migration
