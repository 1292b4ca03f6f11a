#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/usage_error.h"
#include "memory/file_backing.h"
#include "memory/guest_memory.h"
#include "memory/mem_path.h"
#include "unit_test.h"

namespace virga {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRam = 8 * kMiB;
constexpr uint64_t kNoHole = 1ULL << 32;
constexpr uint64_t kSpan = 64 << 10;

// A directory on tmpfs, removed with what is left in it.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/dev/shm/virga-backing-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw test::Failure("mkdtemp in /dev/shm failed");
    path = name;
  }
  ~TempDir() {
    std::string command = "rm -rf '" + path + "'";
    [[maybe_unused]] int ignored = std::system(command.c_str());
  }
};

bool AllBytes(const GuestMemory& memory, uint64_t gpa, uint64_t len, uint8_t value) {
  std::vector<uint8_t> bytes(len);
  if (!memory.Read(gpa, bytes.data(), len)) return false;
  for (uint8_t b : bytes) {
    if (b != value) return false;
  }
  return true;
}

// What every backing must do: a zeroed range reads as zeros (the partial
// pages at its ends written, the whole ones given back), and so does a
// discarded one; the bytes around them are kept.
void ExpectZerosAfterZeroAndDiscard(GuestMemory& memory) {
  std::vector<uint8_t> junk(kSpan, 0xa5);
  EXPECT_TRUE(memory.Write(1 * kMiB, junk.data(), kSpan));
  EXPECT_TRUE(memory.Zero(1 * kMiB + 100, kSpan - 200));
  EXPECT_TRUE(AllBytes(memory, 1 * kMiB, 100, 0xa5));
  EXPECT_TRUE(AllBytes(memory, 1 * kMiB + 100, kSpan - 200, 0));
  EXPECT_TRUE(AllBytes(memory, 1 * kMiB + kSpan - 100, 100, 0xa5));

  EXPECT_TRUE(memory.Write(2 * kMiB, junk.data(), kSpan));
  EXPECT_TRUE(memory.Discard(2 * kMiB, kSpan));
  EXPECT_TRUE(AllBytes(memory, 2 * kMiB, kSpan, 0));
}

uint64_t AllocatedBytes(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

bool FileReadsZeros(int fd, uint64_t size) {
  std::vector<uint8_t> bytes(size);
  if (::pread(fd, bytes.data(), size, 0) != static_cast<ssize_t>(size)) return false;
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

TEST("guest memory, anonymous: zeroed and discarded pages read as zeros") {
  GuestMemory memory(kRam, kNoHole);
  EXPECT_TRUE(memory.backing().starts_zeroed());
  EXPECT_TRUE(memory.backing().snapshot_refusal().empty());
  ExpectZerosAfterZeroAndDiscard(memory);
}

TEST("guest memory, memfd (-mem-share): zeros after Zero and Discard, and the memfd's pages are freed") {
  std::unique_ptr<FileBacking> backing = MakeSharedMemory(kRam);
  int fd = backing->fd();
  GuestMemory memory(kRam, kNoHole, std::move(backing));
  // Another process mapping the memfd sees the guest's bytes.
  uint32_t word = 0x5eed1234;
  EXPECT_TRUE(memory.WriteObj(3 * kMiB, word));
  uint32_t seen = 0;
  EXPECT_EQ(::pread(fd, &seen, sizeof(seen), 3 * kMiB), static_cast<ssize_t>(sizeof(seen)));
  EXPECT_EQ(seen, word);
  // MADV_DONTNEED would leave the shared pages (and their bytes) in the memfd.
  ExpectZerosAfterZeroAndDiscard(memory);
  EXPECT_TRUE(memory.Discard(0, kRam));
  EXPECT_EQ(AllocatedBytes(fd), 0u);
  // Sealed: nobody else can shrink guest RAM under the VMM.
  EXPECT_TRUE(::ftruncate(fd, kMiB) != 0);
  EXPECT_TRUE(memory.backing().snapshot_refusal().find("-mem-share") != std::string::npos);
}

TEST("guest memory, -mem-path directory: an unlinked file, private; zeros after Zero and Discard, file left holes") {
  TempDir dir;
  std::unique_ptr<FileBacking> backing = OpenMemPath(dir.path, kRam, false);
  int fd = backing->fd();
  GuestMemory memory(kRam, kNoHole, std::move(backing));
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kRam);
  ExpectZerosAfterZeroAndDiscard(memory);
  // The guest's writes are private copies: the file never holds its bytes.
  EXPECT_TRUE(FileReadsZeros(fd, kRam));
  EXPECT_TRUE(memory.backing().snapshot_refusal().find("file-backed (-mem-path " + dir.path + ")") != std::string::npos);
}

TEST("guest memory, -mem-path file with -mem-share: the file is guest RAM; zeros after Zero and Discard") {
  TempDir dir;
  std::string path = dir.path + "/ram";
  int outside = ::open(path.c_str(), O_CREAT | O_RDWR, 0600);  // an empty file of the user's
  GuestMemory memory(kRam, kNoHole, OpenMemPath(path, kRam, true));
  uint64_t word = 0x0123456789abcdefULL;
  EXPECT_TRUE(memory.WriteObj(5 * kMiB, word));
  uint64_t seen = 0;
  EXPECT_EQ(::pread(outside, &seen, sizeof(seen), 5 * kMiB), static_cast<ssize_t>(sizeof(seen)));
  EXPECT_EQ(seen, word);
  ExpectZerosAfterZeroAndDiscard(memory);
  EXPECT_TRUE(memory.Discard(0, kRam));
  EXPECT_EQ(AllocatedBytes(outside), 0u);
  ::close(outside);
  // An existing file is the user's: it stays.
  EXPECT_EQ(::access(path.c_str(), F_OK), 0);
}

TEST("guest memory, -mem-path: a new file name is created and unlinked; a file with data refused without -mem-share") {
  TempDir dir;
  std::string fresh = dir.path + "/new";
  { GuestMemory memory(kRam, kNoHole, OpenMemPath(fresh, kRam, false)); }
  EXPECT_TRUE(::access(fresh.c_str(), F_OK) != 0);

  std::string used = dir.path + "/used";
  int fd = ::open(used.c_str(), O_CREAT | O_RDWR, 0600);
  EXPECT_EQ(::ftruncate(fd, kRam), 0);
  EXPECT_EQ(::pwrite(fd, "x", 1, 4096), 1);
  ::close(fd);
  EXPECT_THROWS_WITH(OpenMemPath(used, kRam, false), "-mem-path: " + used + " already holds data");
  // Shared, it is simply guest RAM, as it was left; not known to be zeros.
  GuestMemory memory(kRam, kNoHole, OpenMemPath(used, kRam, true));
  EXPECT_TRUE(!memory.backing().starts_zeroed());
  EXPECT_TRUE(AllBytes(memory, 4096, 1, 'x'));
}

TEST("-mem-path: what cannot back guest RAM is refused by the command line, naming the flag") {
  TempDir dir;
  std::string kernel = dir.path + "/kernel";
  ::close(::open(kernel.c_str(), O_CREAT | O_RDWR, 0600));
  auto refusal = [&](const std::vector<std::string>& extra) -> std::string {
    std::vector<std::string> argv = {"-kernel", kernel, "-m", "16M"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    try {
      cli::ValidateFiles(cli::ParseCommandLine(argv).config);
    } catch (const cli::UsageError& e) {
      return e.what();
    }
    return "";
  };
  auto expect = [](const std::string& got, const std::string& want) {
    if (got.find(want) == std::string::npos) throw test::Failure("'" + got + "' lacks '" + want + "'");
  };
  std::string small = dir.path + "/small";
  int fd = ::open(small.c_str(), O_CREAT | O_RDWR, 0600);
  EXPECT_EQ(::ftruncate(fd, kMiB), 0);
  ::close(fd);
  expect(refusal({"-mem-path"}), "-mem-path: missing value");
  expect(refusal({"-mem-path", ""}), "-mem-path: the path must be absolute");
  expect(refusal({"-mem-path", "ram"}), "-mem-path: the path must be absolute");
  expect(refusal({"-machine", "microvm,mem-share=maybe"}), "-machine: mem-share must be on or off");
  expect(refusal({"-mem-path", dir.path + "/no/such"}),
         "-mem-path: " + dir.path + "/no/such does not exist, nor does its directory " + dir.path + "/no");
  expect(refusal({"-mem-path", "/dev/null"}), "-mem-path: /dev/null is neither a directory nor a regular file");
  expect(refusal({"-mem-path", small}), small + " holds 1 MiB, less than the guest's 16 MiB of RAM (-m)");
  expect(refusal({"-mem-path", dir.path, "-incoming", "file:/t"}),
         "-incoming: a snapshot restores into anonymous guest RAM (its memory file mapped copy-on-write), not the "
         "shared or file-backed RAM -mem-path asks for");
  expect(refusal({"-mem-share", "-incoming", "file:/t"}), "file-backed RAM -mem-share asks for");
  EXPECT_TRUE(refusal({"-mem-path", dir.path}).empty());
  // StratoVirt's spelling is the same switch.
  EXPECT_TRUE(cli::ParseCommandLine({"-kernel", kernel, "-machine", "microvm,mem-share=on"}).config.mem_share);
  EXPECT_TRUE(!cli::ParseCommandLine({"-kernel", kernel, "-machine", "microvm,mem-share=off"}).config.mem_share);
  EXPECT_TRUE(refusal({"-mem-share", "-incoming", "tcp:127.0.0.1:4444"}).empty());
}

}  // namespace
}  // namespace virga
