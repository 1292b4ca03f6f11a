#include "migration/incoming.h"

#include <cstring>

#include "common/error.h"
#include "migration/pages.h"
#include "state/byte_stream.h"

namespace virga::migration {

namespace {

std::string Text(const std::vector<uint8_t>& payload) { return std::string(payload.begin(), payload.end()); }

// A hello holds a version string and the machine layout: far below this.
constexpr size_t kMaxHelloBytes = 1 << 20;

void Refuse(Channel& channel, const std::string& why) {
  channel.Send(MessageType::kRefuse, why.data(), why.size());
  throw VmmError(why);
}

}  // namespace

void ReceiveMigration(Channel& channel, IncomingMachine& machine, int hello_timeout_ms,
                      const std::function<void()>& on_ready) {
  Message hello = channel.Receive(hello_timeout_ms, kMaxHelloBytes);
  if (hello.type != MessageType::kHello) throw VmmError("the source did not start with a hello");
  state::ByteReader in(hello.payload.data(), hello.payload.size(), "the source's hello");
  char magic[sizeof(kMagic)];
  in.Bytes(magic, sizeof(magic));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    throw VmmError("the peer is not a virga-vmm migration source");
  }
  uint32_t version = in.U32();
  std::string vmm_version = in.String();
  if (version != kProtocolVersion) {
    Refuse(channel, "the source speaks migration protocol " + std::to_string(version) + " (virga-vmm " + vmm_version +
                        "), this destination " + std::to_string(kProtocolVersion));
  }
  MachineLayout source = MachineLayout::Decode(in);
  std::vector<std::string> differences = machine.AcceptLayout(source);
  if (!differences.empty()) {
    std::string why = "the destination's command line does not describe the source's machine: ";
    for (size_t i = 0; i < differences.size(); ++i) why += (i ? "; " : "") + differences[i];
    Refuse(channel, why);
  }
  channel.Send(MessageType::kReady, nullptr, 0);
  on_ready();

  std::vector<std::vector<uint64_t>> written;  // pages given data so far
  for (;;) {
    Message m = channel.Receive(-1);
    switch (m.type) {
      case MessageType::kPages:
        ReceivePages(m.payload, machine.memory(), &written);
        break;
      case MessageType::kState: {
        try {
          machine.LoadState(state::StateFile::Parse(std::move(m.payload), "the source's state"));
        } catch (const std::exception& e) {
          std::string why = e.what();
          channel.Send(MessageType::kError, why.data(), why.size());
          throw;
        }
        channel.Send(MessageType::kDone, nullptr, 0);
        return;
      }
      case MessageType::kCancel:
        throw VmmError(m.payload.empty() ? "the source cancelled the migration"
                                         : "the source gave up: " + Text(m.payload));
      default:
        throw VmmError("the source sent an unexpected message");
    }
  }
}

}  // namespace virga::migration
