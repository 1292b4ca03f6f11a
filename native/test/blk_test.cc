#include "virtio/blk.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "unit_test.h"

namespace virga::virtio {
namespace {

constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint64_t kHeader = 0x8000, kData = 0x9000, kStatus = 0xa000;

struct BlkFixture {
  std::string path = "/tmp/virga-blk-test-" + std::to_string(::getpid());
  GuestMemory memory{1 << 20, 1ULL << 32};
  std::vector<Queue> queues{Queue(16)};
  int interrupts = 0;

  explicit BlkFixture(size_t sectors = 8) {
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
    std::vector<uint8_t> zero(sectors * 512, 0);
    [[maybe_unused]] ssize_t n = ::write(fd, zero.data(), zero.size());
    ::close(fd);
    queues[0].desc_table = kDesc;
    queues[0].avail_ring = kAvail;
    queues[0].used_ring = kUsed;
    queues[0].set_ready(true);
  }
  ~BlkFixture() { ::unlink(path.c_str()); }

  void Activate(Block& blk) {
    blk.Activate({&memory, &queues, [this](uint16_t) { ++interrupts; }, [] {}}, kFeatureVersion1);
  }
  // Posts header + one data sector + status and returns the status byte.
  uint8_t Request(Block& blk, uint32_t type, uint64_t sector, uint16_t avail_idx) {
    memory.WriteObj<uint32_t>(kHeader, type);
    memory.WriteObj<uint32_t>(kHeader + 4, 0);
    memory.WriteObj<uint64_t>(kHeader + 8, sector);
    auto desc = [&](uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
      memory.WriteObj(kDesc + 16 * i, addr);
      memory.WriteObj(kDesc + 16 * i + 8, len);
      memory.WriteObj(kDesc + 16 * i + 12, flags);
      memory.WriteObj(kDesc + 16 * i + 14, next);
    };
    bool to_guest = type == 0;
    desc(0, kHeader, 16, 1, 1);
    desc(1, kData, 512, static_cast<uint16_t>(1 | (to_guest ? 2 : 0)), 2);
    desc(2, kStatus, 1, 2, 0);
    memory.WriteObj<uint16_t>(kAvail + 4 + 2 * ((avail_idx - 1) % 16), 0);
    memory.WriteObj<uint16_t>(kAvail + 2, avail_idx);
    memory.WriteObj<uint8_t>(kStatus, 0xff);
    blk.ProcessQueue(0);
    uint8_t status = 0;
    memory.ReadObj(kStatus, &status);
    return status;
  }
};

TEST("virtio-blk: a written sector lands in the file and reads back") {
  BlkFixture f;
  Block blk({f.path, false, false});
  EXPECT_EQ(blk.capacity_sectors(), 8u);
  f.Activate(blk);
  uint8_t* data = f.memory.Translate(kData, 512);
  for (int i = 0; i < 512; ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  EXPECT_EQ(f.Request(blk, 1, 2, 1), 0);
  EXPECT_EQ(f.interrupts, 1);
  int fd = ::open(f.path.c_str(), O_RDONLY);
  uint8_t byte = 0;
  [[maybe_unused]] ssize_t n = ::pread(fd, &byte, 1, 2 * 512 + 5);
  ::close(fd);
  EXPECT_EQ(byte, static_cast<uint8_t>(5 * 7 + 3));
  std::fill(data, data + 512, 0);
  EXPECT_EQ(f.Request(blk, 0, 2, 2), 0);
  EXPECT_EQ(data[5], static_cast<uint8_t>(5 * 7 + 3));
}

TEST("virtio-blk: read-only disks fail writes with VIRTIO_BLK_S_IOERR and offer VIRTIO_BLK_F_RO") {
  BlkFixture f;
  Block blk({f.path, true, false});
  EXPECT_TRUE(blk.features() & (1ULL << 5));
  f.Activate(blk);
  EXPECT_EQ(f.Request(blk, 1, 0, 1), 1);
  EXPECT_EQ(f.Request(blk, 0, 0, 2), 0);
}

TEST("virtio-blk: requests past the end of the disk fail without touching the file") {
  BlkFixture f;
  Block blk({f.path, false, false});
  f.Activate(blk);
  EXPECT_EQ(f.Request(blk, 1, 8, 1), 1);
  EXPECT_EQ(f.Request(blk, 0, ~0ULL, 2), 1);
}

TEST("virtio-blk: an empty slot has capacity 0 and fails I/O") {
  BlkFixture f;
  Block blk;
  EXPECT_EQ(blk.capacity_sectors(), 0u);
  f.Activate(blk);
  EXPECT_EQ(f.Request(blk, 0, 0, 1), 1);
}

TEST("virtio-blk: flush and unknown request types get their status codes") {
  BlkFixture f;
  Block blk({f.path, false, false});
  f.Activate(blk);
  EXPECT_EQ(f.Request(blk, 4, 0, 1), 0);
  EXPECT_EQ(f.Request(blk, 99, 0, 2), 2);
}

TEST("virtio-blk: a missing file is an error naming the path") {
  EXPECT_THROWS_WITH(Block({"/nonexistent/disk.img", false, false}), "/nonexistent/disk.img");
}

}  // namespace
}  // namespace virga::virtio
