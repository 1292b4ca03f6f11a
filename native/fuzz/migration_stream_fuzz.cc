// The destination of a live migration reading the stream of whoever
// connected to its -incoming address (docs/migration.md): the message
// framing (migration/channel.cc), the hello with its machine layout, page
// batches written into guest RAM (migration/pages.cc), and the state file
// restored into the devices (fuzz_state.h), through the destination's own
// reader (migration/incoming.cc). The input is the byte stream as it
// arrives on the socket; a crash here is one a remote peer can cause.
#include <sys/socket.h>

#include <memory>
#include <thread>
#include <vector>

#include "fuzz_state.h"
#include "migration/channel.h"
#include "migration/incoming.h"
#include "migration/pages.h"
#include "seeds.h"

namespace {

using namespace virga;

class Target : public migration::IncomingMachine {
 public:
  std::vector<std::string> AcceptLayout(const MachineLayout& source) override {
    return LayoutDifferences(source, fuzz::SeedLayout(), "the source", WireMac::kKept);
  }
  const GuestMemory& memory() const override { return fuzz::Guest(); }
  void LoadState(const state::StateFile& file) override { fuzz::RestoreSections(file); }
};

std::pair<UniqueFd, UniqueFd> Connected() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// What a source sends: its hello, a batch with a zero page and two pages
// of data, and the state.
fuzz::Seeds MakeSeeds() {
  auto [source_fd, destination_fd] = Connected();
  migration::Channel source(std::move(source_fd));
  std::vector<uint8_t> page(migration::kPageSize, 0x5a);
  fuzz::Guest().Write(0, page.data(), page.size());
  fuzz::Guest().Write(3 * migration::kPageSize, page.data(), page.size());
  source.Send(migration::MessageType::kHello, migration::EncodeHello("0.1.0", fuzz::SeedLayout()));
  std::vector<uint64_t> first_pages(1, 0xf);
  migration::SendCounters counters;
  migration::SendPages(source, fuzz::Guest(), 0, first_pages, &counters, [](uint64_t) {});
  source.Send(migration::MessageType::kState, fuzz::SeedStateFile());
  ::shutdown(destination_fd.get(), SHUT_WR);
  std::vector<uint8_t> stream;
  uint8_t buffer[4096];
  for (;;) {
    ssize_t n = ::recv(destination_fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n <= 0) break;
    stream.insert(stream.end(), buffer, buffer + n);
  }
  return {{"stream", stream}};
}

}  // namespace

VIRGA_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [source_fd, destination_fd] = Connected();
  // The peer writes the input and hangs up; what the destination answers is
  // left unread in the socket.
  std::thread peer([fd = source_fd.get(), data, size] {
    size_t sent = 0;
    while (sent < size) {
      ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
  });
  migration::Channel channel(std::move(destination_fd));
  Target target;
  try {
    migration::ReceiveMigration(channel, target, 1000, [] {});
  } catch (const state::StateError&) {
  } catch (const VmmError&) {
  }
  channel.Abort();  // a peer still writing fails at once
  peer.join();
  return 0;
}
