#include "virtio/queue.h"

#include "unit_test.h"

namespace virga::virtio {
namespace {

constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;

struct QueueFixture {
  GuestMemory memory{1 << 20, 1ULL << 32};
  Queue queue{8};
  QueueFixture() {
    queue.desc_table = kDesc;
    queue.avail_ring = kAvail;
    queue.used_ring = kUsed;
    queue.set_ready(true);
  }
  void Desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    memory.WriteObj(kDesc + 16 * i, addr);
    memory.WriteObj(kDesc + 16 * i + 8, len);
    memory.WriteObj(kDesc + 16 * i + 12, flags);
    memory.WriteObj(kDesc + 16 * i + 14, next);
  }
  void Publish(uint16_t slot, uint16_t head, uint16_t idx) {
    memory.WriteObj<uint16_t>(kAvail + 4 + 2 * slot, head);
    memory.WriteObj<uint16_t>(kAvail + 2, idx);
  }
};

TEST("virtqueue: a posted chain is popped with its segments and completed in the used ring") {
  QueueFixture f;
  EXPECT_TRUE(f.queue.IsValid(f.memory));
  f.Desc(0, 0x8000, 16, 1, 1);
  f.Desc(1, 0x9000, 512, 2, 0);
  f.Publish(0, 0, 1);
  auto chain = f.queue.Pop(f.memory);
  EXPECT_TRUE(chain.has_value());
  EXPECT_EQ(chain->segments.size(), 2u);
  EXPECT_TRUE(chain->segments[1].device_writable);
  EXPECT_TRUE(!f.queue.Pop(f.memory).has_value());
  f.queue.PushUsed(f.memory, chain->head, 512);
  uint16_t used_idx = 0;
  uint32_t used_len = 0;
  f.memory.ReadObj(kUsed + 2, &used_idx);
  f.memory.ReadObj(kUsed + 8, &used_len);
  EXPECT_EQ(used_idx, 1);
  EXPECT_EQ(used_len, 512u);
}

TEST("virtqueue: a descriptor loop is cut off instead of hanging the device") {
  QueueFixture f;
  f.Desc(0, 0x8000, 16, 1, 1);
  f.Desc(1, 0x8000, 16, 1, 0);
  f.Publish(0, 0, 1);
  auto chain = f.queue.Pop(f.memory);
  EXPECT_TRUE(chain.has_value());
  EXPECT_TRUE(chain->segments.empty());
}

TEST("virtqueue: an out-of-range head or next index yields an empty chain") {
  QueueFixture f;
  f.Publish(0, 42, 1);
  auto chain = f.queue.Pop(f.memory);
  EXPECT_TRUE(chain.has_value() && chain->segments.empty());
  f.Desc(0, 0x8000, 16, 1, 9);
  f.Publish(1, 0, 2);
  chain = f.queue.Pop(f.memory);
  EXPECT_TRUE(chain.has_value() && chain->segments.empty());
}

// An indirect table at 0x6000: entry i at 0x6000 + 16 i.
void IndirectEntry(GuestMemory& memory, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  constexpr uint64_t kTable = 0x6000;
  memory.WriteObj(kTable + 16 * i, addr);
  memory.WriteObj(kTable + 16 * i + 8, len);
  memory.WriteObj(kTable + 16 * i + 12, flags);
  memory.WriteObj(kTable + 16 * i + 14, next);
}

TEST("virtqueue: an indirect descriptor's table is the chain, once the feature is negotiated") {
  QueueFixture f;
  f.queue.set_indirect(true);
  IndirectEntry(f.memory, 0, 0x8000, 12, 1, 2);  // entries may come in any order
  IndirectEntry(f.memory, 2, 0x9000, 1500, 1, 1);
  IndirectEntry(f.memory, 1, 0xa000, 4096, 0, 0);
  f.Desc(5, 0x6000, 3 * 16, 4, 0);
  f.Publish(0, 5, 1);
  auto chain = f.queue.Pop(f.memory);
  EXPECT_TRUE(chain.has_value());
  EXPECT_EQ(chain->head, 5);
  EXPECT_EQ(chain->segments.size(), 3u);
  EXPECT_EQ(chain->segments[1].length, 1500u);
  EXPECT_EQ(chain->segments[2].address, 0xa000u);
}

TEST("virtqueue: indirect descriptors are refused unnegotiated, chained on, nested, looping or unaligned") {
  auto pop_with = [](bool negotiated, uint16_t flags, uint32_t table_len, auto&& fill) {
    QueueFixture f;
    f.queue.set_indirect(negotiated);
    fill(f.memory);
    f.Desc(0, 0x6000, table_len, flags, 1);
    f.Desc(1, 0x8000, 16, 0, 0);
    f.Publish(0, 0, 1);
    auto chain = f.queue.Pop(f.memory);
    return chain.has_value() ? chain->segments.size() : 99;
  };
  auto plain = [](GuestMemory& m) { IndirectEntry(m, 0, 0x8000, 16, 0, 0); };
  EXPECT_EQ(pop_with(true, 4, 16, plain), 1u);
  EXPECT_EQ(pop_with(false, 4, 16, plain), 0u);
  EXPECT_EQ(pop_with(true, 4 | 1, 16, plain), 0u);  // INDIRECT with NEXT
  EXPECT_EQ(pop_with(true, 4, 20, plain), 0u);      // not a whole number of entries
  EXPECT_EQ(pop_with(true, 4, 0, plain), 0u);
  EXPECT_EQ(pop_with(true, 4, 16 * 4096, plain), 0u);  // past the bound
  EXPECT_EQ(pop_with(true, 4, 16, [](GuestMemory& m) { IndirectEntry(m, 0, 0x6000, 16, 4, 0); }), 0u);
  EXPECT_EQ(pop_with(true, 4, 32,
                     [](GuestMemory& m) {
                       IndirectEntry(m, 0, 0x8000, 16, 1, 1);
                       IndirectEntry(m, 1, 0x8000, 16, 1, 0);
                     }),
            0u);
  EXPECT_EQ(pop_with(true, 4, 16, [](GuestMemory& m) { IndirectEntry(m, 0, 0x8000, 16, 1, 7); }), 0u);
}

TEST("virtqueue: rings outside guest memory or a bad size make the queue invalid") {
  QueueFixture f;
  f.queue.used_ring = (1 << 20) - 8;
  EXPECT_TRUE(!f.queue.IsValid(f.memory));
  f.queue.used_ring = kUsed;
  f.queue.set_size(6);
  EXPECT_TRUE(!f.queue.IsValid(f.memory));
}

TEST("virtqueue: rings laid over each other make the queue invalid, so the device cannot feed its own loop") {
  QueueFixture f;
  // The used ring on the available ring: each completion would publish a
  // new available index one ahead of the device, forever.
  f.queue.used_ring = kAvail;
  EXPECT_TRUE(!f.queue.IsValid(f.memory));
  f.queue.used_ring = kAvail + 8;  // overlapping its entries
  EXPECT_TRUE(!f.queue.IsValid(f.memory));
  f.queue.used_ring = kUsed;
  f.queue.avail_ring = kDesc + 16 * 8 - 2;  // on the last descriptor
  EXPECT_TRUE(!f.queue.IsValid(f.memory));
  f.queue.avail_ring = kDesc + 16 * 8;  // right after the table: fine
  EXPECT_TRUE(f.queue.IsValid(f.memory));
}

TEST("virtqueue: an available index more than the queue size ahead stops the queue instead of replaying slots") {
  QueueFixture f;
  f.Desc(0, 0x8000, 16, 1, 0);
  f.Publish(0, 0, 9);  // 9 new entries in a queue of 8
  EXPECT_TRUE(!f.queue.Pop(f.memory).has_value());
  EXPECT_TRUE(f.queue.broken());
  f.Publish(0, 0, 1);
  EXPECT_TRUE(!f.queue.Pop(f.memory).has_value());
  f.queue.Reset();
  EXPECT_TRUE(!f.queue.broken());
}

TEST("virtqueue: with event indices, an emptied queue asks to be notified at its next entry") {
  QueueFixture f;
  f.queue.set_event_idx(true);
  f.Desc(0, 0x8000, 16, 0, 0);
  f.Publish(0, 0, 1);
  EXPECT_TRUE(f.queue.Pop(f.memory).has_value());
  EXPECT_TRUE(!f.queue.Pop(f.memory).has_value());
  uint16_t avail_event = 0;
  f.memory.ReadObj(kUsed + 4 + 8 * 8, &avail_event);
  EXPECT_EQ(avail_event, 1);
}

TEST("virtqueue: with event indices, interrupts follow the driver's used_event") {
  QueueFixture f;
  f.queue.set_event_idx(true);
  auto push = [&] { f.queue.PushUsed(f.memory, 0, 0); };
  push();
  EXPECT_TRUE(f.queue.ShouldInterrupt(f.memory));  // the first is always signalled
  f.memory.WriteObj<uint16_t>(kAvail + 4 + 2 * 8, 3);  // used_event: wake me when entry 3 is used
  push();                                               // used idx 2
  EXPECT_TRUE(!f.queue.ShouldInterrupt(f.memory));
  push();
  push();  // used idx 4: entry 3 is now used
  EXPECT_TRUE(f.queue.ShouldInterrupt(f.memory));
}

}  // namespace
}  // namespace virga::virtio
