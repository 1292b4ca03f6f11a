#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "migration/channel.h"
#include "migration/incoming.h"
#include "migration/pages.h"
#include "state/state_file.h"
#include "unit_test.h"

namespace virga::migration {
namespace {

// Source and destination ends of one connection.
struct Pair {
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    source_fd = fds[0];
    source = std::make_unique<Channel>(UniqueFd(fds[0]));
    destination = std::make_unique<Channel>(UniqueFd(fds[1]));
  }
  int source_fd;
  std::unique_ptr<Channel> source, destination;
};

MachineLayout SmallMachine() {
  MachineLayout layout;
  layout.memory_bytes = 64 << 10;
  layout.cpus = layout.max_cpus = layout.sockets = layout.cores = layout.threads = 1;
  return layout;
}

class Target : public IncomingMachine {
 public:
  std::vector<std::string> AcceptLayout(const MachineLayout& source) override {
    return LayoutDifferences(source, SmallMachine(), "the source", WireMac::kKept);
  }
  const GuestMemory& memory() const override { return memory_; }
  void LoadState(const state::StateFile& file) override { loaded = file.vmm_version(); }

  std::string loaded;

 private:
  GuestMemory memory_{64 << 10, 1ULL << 32};
};

TEST("migration channel: a header claiming 200 MiB costs no memory until the bytes arrive") {
  Pair pair;
  uint8_t header[12];
  uint32_t type = static_cast<uint32_t>(MessageType::kState);
  uint64_t len = 200ULL << 20;
  std::memcpy(header, &type, 4);
  std::memcpy(header + 4, &len, 8);
  // The header, a little data, then the peer goes away.
  EXPECT_EQ(::send(pair.source_fd, header, sizeof(header), MSG_NOSIGNAL), static_cast<ssize_t>(sizeof(header)));
  EXPECT_EQ(::send(pair.source_fd, "abc", 3, MSG_NOSIGNAL), 3);
  ::shutdown(pair.source_fd, SHUT_WR);
  int code = test::ExitCodeWithSpareAddressSpace(16 << 20, [&] {
    try {
      pair.destination->Receive(1000);
    } catch (const VmmError& e) {
      return std::string(e.what()).find("closed the connection") != std::string::npos ? 0 : 2;
    } catch (...) {
      return 1;  // bad_alloc: the old code sized the buffer by the header
    }
    return 3;
  });
  EXPECT_EQ(code, 0);
}

TEST("migration: the destination takes the hello, the pages and the state, and answers Ready and Done") {
  Pair pair;
  GuestMemory source_ram(64 << 10, 1ULL << 32);
  std::vector<uint8_t> page(kPageSize, 0xab);
  source_ram.Write(kPageSize, page.data(), page.size());
  pair.source->Send(MessageType::kHello, EncodeHello("0.1.0", SmallMachine()));
  SendCounters counters;
  SendPages(*pair.source, source_ram, 0, {}, &counters, [](uint64_t) {});
  pair.source->Send(MessageType::kState, state::StateFileWriter().Finish("9.9.9"));

  Target target;
  bool ready = false;
  ReceiveMigration(*pair.destination, target, 1000, [&] { ready = true; });
  EXPECT_TRUE(ready);
  EXPECT_TRUE(target.loaded == "9.9.9");
  uint8_t got[kPageSize];
  target.memory().Read(kPageSize, got, sizeof(got));
  EXPECT_TRUE(std::memcmp(got, page.data(), sizeof(got)) == 0);
  EXPECT_TRUE(pair.source->Receive(1000).type == MessageType::kReady);
  EXPECT_TRUE(pair.source->Receive(1000).type == MessageType::kDone);
}

TEST("migration: another machine is refused with each difference, and the source is told") {
  Pair pair;
  MachineLayout bigger = SmallMachine();
  bigger.memory_bytes = 128 << 10;
  pair.source->Send(MessageType::kHello, EncodeHello("0.1.0", bigger));
  Target target;
  EXPECT_THROWS_WITH(ReceiveMigration(*pair.destination, target, 1000, [] {}), "-m: the source has");
  Message reply = pair.source->Receive(1000);
  EXPECT_TRUE(reply.type == MessageType::kRefuse);
  EXPECT_TRUE(std::string(reply.payload.begin(), reply.payload.end()).find("-m: the source has") != std::string::npos);
}

TEST("migration: pages outside guest memory or of an unknown region are refused") {
  GuestMemory ram(64 << 10, 1ULL << 32);
  std::vector<std::vector<uint64_t>> written;
  state::ByteWriter outside;
  outside.U32(0);
  outside.U32(1);
  outside.U64(16 | kZeroPage);  // page 16 of a 16-page region
  EXPECT_THROWS_WITH(ReceivePages(outside.data(), ram, &written), "outside guest memory");
  state::ByteWriter region;
  region.U32(7);
  region.U32(0);
  EXPECT_THROWS_WITH(ReceivePages(region.data(), ram, &written), "unknown memory region");
}

}  // namespace
}  // namespace virga::migration
