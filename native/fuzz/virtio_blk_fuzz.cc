// virtio-blk requests as a hostile driver posts them: the virtqueue's
// descriptor walk (indices, chains, loops, event indices) and the block
// device's request parsing, on a disk file in /dev/shm (tmpfs takes
// O_DIRECT, so the bounce path runs too).
#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "fuzz_guest.h"
#include "seeds.h"
#include "virtio/blk.h"

namespace {

using virga::BlockFile;
using virga::virtio::Block;
using virga::virtio::Queue;

constexpr uint64_t kDiskBytes = 32 << 10;

// 0: an empty slot, 1: read-write, 2: read-only, 3: read-write with O_DIRECT.
std::unique_ptr<BlockFile>& Backend(int kind) {
  static std::unique_ptr<BlockFile> files[4];
  static const std::string path = [] {
    std::string p = "/dev/shm/virga-fuzz-blk-" + std::to_string(::getpid());
    FILE* f = std::fopen(p.c_str(), "w");
    if (f != nullptr) {
      std::fclose(f);
      [[maybe_unused]] int ignored = ::truncate(p.c_str(), kDiskBytes);
    }
    std::atexit([] { ::unlink(("/dev/shm/virga-fuzz-blk-" + std::to_string(::getpid())).c_str()); });
    return p;
  }();
  if (kind != 0 && !files[kind]) files[kind] = BlockFile::Open({path, kind == 2, kind == 3});
  return files[kind];
}

// A queue of 16 at address 0 (rings end at 432); one request per chain:
// header at 0x200, data at 0x400 (or unaligned at 0x401), status at 0x600.
virga::fuzz::Seeds MakeSeeds() {
  struct Request {
    const char* name;
    uint32_t type;
    uint64_t data;
    uint32_t data_len;
    bool data_writable;
    uint8_t kind;
  };
  const Request requests[] = {
      {"read", 0, 0x400, 512, true, 1},       {"write", 1, 0x400, 512, false, 1},
      {"flush", 4, 0, 0, false, 1},           {"get-id", 8, 0x400, 20, true, 1},
      {"direct-bounce", 0, 0x401, 1024, true, 3}, {"read-only-write", 1, 0x400, 512, false, 2},
      {"empty-slot", 0, 0x400, 512, true, 0},
  };
  virga::fuzz::Seeds seeds;
  for (const Request& r : requests) {
    virga::fuzz::SeedImage image;
    image.Put<uint32_t>(0x200, r.type);
    image.Put<uint64_t>(0x208, 1);  // sector
    image.Desc(0, 0, 0x200, 16, 1, 1);
    if (r.data_len != 0) {
      image.Desc(0, 1, r.data, r.data_len, static_cast<uint16_t>(1 | (r.data_writable ? 2 : 0)), 2);
      image.Desc(0, 2, 0x600, 1, 2, 0);
    } else {
      image.Desc(0, 1, 0x600, 1, 2, 0);
    }
    image.Avail(256, 16, {0});
    image.Put<uint8_t>(0x600, 0xff);
    image.Config({r.kind, 4, 0, 0});
    seeds.push_back({r.name, image.Finish()});
  }
  // Two chains in one batch with event indices: a write, then a read of it.
  virga::fuzz::SeedImage image;
  image.Put<uint32_t>(0x200, 1);
  image.Put<uint32_t>(0x210, 0);
  image.Desc(0, 0, 0x200, 16, 1, 1);
  image.Desc(0, 1, 0x400, 512, 1, 2);
  image.Desc(0, 2, 0x600, 1, 2, 0);
  image.Desc(0, 3, 0x210, 16, 1, 4);
  image.Desc(0, 4, 0x800, 512, 3, 5);
  image.Desc(0, 5, 0x601, 1, 2, 0);
  image.Avail(256, 16, {0, 3});
  image.Config({1, 4, 1, 1});
  seeds.push_back({"batch-event-idx", image.Finish()});
  return seeds;
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // The configuration comes from the input's end, the RAM image from its start.
  int kind = in.ConsumeIntegralInRange<int>(0, 3);
  uint8_t size_log2 = in.ConsumeIntegralInRange<uint8_t>(0, 8);
  bool event_idx = in.ConsumeBool();
  int rounds = in.ConsumeIntegralInRange<int>(1, 3);
  virga::fuzz::LoadImage(in.ConsumeRemainingBytes<uint8_t>());

  Block blk(std::move(Backend(kind)));
  std::vector<Queue> queues{Queue(blk.queue_max_size())};
  virga::fuzz::QueueLayout().Place(queues[0], size_log2, event_idx);
  if (!queues[0].IsValid(virga::fuzz::Guest())) return 0;
  blk.Activate({&virga::fuzz::Guest(), &queues, [](uint16_t) {}, [] {}}, blk.features());
  for (int i = 0; i < rounds; ++i) blk.ProcessQueue(0);
  if (kind != 0) Backend(kind) = blk.Detach();
  return 0;
}
