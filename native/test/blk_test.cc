#include "virtio/blk.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "unit_test.h"

namespace virga::virtio {
namespace {

constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint64_t kHeader = 0x8000, kData = 0x9000, kStatus = 0xa000;

void PutDesc(const GuestMemory& memory, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  memory.WriteObj(kDesc + 16 * i, addr);
  memory.WriteObj(kDesc + 16 * i + 8, len);
  memory.WriteObj(kDesc + 16 * i + 12, flags);
  memory.WriteObj(kDesc + 16 * i + 14, next);
}

// One queue of 16, ready, at the addresses above.
std::vector<Queue> ReadyQueues() {
  std::vector<Queue> queues{Queue(16)};
  queues[0].desc_table = kDesc;
  queues[0].avail_ring = kAvail;
  queues[0].used_ring = kUsed;
  queues[0].set_ready(true);
  return queues;
}

// Opens a test disk; on failure removes it before the error goes up.
std::unique_ptr<BlockFile> OpenTestDisk(const std::string& path, bool read_only, bool direct) {
  try {
    return BlockFile::Open({path, read_only, direct});
  } catch (const std::exception&) {
    ::unlink(path.c_str());
    throw;
  }
}

struct BlkFixture {
  std::string path = "/tmp/virga-blk-test-" + std::to_string(::getpid());
  GuestMemory memory{1 << 20, 1ULL << 32};
  std::vector<Queue> queues = ReadyQueues();
  int interrupts = 0;

  explicit BlkFixture(size_t sectors = 8) {
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
    std::vector<uint8_t> zero(sectors * 512, 0);
    [[maybe_unused]] ssize_t n = ::write(fd, zero.data(), zero.size());
    ::close(fd);
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
    bool to_guest = type == 0;
    PutDesc(memory, 0, kHeader, 16, 1, 1);
    PutDesc(memory, 1, kData, 512, static_cast<uint16_t>(1 | (to_guest ? 2 : 0)), 2);
    PutDesc(memory, 2, kStatus, 1, 2, 0);
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
  Block blk(BlockFile::Open({f.path, false, false}));
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
  Block blk(BlockFile::Open({f.path, true, false}));
  EXPECT_TRUE(blk.features() & (1ULL << 5));
  f.Activate(blk);
  EXPECT_EQ(f.Request(blk, 1, 0, 1), 1);
  EXPECT_EQ(f.Request(blk, 0, 0, 2), 0);
}

TEST("virtio-blk: requests past the end of the disk fail without touching the file") {
  BlkFixture f;
  Block blk(BlockFile::Open({f.path, false, false}));
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
  Block blk(BlockFile::Open({f.path, false, false}));
  f.Activate(blk);
  EXPECT_EQ(f.Request(blk, 4, 0, 1), 0);
  EXPECT_EQ(f.Request(blk, 99, 0, 2), 2);
}

TEST("virtio-blk: a missing file or a directory is an error naming the path and the problem") {
  EXPECT_THROWS_WITH(BlockFile::Open({"/nonexistent/disk.img", false, false}),
                     "could not open '/nonexistent/disk.img': No such file or directory");
  EXPECT_THROWS_WITH(BlockFile::Open({"/tmp", false, false}), "'/tmp' is a directory");
}

TEST("virtio-blk: a hot-plugged disk appears with its capacity and is gone again after detach") {
  BlkFixture f;
  Block blk;
  f.Activate(blk);
  blk.Attach(BlockFile::Open({f.path, false, false}));
  EXPECT_EQ(blk.capacity_sectors(), 8u);
  uint8_t config[8];
  blk.ReadConfig(0, config, 8);
  EXPECT_EQ(config[0], 8);
  EXPECT_EQ(f.Request(blk, 1, 3, 1), 0);
  auto file = blk.Detach();
  EXPECT_TRUE(file != nullptr);
  EXPECT_EQ(blk.capacity_sectors(), 0u);
  EXPECT_EQ(f.Request(blk, 0, 3, 2), 1);
}

TEST("virtio-blk: a read-only disk hot-plugged into a writable slot still refuses writes") {
  BlkFixture f;
  Block blk;
  EXPECT_TRUE(!(blk.features() & (1ULL << 5)));
  f.Activate(blk);
  blk.Attach(BlockFile::Open({f.path, true, false}));
  EXPECT_EQ(f.Request(blk, 1, 0, 1), 1);
  EXPECT_EQ(f.Request(blk, 0, 0, 2), 0);
}

TEST("virtio-blk: GET_ID never writes over the status byte of a header+status chain") {
  BlkFixture f;
  Block blk(BlockFile::Open({f.path, false, false}));
  f.Activate(blk);
  f.memory.WriteObj<uint32_t>(kHeader, 8);
  f.memory.WriteObj<uint64_t>(kHeader + 8, 0);
  // Two descriptors: the header, then a 20-byte writable status buffer.
  f.memory.WriteObj(kDesc, kHeader);
  f.memory.WriteObj<uint32_t>(kDesc + 8, 16);
  f.memory.WriteObj<uint16_t>(kDesc + 12, 1);
  f.memory.WriteObj<uint16_t>(kDesc + 14, 1);
  f.memory.WriteObj(kDesc + 16, kStatus);
  f.memory.WriteObj<uint32_t>(kDesc + 24, 20);
  f.memory.WriteObj<uint16_t>(kDesc + 28, 2);
  std::vector<uint8_t> before(20, 0xaa);
  f.memory.Write(kStatus, before.data(), before.size());
  f.memory.WriteObj<uint16_t>(kAvail + 4, 0);
  f.memory.WriteObj<uint16_t>(kAvail + 2, 1);
  blk.ProcessQueue(0);
  std::vector<uint8_t> after(20);
  f.memory.Read(kStatus, after.data(), after.size());
  EXPECT_EQ(after[0], 0xaa);  // no "virga-blk" written into the status buffer
  EXPECT_EQ(after[19], 1);    // IOERR in the status byte
}

TEST("virtio-blk: a request longer than the used ring can report (4 GiB) fails before any I/O") {
  // 6 GiB of address space, never touched (guest RAM is NORESERVE).
  GuestMemory memory{6ULL << 30, 4ULL << 30};
  std::vector<Queue> queues = ReadyQueues();
  std::string path = "/tmp/virga-blk-big-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
  EXPECT_TRUE(::ftruncate(fd, 8LL << 30) == 0);  // sparse
  ::close(fd);
  Block blk(BlockFile::Open({path, false, false}));
  blk.Activate({&memory, &queues, [](uint16_t) {}, [] {}}, kFeatureVersion1);
  memory.WriteObj<uint32_t>(kHeader, 0);
  memory.WriteObj<uint64_t>(kHeader + 8, 0);
  PutDesc(memory, 0, kHeader, 16, 1, 1);
  PutDesc(memory, 1, 1ULL << 30, 2u << 30, 3, 2);            // 2 GiB
  PutDesc(memory, 2, 3ULL << 30, (1u << 30) - 4096, 3, 3);   // ~1 GiB
  PutDesc(memory, 3, 4ULL << 30, 2u << 30, 3, 4);            // 2 GiB above the hole: 5 GiB in all
  PutDesc(memory, 4, kStatus, 1, 2, 0);
  memory.WriteObj<uint16_t>(kAvail + 4, 0);
  memory.WriteObj<uint16_t>(kAvail + 2, 1);
  blk.ProcessQueue(0);
  uint8_t status = 0;
  memory.ReadObj(kStatus, &status);
  ::unlink(path.c_str());
  EXPECT_EQ(status, 1);
}

TEST("virtio-blk: O_DIRECT through the bounce buffer moves requests larger than the buffer intact") {
  // 3 MiB read into a guest buffer that is not 4 KiB aligned (so it bounces, 1 MiB at a time).
  std::string path = "/var/tmp/virga-blk-direct-" + std::to_string(::getpid());
  constexpr size_t kBytes = 3 << 20;
  std::vector<uint8_t> pattern(kBytes);
  for (size_t i = 0; i < kBytes; ++i) pattern[i] = static_cast<uint8_t>(i * 31 + (i >> 12));
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
  EXPECT_TRUE(::write(fd, pattern.data(), kBytes) == static_cast<ssize_t>(kBytes));
  ::close(fd);
  GuestMemory memory{16 << 20, 1ULL << 32};
  std::vector<Queue> queues = ReadyQueues();
  Block blk(OpenTestDisk(path, false, true));
  blk.Activate({&memory, &queues, [](uint16_t) {}, [] {}}, kFeatureVersion1);
  constexpr uint64_t kBuffer = (4 << 20) + 512;
  memory.WriteObj<uint32_t>(kHeader, 0);
  memory.WriteObj<uint64_t>(kHeader + 8, 0);
  PutDesc(memory, 0, kHeader, 16, 1, 1);
  PutDesc(memory, 1, kBuffer, kBytes / 2, 3, 2);
  PutDesc(memory, 2, kBuffer + kBytes / 2, kBytes / 2, 3, 3);
  PutDesc(memory, 3, kStatus, 1, 2, 0);
  memory.WriteObj<uint16_t>(kAvail + 4, 0);
  memory.WriteObj<uint16_t>(kAvail + 2, 1);
  blk.ProcessQueue(0);
  uint8_t status = 0xff;
  memory.ReadObj(kStatus, &status);
  std::vector<uint8_t> got(kBytes);
  memory.Read(kBuffer, got.data(), kBytes);
  ::unlink(path.c_str());
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(got == pattern);
}

TEST("virtio-blk: an unaligned O_DIRECT request bounces in bounded chunks, not one buffer of the length the guest claims") {
  // 64 MiB read into a guest buffer off 4 KiB alignment, in a child whose
  // address space has 16 MiB to spare: one bounce buffer of the request's
  // length cannot be had there, 1 MiB chunks can.
  constexpr uint64_t kBytes = 64 << 20;
  std::string path = "/var/tmp/virga-blk-bounce-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
  EXPECT_TRUE(::ftruncate(fd, kBytes) == 0);
  EXPECT_TRUE(::pwrite(fd, "end", 3, kBytes - 3) == 3);
  ::close(fd);
  GuestMemory memory{kBytes + (8 << 20), 1ULL << 32};
  std::vector<Queue> queues = ReadyQueues();
  Block blk(OpenTestDisk(path, true, true));
  ::unlink(path.c_str());
  blk.Activate({&memory, &queues, [](uint16_t) {}, [] {}}, kFeatureVersion1);
  constexpr uint64_t kBuffer = (4 << 20) + 512;
  memory.WriteObj<uint32_t>(kHeader, 0);
  memory.WriteObj<uint64_t>(kHeader + 8, 0);
  PutDesc(memory, 0, kHeader, 16, 1, 1);
  PutDesc(memory, 1, kBuffer, kBytes, 3, 2);
  PutDesc(memory, 2, kStatus, 1, 2, 0);
  memory.WriteObj<uint16_t>(kAvail + 4, 0);
  memory.WriteObj<uint16_t>(kAvail + 2, 1);
  memory.WriteObj<uint8_t>(kStatus, 0xff);
  int code = test::ExitCodeWithSpareAddressSpace(16 << 20, [&] {
    blk.ProcessQueue(0);
    uint8_t status = 0xff;
    memory.ReadObj(kStatus, &status);
    char tail[3] = {};
    memory.Read(kBuffer + kBytes - 3, tail, 3);
    return status == 0 && std::memcmp(tail, "end", 3) == 0 ? 0 : 1;
  });
  EXPECT_EQ(code, 0);  // 1: the request failed (or read wrong bytes) under the limit
}

}  // namespace
}  // namespace virga::virtio
